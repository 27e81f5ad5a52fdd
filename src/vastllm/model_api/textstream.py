"""Token ids -> text deltas: incremental detokenization and stop-sequence matching.

Pure Python over a ``decode`` callable, so both are testable without a model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

Decode = Callable[[Sequence[int]], str]
REPLACEMENT = "\ufffd"


class IncrementalDetokenizer:
    """Turns one token id at a time into the text it adds.

    Decoding a lone token is wrong for byte-level and SentencePiece vocabularies (a character can
    span tokens; a leading space depends on context), and decoding everything at each step is
    quadratic. Like vLLM we decode a short window twice: ``ids[prefix:read]`` (already emitted)
    and ``ids[prefix:]``; the difference is the new text, held back while it ends in an
    incomplete character (U+FFFD).
    """

    def __init__(self, decode: Decode) -> None:
        self._decode = decode
        self._ids: list[int] = []
        self._prefix = 0
        self._read = 0

    def push(self, token_id: int) -> str:
        self._ids.append(token_id)
        return self._advance(final=False)

    def flush(self) -> str:
        """Text still held back (an incomplete character at the very end)."""
        return self._advance(final=True)

    def _advance(self, *, final: bool) -> str:
        before = self._decode(self._ids[self._prefix : self._read])
        after = self._decode(self._ids[self._prefix :])
        if len(after) > len(before) and (final or not after.endswith(REPLACEMENT)):
            self._prefix, self._read = self._read, len(self._ids)
            return after[len(before) :]
        return ""


class StopMatcher:
    """Cuts a stream of text deltas at the first occurrence of any stop sequence.

    Text that might be the start of a stop sequence is held back until the next delta decides;
    the stop sequence itself is never emitted (OpenAI semantics).
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = [s for s in stops if s]
        self._held = ""
        self.stopped = False

    def feed(self, delta: str) -> str:
        """Return the text that is safe to emit; sets ``stopped`` when a stop sequence hit."""
        if self.stopped:
            return ""
        if not self._stops:
            return delta
        text = self._held + delta
        hits = [i for i in (text.find(s) for s in self._stops) if i >= 0]
        if hits:
            self.stopped = True
            self._held = ""
            return text[: min(hits)]
        hold = self._partial_suffix(text)
        self._held = text[len(text) - hold :] if hold else ""
        return text[: len(text) - hold]

    def flush(self) -> str:
        """At the end of generation the held text was not a stop sequence after all."""
        out, self._held = self._held, ""
        return "" if self.stopped else out

    def _partial_suffix(self, text: str) -> int:
        """Length of the longest suffix of ``text`` that is a proper prefix of a stop."""
        best = 0
        for stop in self._stops:
            for k in range(min(len(stop) - 1, len(text)), best, -1):
                if text.endswith(stop[:k]):
                    best = k
                    break
        return best
