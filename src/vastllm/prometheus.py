"""Reading the Prometheus text of the proxy's ``GET /metrics`` (:mod:`vastllm.proxy.metrics`).

The one parser for every reader: ``vastllm status`` (:mod:`vastllm.cli.prometheus`) and the idle
watcher on the GPU host (:mod:`vastllm.idle.metrics`). Standard library only: every extra
imports it (the watcher runs from the proxy's venv, without the ``cli`` extra).
"""

from __future__ import annotations

import re
from typing import NamedTuple

_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')
_ESCAPE = re.compile(r"\\(.)")


class Sample(NamedTuple):
    name: str
    labels: dict[str, str]
    value: float


class Exposition(NamedTuple):
    families: frozenset[str]  # the names ``# TYPE`` lines declare (a family may have no sample yet)
    samples: tuple[Sample, ...]

    def named(self, name: str) -> list[Sample]:
        """The samples of ``name``, every label set."""
        return [s for s in self.samples if s.name == name]

    def total(self, name: str) -> float | None:
        """The sum of ``name``'s samples over every label set; None when it has none."""
        found = self.named(name)
        return sum(s.value for s in found) if found else None


def _unescape(value: str) -> str:
    return _ESCAPE.sub(lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def parse(text: str) -> Exposition:
    """The declared families and every sample line of ``text`` (other comments, and lines that
    are not a sample or whose value is not a number, skipped)."""
    families: set[str] = set()
    samples: list[Sample] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#"):
            words = line.split()
            if len(words) > 2 and words[1] == "TYPE":
                families.add(words[2])
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name, labels, value = match.groups()
        try:
            number = float(value)
        except ValueError:
            continue
        pairs = {key: _unescape(val) for key, val in _LABEL.findall(labels or "")}
        samples.append(Sample(name, pairs, number))
    return Exposition(frozenset(families), tuple(samples))
