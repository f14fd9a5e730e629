"""Rusty Cat: a desktop transfer manager and the transfer SDK inside it."""

from __future__ import annotations

__version__ = "0.1.0"
