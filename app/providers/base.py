"""How every provider plugin talks to its service: one request, authorised afresh per attempt, renewed once after
a refusal, its failure told once.

A plugin subclasses :class:`ProviderBase` and fills in its hooks: ``authorize`` (the URL and headers of one attempt:
a signature with this attempt's time, or a lease's current presigned/SAS URL), ``renew`` (after a refusal, whether a
second attempt may succeed: a lease renewed, a clock offset learnt from the refusal's ``Date``; asked once, so a URL
that stays refused is a real refusal) and ``error_code`` (the service's own code for a failure).

The base sends a part through the engine's part send path (streamed from the file) and anything else, small, on the
httpx client, and turns a failed answer into a MeowError: the status, the service's code and own words with every
secret the request carried scrubbed out, retryable for 408/429/5xx and for codes a retry cures, with Retry-After.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import httpx

from app.engine.plugin_sdk import (
    RETRYABLE_STATUSES,
    Body,
    InnerErrorCode,
    MeowError,
    UploadPart,
    parse_retry_after,
    redact_text,
    request_secrets,
    scrub,
    transport_error,
)

#: Answers after which a renewed credential may help: an expired presigned URL answers 403 (or 400 on some
#: services), a skewed clock 403.
REFUSALS = frozenset({400, 401, 403})
#: Cap on a server's Retry-After (the engine's policy caps it again).
MAX_RETRY_AFTER = 60.0


@dataclass
class Request:
    """One request a plugin wants made, before it is authorised.

    ``url`` and ``query`` name the resource (a lease's URL may replace them); ``body`` is small bytes, or a part's
    :class:`~app.engine.wire.Body` streamed from the file by ``part``; ``lease`` says which lease authorises it
    (say a presigned URL's operation and part number).
    """

    method: str
    what: str  # what the request does, for errors: "OSS UploadPart 3"
    url: str = field(default="", repr=False)  # a task's URL may be a SAS URL
    query: Mapping[str, str | int | None] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    body: bytes | Body | None = field(default=None, repr=False)
    part: UploadPart | None = None
    lease: Hashable = None


@dataclass(frozen=True)
class Attempt:
    """A request authorised for one attempt: what to send, and the generation of the lease it used."""

    url: str = field(repr=False)
    headers: dict[str, str] = field(repr=False)
    generation: int | None = None


class ProviderBase:
    """Sends a plugin's requests through its hooks; see the module's doc."""

    #: Service error codes a retry cures (bytes damaged on the way), each with the words that say so.
    retry_codes: ClassVar[Mapping[str, str]] = {}

    async def authorize(self, request: Request) -> Attempt:
        raise NotImplementedError

    async def renew(self, request: Request, attempt: Attempt, answer: httpx.Response) -> bool:
        return False

    def error_code(self, answer: httpx.Response) -> str:
        return ""

    def refused_hint(self, answer: httpx.Response) -> str:
        """What to check when the service refuses the credentials (401, 403)."""
        return ""

    async def send(self, client: httpx.AsyncClient, request: Request) -> httpx.Response:
        """The answer to ``request`` (read), authorised afresh for each attempt, renewed once after a refusal."""
        if request.body is not None:  # Shared Key signs it; a streamed body needs it
            length = request.body.length if isinstance(request.body, Body) else len(request.body)
            request.headers["Content-Length"] = str(length)
        attempt = await self.authorize(request)
        answer = await self._exchange(client, request, attempt)
        if answer.status_code in REFUSALS and await self.renew(request, attempt, answer):
            attempt = await self.authorize(request)
            answer = await self._exchange(client, request, attempt)
        return answer

    def error(self, answer: httpx.Response, what: str) -> MeowError:
        """A failed answer as a MeowError; see the module's doc."""
        status, code = answer.status_code, self.error_code(answer)
        words = scrub(redact_text(service_words(answer.content)), _secrets_of(answer))
        hint = self.retry_codes.get(code) or (self.refused_hint(answer) if status in (401, 403) else "")
        msg = f"{what} failed: HTTP {status}" + (f" {code}" if code else "") + (f": {words}" if words else "")
        return MeowError(InnerErrorCode.RESPONSE_STATUS_ERROR, msg + (f" ({hint})" if hint else ""), status=status,
                         remote_code=code or None,
                         retryable=status in RETRYABLE_STATUSES or code in self.retry_codes,
                         retry_after=parse_retry_after(answer.headers.get("retry-after"), MAX_RETRY_AFTER))

    @staticmethod
    async def _exchange(client: httpx.AsyncClient, request: Request, attempt: Attempt) -> httpx.Response:
        if isinstance(request.body, Body):
            assert request.part is not None, "a streamed body is sent by its part"
            headers = {"Content-Length": str(request.body.length), **attempt.headers}  # a lease's headers lack it
            return await request.part.send(request.method, attempt.url, headers, request.body, request.what)
        try:
            return await client.request(request.method, attempt.url, headers=attempt.headers, content=request.body)
        except httpx.HTTPError as exc:
            raise transport_error(exc, request.what) from None


def service_words(content: bytes) -> str:
    """What a service says about a failure, on one line: the Message of its XML ``<Error>`` document, any
    ``…Detail`` explanation (Azure's AuthenticationErrorDetail) and the request id its support asks for; the start of
    any other body. Never the rest of an error document: OSS's SignatureDoesNotMatch echoes the canonical request."""
    try:
        root: ET.Element | None = ET.fromstring(content)
    except ET.ParseError:
        root = None
    if root is None or root.tag != "Error":
        text = content[:300].decode("utf-8", errors="replace")
    else:
        fields = {child.tag: child.text or "" for child in root}
        text = " ".join([fields.get("Message", ""), *(v for k, v in fields.items() if k.endswith("Detail"))])
        if fields.get("RequestId"):
            text += f" (request id {fields['RequestId']})"
    return " ".join(text.split())[:1000]


def _secrets_of(answer: httpx.Response) -> tuple[str, ...]:
    """What the refused request carried that must not be echoed (services quote signatures in error bodies)."""
    request = answer.request
    return request_secrets(str(request.url), request.headers)
