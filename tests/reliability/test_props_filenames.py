"""Property tests of sanitize_filename and the two places hostile names come from (URL path, Content-Disposition).

tests/test_sizes_and_names.py holds the examples and a property over a hostile alphabet. This module adds what that
property leaves out: reserved Windows device names in every disguise (case, extension, trailing blanks and dots,
superscript digits), Unicode normalisation (the result is NFC, and a control or format character between a letter
and its combining mark cannot make a second pass change the name), names long enough to be cut, containment of the
joined path in its folder, and the round trip of names that are already safe through a URL path and through
``filename*``.
"""

from __future__ import annotations

import os
import unicodedata
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from app.filenames import (
    MAX_NAME_BYTES,
    filename_from_content_disposition,
    filename_from_url,
    sanitize_filename,
)
from tests.reliability.scale import scaled, scaled_timeout

pytestmark = pytest.mark.timeout(scaled_timeout(60))
PROPS = settings(max_examples=scaled(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])

DEVICES = ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", "CLOCK$",
           *(f"{d}{n}" for d in ("COM", "LPT") for n in [*"123456789", "¹", "²", "³"])]
_BAD_CATEGORIES = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def is_reserved(name: str) -> bool:
    """Windows treats the part before the first dot, trailing blanks ignored, as the device name."""
    return name.split(".", 1)[0].rstrip(" ").upper() in DEVICES


def assert_safe(out: str) -> None:
    assert out and out not in (".", "..")
    assert "/" not in out and "\\" not in out
    assert len(out.encode("utf-8")) <= MAX_NAME_BYTES
    assert not is_reserved(out), out
    assert not any(unicodedata.category(c) in _BAD_CATEGORIES and c != "\u200d" for c in out), ascii(out)
    assert not any(c in '<>:"|?*' for c in out)
    assert out == out.strip() and not out.endswith((".", " "))
    assert unicodedata.is_normalized("NFC", out)
    folder = os.path.join(os.sep, "downloads", "here")
    assert os.path.dirname(os.path.normpath(os.path.join(folder, out))) == folder  # stays in the folder
    assert sanitize_filename(out) == out  # idempotent


_pieces = st.one_of(
    st.sampled_from([*DEVICES, "con", "Nul", "lpt²", ".", "..", " ", "/", "\\", ":", "\x00", "\x1f", "\x7f", "\u0085",
                     "\u202e", "\u200b", "\u200d", "\ufeff", "\u2028", "\udc80", "\ue000", "e", "\u0301", "\u0300",
                     "U", "A", "\u030a", "é", "€", "日本", "🐱", ".txt", ".tar.gz", "x" * 40, "€" * 20]),
    st.text(max_size=6),
)
hostile = st.lists(_pieces, max_size=60).map("".join)


@PROPS
@given(hostile)
@example("U\x1f\u0300")  # found here: the control char blocked NFC composition, so a second pass changed the name
@example("A\u200b\u030a.txt")
@example("U\u202e\u0300" * 120)
def test_sanitized_name_is_safe_nfc_and_idempotent(raw: str) -> None:
    assert_safe(sanitize_filename(raw))


@PROPS
@given(st.text(min_size=120, max_size=700))
def test_long_names_are_cut_safely(raw: str) -> None:
    assert_safe(sanitize_filename(raw))


@PROPS
@given(st.sampled_from(DEVICES), st.sampled_from(["", ".txt", ".tar.gz", " .txt", "  ", ". .", "...", ":", ".a.b"]),
       st.sampled_from([str.upper, str.lower, str.title, lambda s: s]), st.sampled_from(["", "dir/", "..\\", " "]))
def test_reserved_device_names_never_survive_in_any_disguise(device: str, tail: str, case: object,
                                                             before: str) -> None:
    raw = before + case(device) + tail  # type: ignore[operator]
    out = sanitize_filename(raw)
    assert_safe(out)


_safe_names = st.text(st.characters(exclude_categories=_BAD_CATEGORIES), min_size=1, max_size=80).filter(
    lambda n: sanitize_filename(n) == n and n not in ("download",))


@PROPS
@given(_safe_names)
def test_a_safe_name_survives_the_url_path_and_filename_star(name: str) -> None:
    """What the server meant is what we save, when it is already safe: no double decoding, no lost characters."""
    assert sanitize_filename(filename_from_url("https://h.example/dir/" + quote(name, safe="") + "?sig=x")) == name
    header = "attachment; filename=\"fallback.bin\"; filename*=UTF-8''" + quote(name, safe="")
    assert sanitize_filename(filename_from_content_disposition(header)) == name


@PROPS
@given(hostile, st.sampled_from(["url", "plain", "quoted", "star"]))
def test_hostile_names_from_the_network_come_out_safe(raw: str, where: str) -> None:
    wire = raw.encode("utf-8", "surrogatepass")  # a lone surrogate goes out as invalid UTF-8 bytes
    if where == "url":
        name = filename_from_url("https://h.example/a/" + quote(wire, safe="/") + "?x=1")
    elif where == "plain":
        name = filename_from_content_disposition("attachment; filename=" + raw.replace(";", ""))
    elif where == "quoted":
        name = filename_from_content_disposition('attachment; filename="' + raw.replace('"', '\\"') + '"')
    else:
        name = filename_from_content_disposition("attachment; filename*=UTF-8''" + quote(wire, safe=""))
    assert_safe(sanitize_filename(name))
