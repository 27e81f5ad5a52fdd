"""Small pure pieces: URL parsing, SHA256SUMS, path normalisation, secrets kept out of reprs."""

from __future__ import annotations

import pytest

from vastllm.fetch import ChecksumMismatch, S3Options, UnsafeArchive
from vastllm.fetch.prefix import parse_sha256sums
from vastllm.fetch.s3url import SourceKind, parse_s3_url
from vastllm.fetch.tarsafe import safe_relpath

HEX = "ab" * 32


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("s3://b/m.tar.gz", SourceKind.TAR_GZ),
        ("s3://b/m.TGZ", SourceKind.TAR_GZ),
        ("s3://b/dir/m.tar.zst", SourceKind.TAR_ZST),
        ("s3://b/m.tar", SourceKind.TAR),
        ("s3://b/models/llama/", SourceKind.PREFIX),
        ("s3://b/", SourceKind.PREFIX),
    ],
)
def test_source_kind(url: str, kind: SourceKind) -> None:
    parsed = parse_s3_url(url)
    assert parsed.kind is kind
    assert str(parsed) == url


def test_sha256sums_formats() -> None:
    text = f"# comment\n{HEX}  a.safetensors\n{HEX.upper()} *./sub/b.json\n\n"
    assert parse_sha256sums(text) == {"a.safetensors": HEX, "sub/b.json": HEX}


@pytest.mark.parametrize("line", ["nothex  a.bin", f"{HEX}", f"{HEX[:-2]}  a.bin"])
def test_sha256sums_bad_lines(line: str) -> None:
    with pytest.raises(ChecksumMismatch, match="line 1"):
        parse_sha256sums(line)


def test_sha256sums_cannot_name_paths_outside() -> None:
    with pytest.raises(UnsafeArchive):
        parse_sha256sums(f"{HEX}  ../../etc/passwd")


@pytest.mark.parametrize(
    ("name", "expected"),
    [("./a/b", "a/b"), ("a//b/", "a/b"), (".", ""), ("./", ""), ("a/./b", "a/b")],
)
def test_safe_relpath(name: str, expected: str) -> None:
    assert safe_relpath(name) == expected


@pytest.mark.parametrize("name", ["/etc/x", "a/../../b", "..", "a/..", "C:/x", "a\x00b"])
def test_safe_relpath_refuses(name: str) -> None:
    with pytest.raises(UnsafeArchive):
        safe_relpath(name)


def test_credentials_stay_out_of_reprs() -> None:
    options = S3Options(
        access_key_id="AKIAREPRCHECK0000000",
        secret_access_key="super-secret-value",  # noqa: S106 - a test value
        session_token="token-value",  # noqa: S106 - a test value
    )
    shown = repr(options) + str(options)
    assert "super-secret-value" not in shown
    assert "token-value" not in shown
    assert "AKIAREPRCHECK0000000" not in shown
