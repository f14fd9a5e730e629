"""One way to put an engine error into words, for the window, the history and the CLI alike."""

from __future__ import annotations

from http import HTTPStatus

from app.engine.errors import MeowError
from app.engine.redact import redact_text

#: Said after an error whose HTTP status came from a proxy rather than from the server.
PROXY_AUTH_HINT = ("the proxy asks for a user name and password (Preferences > Network, or --proxy "
                   "http://USER:PASSWORD@HOST:PORT)")


def describe_error(err: MeowError) -> str:
    """``CHECKSUM_MISMATCH (116): sha256 mismatch …`` — the code name lets users search docs and issues."""
    msg = redact_text(err.msg) or "no details"
    return f"{code_name(err)} ({int(err.code)}): {msg}{_hint(err)}"


def _hint(err: MeowError) -> str:
    """What a status means when the message alone does not say it (407 is the proxy's, not the server's)."""
    return f"; {PROXY_AUTH_HINT}" if getattr(err, "status", None) == 407 else ""


def code_name(err: MeowError) -> str:
    return getattr(err.code, "name", str(err.code))


def describe_for_people(err: MeowError) -> str:
    """The sentence first, the code last (for the window's Error column and notifications):
    ``The server answered 404 Not Found (download_prepare HEAD failed: 404) [RESPONSE_STATUS_ERROR 109]``."""
    msg = redact_text(err.msg) or "no details"
    status = getattr(err, "status", None)
    if isinstance(status, int) and status > 0:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
        head = f"The {'proxy' if status == 407 else 'server'} answered {status} {reason}".rstrip()
        return f"{head} ({msg}){_hint(err)} [{code_name(err)} {int(err.code)}]"
    return f"{msg[:1].upper()}{msg[1:]} [{code_name(err)} {int(err.code)}]"
