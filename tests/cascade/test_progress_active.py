"""Progress throttling, the active-model file and the all-fail report."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

from vastllm.cascade.active import read_active, same_model, write_active
from vastllm.cascade.errors import CascadeError
from vastllm.cascade.progress import PullProgress, ThrottledPrinter
from vastllm.cascade.smoke import context_prompt, tool_call_in_text


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_lines_at_most_every_interval_and_always_success() -> None:
    out, clock = io.StringIO(), Clock()
    printer = ThrottledPrinter(5.0, out, clock)
    for second, done in ((0, 0), (1, 10), (4, 40), (6, 60), (7, 70), (12, 100)):
        clock.now = 100.0 + second
        printer(PullProgress("m:7b", "pulling 1234", done * 10**7, 10**9))
    printer(PullProgress("m:7b", "success"))
    assert out.getvalue().splitlines() == [
        "m:7b: pulling 1234 0% (0.0 GB of 1.0 GB)",
        "m:7b: pulling 1234 60% (0.6 GB of 1.0 GB)",
        "m:7b: pulling 1234 100% (1.0 GB of 1.0 GB)",
        "m:7b: success",
    ]
    assert PullProgress("m", "pulling manifest").percent is None


def test_active_file_is_replaced_atomically(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "vastllm" / "active_model.json"
    assert read_active(path) is None
    record = {"name": "a", "engine": "ollama", "context_length": 1, "base_url": "u"}
    write_active(path, record)
    assert json.loads(path.read_text()) == record
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    write_active(path, {**record, "name": "b"})
    assert read_active(path) == {**record, "name": "b"}
    assert os.listdir(path.parent) == ["active_model.json"]  # no temp file left
    assert same_model(record, {**record, "selected_at": "later"})
    assert not same_model(record, {**record, "context_length": 2})
    path.write_text("{broken")
    assert read_active(path) is None


def test_all_fail_report_has_one_line_per_candidate() -> None:
    error = CascadeError([("a", "too big: x"), ("b", "pull failed: y")])
    assert str(error) == (
        "no candidate model passed the cascade:\n- a: too big: x\n- b: pull failed: y"
    )
    assert "(the candidate list is empty)" in str(CascadeError([]))


def test_tool_call_text_detection() -> None:
    assert tool_call_in_text('{"name": "get_weather", "arguments": {"city": "P"}}', "get_weather")
    assert tool_call_in_text('<tool_call>\n{"name": "get_weather"}\n</tool_call>', "get_weather")
    assert not tool_call_in_text("I would call get_weather for Paris.", "get_weather")
    assert not tool_call_in_text('{"name": "other"}', "get_weather")


def test_context_prompt_size() -> None:
    prompt = context_prompt(32768, 0.7)
    assert len(prompt) == int(32768 * 0.7) * 4
    assert prompt.endswith("reply with the single word: done")
