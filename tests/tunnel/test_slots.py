"""Each GPU host's tunnel slot (plugins/filter/tunnel_slots.py): kept while the host stays, the
lowest free one for a new host, dropped when it leaves; one host always has slot 0."""

from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest

from tests.support import REPO


@pytest.fixture(scope="module")
def slots() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "tunnel_slots", REPO / "plugins/filter/tunnel_slots.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_first_run_gives_the_positions(slots: ModuleType) -> None:
    assert slots.tunnel_slots(["a", "b", "c"], {}) == {"a": 0, "b": 1, "c": 2}


def test_a_joining_host_moves_nobody(slots: ModuleType) -> None:
    # "aa" sorts first in the inventory, yet the hosts that were there keep their ports
    assert slots.tunnel_slots(["aa", "b", "c"], {"b": 0, "c": 1}) == {"aa": 2, "b": 0, "c": 1}


def test_a_leaving_host_frees_its_slot_and_moves_nobody(slots: ModuleType) -> None:
    assert slots.tunnel_slots(["c"], {"b": 0, "c": 1}) == {"c": 1}
    assert slots.tunnel_slots(["c", "d"], {"c": 1}) == {"c": 1, "d": 0}


def test_a_single_host_has_slot_zero(slots: ModuleType) -> None:
    assert slots.tunnel_slots(["demo"], {"other": 0, "x": 3}) == {"demo": 0}
