"""The CLI's pure parts: -e values, the proxy's metrics text (from the proxy's own renderer),
server-sent events, failure messages of ansible results, and the command-to-playbook table."""

from __future__ import annotations

from pathlib import Path

import pytest

from vastllm.cli import plays
from vastllm.cli.errors import UsageProblem
from vastllm.cli.events import EventLog, failure_message
from vastllm.cli.extravars import parse_extra_vars
from vastllm.cli.project import Project, find_project
from vastllm.cli.prometheus import CacheStats, cache_stats
from vastllm.cli.sse import ServerSentEvent, iter_events
from vastllm.proxy.metrics import Metrics, UpstreamGauge


def test_extra_vars_are_json_when_they_are_json() -> None:
    assert parse_extra_vars(
        ["n=5", "flag=true", "name=gpu1", "l=[1, 2]", 'o={"a": 1}', 's="01"', "t=01", "e="]
    ) == {
        "n": 5,
        "flag": True,
        "name": "gpu1",
        "l": [1, 2],
        "o": {"a": 1},
        "s": "01",
        "t": "01",
        "e": "",
    }
    assert parse_extra_vars(["url=http://x:1/a=b"]) == {"url": "http://x:1/a=b"}
    with pytest.raises(UsageProblem):
        parse_extra_vars(["a-b=1"])


def test_cache_stats_read_the_proxy_exposition() -> None:
    metrics = Metrics()
    gauges = [UpstreamGauge("main", True, 0)]
    assert cache_stats(metrics.render(gauges, True).decode()) == CacheStats(0, 0, None)
    metrics.cache["hit"], metrics.cache["miss"] = 3, 1
    assert cache_stats(metrics.render(gauges, None).decode()) == CacheStats(3, 1, 0.75)
    assert cache_stats("# nothing here\nsomething_else 1\n") is None


def test_server_sent_events() -> None:
    lines = [
        ": comment",
        "event: message_start",
        'data: {"a": 1}',
        "",
        "data: one",
        "data: two",
        "",
        "event: ping",
        "data:{}",
    ]
    assert list(iter_events(lines)) == [
        ServerSentEvent("message_start", '{"a": 1}'),
        ServerSentEvent("message", "one\ntwo"),
        ServerSentEvent("ping", "{}"),
    ]


def test_failure_message_of_a_command_and_of_a_loop() -> None:
    assert failure_message({"msg": "non-zero return code", "stderr": "boom\n"}) == (
        "non-zero return code\nboom"
    )
    loop = {
        "msg": "One or more items failed",
        "results": [
            {"failed": False, "item": "a"},
            {"failed": True, "msg": "no such file", "_ansible_item_label": "b"},
        ],
    }
    assert failure_message(loop) == "item b: no such file"
    assert failure_message({}) == "failed without a message"


def test_ignored_and_rescued_failures_are_not_reported() -> None:
    log = EventLog()
    for event in (
        {"event": "playbook_on_play_start", "event_data": {"play": "p"}},
        {"event": "playbook_on_task_start", "event_data": {"task": "t1"}},
        {
            "event": "runner_on_failed",
            "event_data": {"host": "h1", "task": "t1", "ignore_errors": True, "res": {"msg": "x"}},
        },
        {"event": "runner_on_failed", "event_data": {"host": "h2", "task": "t1", "res": {}}},
        {"event": "runner_on_failed", "event_data": {"host": "h3", "task": "t1", "res": {}}},
        {
            "event": "playbook_on_stats",
            "event_data": {"ok": {"h1": 1, "h2": 1}, "failures": {"h3": 1}, "rescued": {"h2": 1}},
        },
    ):
        log.feed(event)
    assert [f.host for f in log.failures()] == ["h3"]
    assert log.recap is not None
    assert log.recap["h2"].rescued == 1


def test_command_to_playbook_table() -> None:
    run = plays.recover(check=True, serial=3)
    assert (run.playbook, run.check, run.extravars) == (
        "playbooks/recover.yml",
        True,
        {"vastllm_recover_serial": 3},
    )
    assert plays.recover(check=False, serial=None).extravars == {}
    assert plays.tunnel(down=False).tags == "tunnel"
    assert plays.status(limit="gpu1").limit == "gpu1:workstation"
    assert plays.status(limit=None).limit is None
    assert plays.destroy(["a"], confirm=True).extravars == {
        "vastai_destroy_labels": ["a"],
        "vastai_destroy_confirm": True,
    }


def test_project_found_upwards_and_its_inventory(tmp_path: Path) -> None:
    (tmp_path / "site.yml").write_text("[]\n")
    (tmp_path / "ansible.cfg").write_text("[defaults]\ninventory = inv/a.yml, /abs/b.yml\n")
    deep = tmp_path / "x" / "y"
    deep.mkdir(parents=True)
    project = find_project(None, deep)
    assert project == Project(tmp_path.resolve())
    assert project.default_inventories() == [str(tmp_path.resolve() / "inv/a.yml"), "/abs/b.yml"]
