"""Error codes and the one exception type the engine raises or reports."""

from __future__ import annotations

from enum import IntEnum


class InnerErrorCode(IntEnum):
    """The seed's error codes (kept numerically identical), plus Rusty Cat's own from 200 on."""

    UNKNOWN = -1
    SUCCESS = 0
    RUNTIME_CREATION_FAILED = 101
    PARAMETER_EMPTY = 102
    DUPLICATE_TASK = 103
    ENQUEUE_ERROR = 104
    IO_ERROR = 105
    HTTP_ERROR = 106
    CLIENT_CLOSED = 107
    TASK_NOT_FOUND = 108
    RESPONSE_STATUS_ERROR = 109
    MISSING_OR_INVALID_CONTENT_LENGTH = 110
    COMMAND_SEND_FAILED = 111
    COMMAND_RESPONSE_FAILED = 112
    RESPONSE_PARSE_ERROR = 113
    INVALID_RANGE = 114
    FILE_NOT_FOUND = 115
    CHECKSUM_MISMATCH = 116
    INVALID_TASK_STATE = 117
    LOCK_POISONED = 118
    HTTP_CLIENT_BUILD_FAILED = 119
    # Rusty Cat additions.
    INVALID_CONFIG = 201
    REMOTE_CHANGED = 202
    NO_PROGRESS = 203
    SOURCE_CHANGED = 204
    DISK_FULL = 205
    CERTIFICATE_UNTRUSTED = 206
    PROXY_ERROR = 207


#: Codes a chunk or probe may be retried on; everything else fails the task at once (the rules per fault are in
#: :mod:`app.engine.failures`, which also sets ``retryable`` explicitly where a code's default does not fit).
RETRYABLE_CODES = frozenset({InnerErrorCode.HTTP_ERROR, InnerErrorCode.RESPONSE_STATUS_ERROR})


class MeowError(Exception):
    """An engine failure: a stable numeric ``code``, a human sentence ``msg``, optional HTTP details.

    ``retryable`` overrides the code-based default, so a 404 status error is final while a 503 is not.
    ``retry_after`` carries a server's Retry-After (seconds) for the back-off.
    """

    def __init__(
        self,
        code: InnerErrorCode | int,
        msg: str = "",
        *,
        status: int | None = None,
        remote_code: str | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.code = InnerErrorCode(code) if code in InnerErrorCode._value2member_map_ else code
        self.msg = msg
        self.status = status
        self.remote_code = remote_code
        self.retry_after = retry_after
        self.headers = headers  # the refusing answer's headers, for a plugin renewing its credentials; never shown
        self._retryable = retryable
        super().__init__(str(self))

    @property
    def retryable(self) -> bool:
        if self._retryable is not None:
            return self._retryable
        return self.code in RETRYABLE_CODES

    def __str__(self) -> str:
        code = int(self.code)
        return f"MeowError(code={code})" if not self.msg else f"MeowError(code={code}, msg={self.msg})"

    def __repr__(self) -> str:
        return str(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MeowError):
            return NotImplemented
        return int(self.code) == int(other.code) and self.msg == other.msg

    def __hash__(self) -> int:
        return hash((int(self.code), self.msg))

    def __reduce__(self):  # exceptions with keyword-only arguments need this to pickle/copy
        return (
            _rebuild,
            (int(self.code), self.msg, self.status, self.remote_code, self._retryable, self.retry_after, self.headers),
        )


def _rebuild(code, msg, status, remote_code, retryable, retry_after, headers=()) -> MeowError:
    return MeowError(
        code, msg, status=status, remote_code=remote_code, retryable=retryable, retry_after=retry_after,
        headers=headers,
    )
