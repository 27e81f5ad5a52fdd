"""Incremental detokenization (with the real test model's tokenizer) and stop sequences."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from vastllm.model_api.textstream import IncrementalDetokenizer, StopMatcher


@pytest.fixture(scope="module")
def tokenizer(test_model_dir: Path) -> Any:
    return AutoTokenizer.from_pretrained(test_model_dir, local_files_only=True)


def stream_text(tokenizer: Any, ids: list[int]) -> tuple[list[str], str]:
    def decode(chunk: Any) -> str:
        return str(
            tokenizer.decode(
                list(chunk), skip_special_tokens=True, clean_up_tokenization_spaces=False
            )
        )

    detok = IncrementalDetokenizer(decode)
    pieces = [detok.push(i) for i in ids]
    pieces.append(detok.flush())
    return pieces, decode(ids)


FRAGMENTS = [*"ab cé\n\t", "日本", "🙂", "ё", "  ", "'s", "\u00a0", " Paris", "<|im_end|>"]
TEXTS = st.lists(st.sampled_from(FRAGMENTS), max_size=25).map("".join)


@settings(max_examples=150, deadline=None)
@given(text=TEXTS)
def test_pieces_add_up_to_the_whole_decode(tokenizer: Any, text: str) -> None:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    pieces, whole = stream_text(tokenizer, ids)
    assert "".join(pieces) == whole
    assert all("\ufffd" not in p for p in pieces[:-1]) or "\ufffd" in whole


def test_multibyte_character_split_over_tokens_is_held_back(tokenizer: Any) -> None:
    ids = tokenizer("🙂", add_special_tokens=False)["input_ids"]
    assert len(ids) > 1, "byte-level BPE splits this emoji"
    pieces, whole = stream_text(tokenizer, ids)
    assert whole == "🙂"
    assert [p for p in pieces if p] == ["🙂"]


def test_special_tokens_add_no_text(tokenizer: Any) -> None:
    ids = tokenizer("Hi<|im_end|> there", add_special_tokens=False)["input_ids"]
    pieces, whole = stream_text(tokenizer, ids)
    assert "".join(pieces) == whole == "Hi there"


def feed_all(stops: list[str], chunks: list[str]) -> tuple[str, bool]:
    m = StopMatcher(stops)
    out = [m.feed(c) for c in chunks]
    out.append(m.flush())
    return "".join(out), m.stopped


def expected_cut(text: str, stops: list[str], bounds: list[int]) -> tuple[str, bool]:
    """Generation stops at the first piece after which a stop sequence is present; the output is
    cut where the earliest stop starts in the text seen so far. With overlapping stops this
    depends on the pieces: for "\naa" with stops ["a", "\naa"], pieces "\n", "a", "a" stop
    after "\na" (output "\n"), while one piece "\naa" yields ""."""
    for end in bounds[1:]:
        seen = text[:end]
        hits = [seen.find(s) for s in stops if s and s in seen]
        if hits:
            return seen[: min(hits)], True
    return text, False


@settings(max_examples=400, deadline=None)
@example(text="\naa", stops=["a", "\naa"], cuts=[1, 2])
@example(text="\naa", stops=["a", "\naa"], cuts=[])
@given(
    text=st.text(alphabet="abc\n", max_size=30),
    stops=st.lists(st.text(alphabet="abc\n", min_size=1, max_size=4), max_size=3),
    cuts=st.lists(st.integers(min_value=0, max_value=30), max_size=8),
)
def test_stop_matcher_cuts_at_the_first_stop(text: str, stops: list[str], cuts: list[int]) -> None:
    bounds = sorted({0, len(text), *(c for c in cuts if c <= len(text))})
    chunks = [text[a:b] for a, b in itertools.pairwise(bounds)]
    assert feed_all(stops, chunks) == expected_cut(text, stops, bounds)


def test_stop_spanning_pieces_is_never_emitted() -> None:
    m = StopMatcher(["</answer>"])
    emitted = [m.feed(p) for p in ["The answer", " is 4</ans", "wer> and more"]]
    assert emitted == ["The answer", " is 4", ""]
    assert m.stopped


def test_held_text_is_released_when_it_was_not_a_stop() -> None:
    m = StopMatcher(["STOP"])
    assert m.feed("go ST") == "go "
    assert m.feed("ART") == "START"
    assert m.feed("ST") == ""
    assert m.flush() == "ST"
    assert not m.stopped


def test_no_stops_passes_everything_through() -> None:
    assert feed_all([], ["a", "b"]) == ("ab", False)
    assert feed_all([""], ["a", "b"]) == ("ab", False)
