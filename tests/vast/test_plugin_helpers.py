"""Edge cases of the vastai plugin's pure helpers (SSH endpoint choice, host names, errors)."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

import pytest

from tests.support import REPO


def _load_plugin() -> ModuleType:
    # Importing ansible replaces sys.intern with a patch object; torch, imported later by other
    # suites in the same pytest process, refuses to start with it. These helpers do not need it.
    intern = sys.intern
    spec = importlib.util.spec_from_file_location(
        "vastai_inventory_plugin", REPO / "plugins" / "inventory" / "vastai.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.intern = intern
    return module


@pytest.fixture(scope="module")
def vastai() -> ModuleType:
    return _load_plugin()


@pytest.mark.parametrize(
    ("inst", "mode", "expected"),
    [
        # IPv6 entry listed first: the IPv4 one is taken; HostPort is a string
        ({"public_ipaddr": "203.0.113.5", "ssh_host": "ssh3.vast.ai", "ssh_port": 12296,
          "ports": {"22/tcp": [{"HostIp": "::", "HostPort": "30022"},
                               {"HostIp": "0.0.0.0", "HostPort": "30022"}]}},
         "auto", ("203.0.113.5", 30022, "direct")),
        ({"public_ipaddr": "203.0.113.5", "ssh_host": "ssh3.vast.ai", "ssh_port": 12296,
          "ports": {"22/tcp": [{"HostIp": "0.0.0.0", "HostPort": "30022"}]}},
         "proxy", ("ssh3.vast.ai", 12296, "proxy")),
        ({"public_ipaddr": "203.0.113.5", "ssh_host": "ssh3.vast.ai", "ssh_port": 12296,
          "ports": None}, "direct", ("ssh3.vast.ai", 12296, "proxy")),
        ({"public_ipaddr": "203.0.113.5", "ssh_host": "ssh3.vast.ai", "ssh_port": 12296,
          "ports": {"22/tcp": None}}, "auto", ("ssh3.vast.ai", 12296, "proxy")),
        ({"public_ipaddr": "203.0.113.5", "ssh_host": "ssh3.vast.ai", "ssh_port": 12296,
          "ports": {"22/tcp": [{"HostIp": "0.0.0.0", "HostPort": ""}]}},
         "auto", ("ssh3.vast.ai", 12296, "proxy")),
        ({"public_ipaddr": None, "ssh_host": "ssh3.vast.ai", "ssh_port": 12296,
          "ports": {"22/tcp": [{"HostIp": "0.0.0.0", "HostPort": "30022"}]}},
         "auto", ("ssh3.vast.ai", 12296, "proxy")),
        ({"ssh_host": "ssh3.vast.ai", "ssh_port": 12296, "image_runtype": "jupyter"},
         "auto", ("ssh3.vast.ai", 12297, "proxy")),
        ({"actual_status": None, "ssh_host": None, "ssh_port": None}, "auto", (None, None, None)),
    ],
)
def test_ssh_endpoint(
    vastai: ModuleType, inst: dict[str, object], mode: str, expected: tuple[object, ...]
) -> None:
    assert vastai.ssh_endpoint(inst, mode) == expected


def test_host_names(vastai: ModuleType) -> None:
    instances = [
        {"id": 1, "label": "box"}, {"id": 2, "label": " box "}, {"id": 3, "label": None},
        {"id": 4, "label": "   "}, {"id": 5, "label": "a b/c"}, {"id": 6, "label": "solo"},
        {"id": 7, "label": "box-1"},
    ]
    assert vastai.host_names(instances) == [
        "box-1", "box-2", "C.3", "C.4", "a-b-c", "solo", "box-1-7",
    ]


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (429, b"API requests too frequent", "HTTP 429 API requests too frequent"),
        (429, b'{"detail": "API requests too frequent endpoint threshold=4.5"}',
         "HTTP 429 API requests too frequent endpoint threshold=4.5"),
        (400, b'{"error": "invalid_token", "msg": "bad"}', "HTTP 400 invalid_token: bad"),
        (502, b"", "HTTP 502"),
    ],
)
def test_error_detail(vastai: ModuleType, status: int, body: bytes, expected: str) -> None:
    assert vastai._error_detail(status, body) == expected
