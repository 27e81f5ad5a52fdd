"""Server-sent events from lines of text (the ``text/event-stream`` format)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class ServerSentEvent:
    event: str
    data: str


class SseDecoder:
    """Feed it lines without their line ending; it returns an event at each blank line."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self.flush()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None

    def flush(self) -> ServerSentEvent | None:
        if not self._data and not self._event:
            return None
        event = ServerSentEvent(self._event or "message", "\n".join(self._data))
        self._event, self._data = "", []
        return event


def iter_events(lines: Iterable[str]) -> Iterator[ServerSentEvent]:
    decoder = SseDecoder()
    for line in lines:
        event = decoder.feed(line.rstrip("\r"))
        if event is not None:
            yield event
    last = decoder.flush()
    if last is not None:
        yield last
