"""A fetched candidate's source is checked against a sha256 (the fetch refuses one it cannot
check): the cascade hands the fetch the candidate's sha256, and --allow-unverified only when the
candidate says allow_unverified: true."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from vastllm.cascade.candidates import Candidate, candidate_from_dict
from vastllm.cascade.errors import UsageError
from vastllm.cascade.fetched import TransformersEngine

RECORDER = """
import json, pathlib, sys
args = sys.argv[1:]
pathlib.Path(args[args.index("--dest") + 1], ".vastllm-fetch.json").parent.mkdir(parents=True)
pathlib.Path({out!r}).write_text(json.dumps(args))
print(json.dumps({{"changed": True}}))
"""


def _fetch_args(tmp_path: Path, entry: dict[str, object]) -> list[str]:
    out = tmp_path / "argv.json"
    engine = TransformersEngine(
        "http://127.0.0.1:1",
        tmp_path / "models",
        fetch_command=[sys.executable, "-c", RECORDER.format(out=str(out))],
    )
    assert engine.ensure(candidate_from_dict(entry), lambda p: None) is True
    return list(json.loads(out.read_text()))


def test_the_candidates_sha256_or_its_allow_unverified_reach_the_fetch(tmp_path: Path) -> None:
    base = {"name": "m", "engine": "transformers", "source": "s3://models/m.tar.zst"}
    plain = _fetch_args(tmp_path / "a", base)
    assert "--allow-unverified" not in plain
    assert "--sha256" not in plain  # the object's x-amz-meta-sha256 then, or the fetch refuses
    pinned = _fetch_args(tmp_path / "b", {**base, "sha256": "ab" * 32})
    assert pinned[pinned.index("--sha256") + 1] == "ab" * 32
    assert "--allow-unverified" not in pinned
    assert "--allow-unverified" in _fetch_args(tmp_path / "c", {**base, "allow_unverified": True})


def test_allow_unverified_must_be_a_boolean() -> None:
    entry = {"name": "m", "engine": "vllm", "source": "s3://m/m.tar", "allow_unverified": "yes"}
    with pytest.raises(UsageError, match="allow_unverified must be true or false"):
        candidate_from_dict(entry)
    assert Candidate("m", engine="vllm", source="s3://m/m.tar").allow_unverified is False
