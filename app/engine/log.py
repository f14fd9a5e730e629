"""The SDK's debug-log facility: one process-global listener slot, as in the seed.

A listener that raises is ignored, never propagated. ``emit_lazy`` builds the message only when a listener
is installed, so hot paths can log for free when nobody listens.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum


class LogLevel(Enum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARN = "WARN"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Log:
    level: LogLevel
    tag: str
    message: str
    timestamp_ms: int = field(default_factory=lambda: max(0, int(time.time() * 1000)))

    @classmethod
    def debug(cls, tag: str, message: str) -> Log:
        return cls(LogLevel.DEBUG, tag, message)

    def __str__(self) -> str:
        return f"[{self.timestamp_ms}] {self.level} [{self.tag}] {self.message}"


DebugLogListener = Callable[[Log], None]


class DebugLogListenerError(RuntimeError):
    def __init__(self) -> None:
        super().__init__("debug log listener already set")


_lock = threading.Lock()
_listener: DebugLogListener | None = None


def set_debug_log_listener(listener: DebugLogListener | None) -> None:
    """Install (or with None, clear) the process-global debug-log listener, replacing any previous one."""
    global _listener
    with _lock:
        _listener = listener


def try_set_debug_log_listener(listener: DebugLogListener) -> None:
    """Install a listener only if none is set; raise DebugLogListenerError otherwise."""
    global _listener
    with _lock:
        if _listener is not None:
            raise DebugLogListenerError()
        _listener = listener


def debug_log_listener_active() -> bool:
    return _listener is not None


def emit(log: Log) -> None:
    listener = _listener
    if listener is None:
        return
    try:
        listener(log)
    except Exception:  # a broken listener must never break a transfer
        pass


def emit_lazy(make: Callable[[], Log]) -> None:
    if _listener is not None:
        emit(make())


def debug(tag: str, message: str | Callable[[], str]) -> None:
    if _listener is not None:
        emit(Log(LogLevel.DEBUG, tag, message() if callable(message) else message))


def info(tag: str, message: str) -> None:
    if _listener is not None:
        emit(Log(LogLevel.INFO, tag, message))


def warn(tag: str, message: str) -> None:
    if _listener is not None:
        emit(Log(LogLevel.WARN, tag, message))
