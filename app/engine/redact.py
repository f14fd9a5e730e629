"""Keep secrets out of every log line, error message, record and checkpoint."""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, urlsplit, urlunsplit

#: Query parameters that carry a credential (SAS, OSS/S3 presigned, generic tokens).
SECRET_PARAMS = frozenset({
    "sig", "signature", "x-oss-signature", "x-oss-credential", "x-oss-security-token", "x-amz-signature",
    "x-amz-credential", "x-amz-security-token", "token", "access_token", "accesskeyid", "ossaccesskeyid",
    "security-token", "api_key", "apikey", "key", "password", "secret",
})
SECRET_HEADERS = frozenset({
    "authorization", "proxy-authorization", "cookie", "set-cookie", "x-oss-security-token",
    "x-amz-security-token", "x-ms-copy-source-authorization",
})
REDACTED = "REDACTED"

_URL_IN_TEXT = re.compile(r"https?://[^\s\"'<>]+")
#: A credential header written out in text: "Authorization: Bearer x", "'authorization': 'x'", authorization=x.
_HEADER_IN_TEXT = re.compile(
    r"(?i)(?P<name>\b(?:" + "|".join(re.escape(h) for h in sorted(SECRET_HEADERS, key=len, reverse=True)) +
    r")\b['\"]?\s*[:=]\s*)(?:(?P<quote>['\"])[^'\"\r\n]*|(?:[A-Za-z][\w-]* )?[^\s'\",}]+)")


def redact_url(url: str) -> str:
    """The URL with credentials in userinfo and secret query values replaced by REDACTED."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in SECRET_PARAMS for k, _ in pairs):
            query = "&".join(
                f"{k}={REDACTED}" if k.lower() in SECRET_PARAMS else (f"{k}={v}" if v else k) for k, v in pairs
            )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Redact every URL (error bodies echo request URLs) and every credential header found in free text (a repr of
    a request's headers, an echoed request head)."""
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
    return _HEADER_IN_TEXT.sub(lambda m: f"{m.group('name')}{m.group('quote') or ''}{REDACTED}", text)


def strip_query(url: str) -> str:
    """Scheme, host and path only: a stable, secret-free identity for checkpoints."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def redact_headers(headers: dict[str, str] | list[tuple[str, str]]) -> list[tuple[str, str]]:
    items = headers.items() if isinstance(headers, dict) else headers
    return [(k, REDACTED if k.lower() in SECRET_HEADERS else v) for k, v in items]


class RedactingFilter(logging.Filter):
    """Redacts URLs in the records of a logger we do not own: httpx logs every request's full URL at INFO
    ("HTTP Request: GET https://…?sig=…"), which would put a signed URL's signature in any program's log."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own error handling
            return True
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def install_log_redaction(*logger_names: str) -> None:
    """Add the redacting filter once to each named logger (idempotent)."""
    for name in logger_names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())
