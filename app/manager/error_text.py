"""One way to put an engine error into words, for the window, the history and the CLI alike."""

from __future__ import annotations

from app.engine.errors import MeowError
from app.engine.redact import redact_text


def describe_error(err: MeowError) -> str:
    """``CHECKSUM_MISMATCH (116): sha256 mismatch …`` — the code name lets users search docs and issues."""
    msg = redact_text(err.msg) or "no details"
    return f"{code_name(err)} ({int(err.code)}): {msg}"


def code_name(err: MeowError) -> str:
    return getattr(err.code, "name", str(err.code))
