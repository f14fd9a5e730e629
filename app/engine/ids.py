"""Opaque identifiers handed to callers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class TaskId:
    value: uuid.UUID = field(default_factory=uuid.uuid4)

    def __str__(self) -> str:
        return str(self.value)


@dataclass(frozen=True, order=True)
class GlobalProgressListenerId:
    value: uuid.UUID = field(default_factory=uuid.uuid4)
