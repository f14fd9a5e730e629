"""Size parsing/formatting (app.sizes) and safe download names (app.filenames).

These guard the CLI's inputs: a size typo must be a clear usage error, and a file name chosen by a remote
server must never escape the target folder or produce a name the OS treats specially.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.filenames import (
    DEFAULT_NAME,
    MAX_NAME_BYTES,
    filename_from_content_disposition,
    filename_from_url,
    sanitize_filename,
)
from app.sizes import MAX_SIZE, format_size, parse_size

KiB, MiB, GiB, TiB = 1024, 1024**2, 1024**3, 1024**4


# ------------------------------------------------------------------------------------------------ parse_size
@pytest.mark.parametrize(("text", "expected"), [
    ("1048576", 1048576),
    ("1", 1),
    ("100B", 100),
    ("100b", 100),
    ("512k", 512 * KiB),
    ("512K", 512 * KiB),
    ("512KB", 512 * KiB),
    ("512kb", 512 * KiB),
    ("512KiB", 512 * KiB),
    ("512Ki", 512 * KiB),
    ("4MiB", 4 * MiB),
    ("4M", 4 * MiB),
    ("4MB", 4 * MiB),
    ("1.5M", 1536 * KiB),
    ("0.5k", 512),
    (".5k", 512),
    ("2 MiB", 2 * MiB),
    ("  3G  ", 3 * GiB),
    ("1T", TiB),
    ("1TiB", TiB),
    ("1P", 1024 * TiB),
    ("1EiB", MAX_SIZE),
])
def test_parse_size_accepts_bytes_and_1024_based_units(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(("text", "fragment"), [
    ("0", "at least 1 byte"),
    ("0k", "at least 1 byte"),
    ("0.0001k", "at least 1 byte"),
    ("-1", "positive"),
    ("-4MiB", "positive"),
    ("", "empty"),
    ("   ", "empty"),
    ("abc", "not a size"),
    ("4 mega", "not a size"),
    ("1e3", "not a size"),
    ("4Xi", "not a size"),
    ("Ki", "not a size"),
    ("5i", "not a size"),
    ("1KiBB", "not a size"),
    ("1.5", "whole number"),
    ("٣k", "not a size"),  # non-ASCII digits
    (str(MAX_SIZE + 1), "too large"),
])
def test_parse_size_rejects_with_a_clear_message(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_size(text)


def test_parse_size_error_message_shows_examples() -> None:
    with pytest.raises(ValueError) as info:
        parse_size("lots")
    assert "4MiB" in str(info.value) and "1024" in str(info.value)


@given(st.integers(min_value=1, max_value=MAX_SIZE))
def test_parse_size_round_trips_plain_integers(n: int) -> None:
    assert parse_size(str(n)) == n


@given(st.integers(min_value=1, max_value=10**6), st.sampled_from(["k", "K", "KB", "KiB", "m", "MiB", "g", "G"]))
def test_parse_size_unit_is_exact_multiple(n: int, unit: str) -> None:
    factor = {"k": KiB, "m": MiB, "g": GiB}[unit[0].lower()]
    assert parse_size(f"{n}{unit}") == n * factor


# ----------------------------------------------------------------------------------------------- format_size
@pytest.mark.parametrize(("n", "expected"), [
    (0, "0 B"),
    (1, "1 B"),
    (1023, "1023 B"),
    (1024, "1.0 KiB"),
    (1536, "1.5 KiB"),
    (MiB - 1, "1.0 MiB"),  # never "1024.0 KiB"
    (1536 * KiB, "1.5 MiB"),
    (8 * MiB, "8.0 MiB"),
    (GiB + GiB // 4, "1.2 GiB"),
    (TiB, "1.0 TiB"),
    (2.5 * MiB, "2.5 MiB"),
])
def test_format_size(n: int, expected: str) -> None:
    assert format_size(n) == expected


@given(st.integers(min_value=0, max_value=MAX_SIZE))
def test_format_size_is_short_and_parses_back_roughly(n: int) -> None:
    text = format_size(n)
    assert len(text) <= 10
    number, unit = text.split(" ")
    if unit != "B":
        back = parse_size(number + unit)
        assert abs(back - n) <= n * 0.05 + 1


# ----------------------------------------------------------------------------------------- sanitize_filename
@pytest.mark.parametrize(("raw", "expected"), [
    ("report.pdf", "report.pdf"),
    ("../../etc/passwd", "passwd"),
    ("..\\..\\windows\\system32\\evil.dll", "evil.dll"),
    ("/etc/shadow", "shadow"),
    ("dir/", "dir"),
    ("..", DEFAULT_NAME),
    (".", DEFAULT_NAME),
    ("...", DEFAULT_NAME),
    ("../..", DEFAULT_NAME),
    ("", DEFAULT_NAME),
    (None, DEFAULT_NAME),
    ("   ", DEFAULT_NAME),
    ("CON", "_CON"),
    ("con", "_con"),
    ("NUL.txt", "_NUL.txt"),
    ("nul.tar.gz", "_nul.tar.gz"),
    ("COM1", "_COM1"),
    ("lpt9.log", "_lpt9.log"),
    ("CON .txt", "_CON .txt"),
    ("COM10", "COM10"),
    ("CONSOLE", "CONSOLE"),
    ("name. . .", "name"),
    ("name   ", "name"),
    ("a\x00b\x1bc\x7fd\x85e", "abcde"),
    ("line\nbreak\r.txt", "linebreak.txt"),
    ("\u202egnp.exe", "gnp.exe"),  # right-to-left override hides the real extension
    ("a:b*c?d\"e<f>g|h", "a_b_c_d_e_f_g_h"),
    ("résumé.txt", "résumé.txt"),
    ("e\u0301.txt", "é.txt"),  # NFC
    (".bashrc", ".bashrc"),
])
def test_sanitize_filename_examples(raw: str | None, expected: str) -> None:
    assert sanitize_filename(raw) == expected


def test_sanitize_filename_custom_default() -> None:
    assert sanitize_filename("..", default="file.bin") == "file.bin"
    assert sanitize_filename("..", default="../x") == "x"


def test_sanitize_filename_truncates_to_255_bytes_keeping_extension() -> None:
    long_ascii = "x" * 400 + ".tar"
    out = sanitize_filename(long_ascii)
    assert len(out.encode()) == MAX_NAME_BYTES and out.endswith(".tar")
    long_utf8 = "é" * 300 + ".mkv"
    out = sanitize_filename(long_utf8)
    assert len(out.encode()) <= MAX_NAME_BYTES and out.endswith(".mkv")
    out.encode("utf-8")  # cut on a character boundary
    no_ext = "y" * 300
    assert sanitize_filename(no_ext) == "y" * MAX_NAME_BYTES
    huge_ext = "a." + "z" * 300  # an "extension" that long is just text
    assert len(sanitize_filename(huge_ext).encode()) == MAX_NAME_BYTES


def _check_safe(out: str) -> None:
    assert out
    assert "/" not in out and "\\" not in out and "\x00" not in out
    assert out not in (".", "..")
    assert len(out.encode("utf-8")) <= MAX_NAME_BYTES
    assert not out.endswith((".", " "))
    assert all(ord(c) >= 0x20 and c != "\x7f" for c in out)


_PIECES = st.one_of(
    st.sampled_from([".", "/", "\\", "\x00", " ", ":", "*", "?", '"', "<", ">", "|", "\n", "\r", "\t", "..", "CON",
                     "nul", "COM1", "é", "€", ".txt", "\u202e"]),
    st.text(max_size=8),
)
_HOSTILE = st.lists(_PIECES, max_size=80).map("".join)


@settings(max_examples=300, deadline=None)
@given(_HOSTILE)
def test_sanitize_filename_property_always_safe_and_idempotent(raw: str) -> None:
    out = sanitize_filename(raw)
    _check_safe(out)
    assert sanitize_filename(out) == out


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=600))
def test_sanitize_filename_property_any_text(raw: str) -> None:
    _check_safe(sanitize_filename(raw))


# --------------------------------------------------------------------------------------- where names come from
@pytest.mark.parametrize(("header", "expected"), [
    ('attachment; filename="report.pdf"', "report.pdf"),
    ("attachment; filename=report.pdf", "report.pdf"),
    ('attachment; filename="a;b.txt"', "a;b.txt"),
    ('attachment; filename="quo\\"ted.txt"', 'quo"ted.txt'),
    ("attachment; filename*=UTF-8''%E2%82%AC%20rates.txt", "€ rates.txt"),
    ("attachment; filename=\"fallback.txt\"; filename*=UTF-8''%E2%82%AC%20rates.txt", "€ rates.txt"),
    ("attachment; filename*=UTF-8''%E2%82%AC.txt; filename=\"fallback.txt\"", "€.txt"),
    ("attachment; filename*=iso-8859-1'en'%A3%20rates", "£ rates"),
    ("attachment; filename*=x-unknown''abc.txt", "abc.txt"),
    ("attachment; filename*=garbage; filename=ok.txt", "ok.txt"),
    ('ATTACHMENT; FILENAME="upper.txt"', "upper.txt"),
    ('attachment; filename="../../etc/passwd"', "../../etc/passwd"),  # raw: the caller sanitises
    ("filename=no-type.bin", "no-type.bin"),
    ("inline", None),
    ("attachment", None),
    ('attachment; filename=""', None),
    ("", None),
    (None, None),
])
def test_filename_from_content_disposition(header: str | None, expected: str | None) -> None:
    assert filename_from_content_disposition(header) == expected


@pytest.mark.parametrize(("url", "expected"), [
    ("http://h/a/b/file.zip", "file.zip"),
    ("http://h/a/b/file.zip?x=1#frag", "file.zip"),
    ("http://h/files/report%202024.pdf", "report 2024.pdf"),
    ("http://h/%E2%82%AC.txt", "€.txt"),
    ("http://h/dir/", "dir"),
    ("http://h/", None),
    ("http://h", None),
    ("http://h/a/..%2F..%2Fetc%2Fpasswd", "../../etc/passwd"),  # raw: the caller sanitises
])
def test_filename_from_url(url: str, expected: str | None) -> None:
    assert filename_from_url(url) == expected


def test_url_names_with_encoded_separators_are_sanitised() -> None:
    raw = filename_from_url("http://h/a/..%2F..%2Fetc%2Fpasswd")
    assert sanitize_filename(raw) == "passwd"
