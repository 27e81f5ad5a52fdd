"""The shared Vast.ai API client (plugins/module_utils/vastai_api.py): the pure helpers (SSH
endpoint choice, host names, error descriptions, key lookup order) and the HTTP client against
the Vast.ai API double (paging, retries, a rejected key, error bodies, bad answers)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.doubles.vastai_api_double import FIRST_ID, VastApiDouble
from tests.support import free_port
from tests.vastai.conftest import CLIENT_SOURCE

KEY = "test-vast-key"
RATE_LIMITED = "API requests too frequent: endpoint threshold=1.0"
# nginx's built-in 429 page (ngx_http_special_response.c), what a proxy in front of an API sends
NGINX_429 = ("<html>\r\n<head><title>429 Too Many Requests</title></head>\r\n<body>\r\n"
             "<center><h1>429 Too Many Requests</h1></center>\r\n<hr><center>nginx</center>\r\n"
             "</body>\r\n</html>\r\n")
ID = {n: FIRST_ID + n for n in range(33)}


def _requests(double: VastApiDouble) -> list[dict[str, Any]]:
    with double.state.lock:
        return [dict(r) for r in double.state.requests]


# -- what it may import --------------------------------------------------------------------------


def test_standard_library_only_and_python_38_syntax() -> None:
    """It runs inside an Ansible module, on the controller and standalone on a workstation."""
    tree = ast.parse(CLIENT_SOURCE.read_text(), feature_version=(3, 8))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports: it is loaded under several names"
            imported.add((node.module or "").split(".")[0])
    assert imported
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported


# -- pure helpers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("inst", "mode", "expected"),
    [
        # IPv6 entry listed first: the IPv4 one is taken; HostPort is a string
        ({"public_ipaddr": "203.0.113.5", "ssh_host": "ssh3.vast.ai", "ssh_port": 12296,
          "ports": {"22/tcp": [{"HostIp": "::", "HostPort": "30022"},
                               {"HostIp": "0.0.0.0", "HostPort": "30022"}]}},
         "auto", ("203.0.113.5", 30022, "direct")),
        ({"public_ipaddr": "203.0.113.5", "ssh_host": "ssh3.vast.ai", "ssh_port": 12296,
          "ports": {"22/tcp": [{"HostIp": "::", "HostPort": "30023"},
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
        ({"ssh_host": "ssh3.vast.ai", "ssh_port": "12296"}, "auto", None),
        ({"actual_status": None, "ssh_host": None, "ssh_port": None}, "auto", None),
    ],
)
def test_ssh_endpoint(
    api: ModuleType, inst: dict[str, Any], mode: str, expected: tuple[Any, ...] | None
) -> None:
    endpoint = api.ssh_endpoint(inst, mode)
    assert endpoint == expected
    if endpoint is not None:
        assert endpoint._asdict() == dict(zip(("host", "port", "mode"), expected, strict=True))


def test_host_names_and_the_forms_that_match_them(api: ModuleType) -> None:
    instances = [
        {"id": 1, "label": "box"}, {"id": 2, "label": " box "}, {"id": 3, "label": None},
        {"id": 4, "label": "   "}, {"id": 5, "label": "a b/c"}, {"id": 6, "label": "solo"},
        {"id": 7, "label": "box-1"},
    ]
    names = api.host_names(instances)
    assert names == ["box-1", "box-2", "C.3", "C.4", "a-b-c", "solo", "box-1-7"]
    # what the vastai_instance module matches by host name covers every name the plugin gives
    for inst, name in zip(instances, names, strict=True):
        assert name in api.host_name_forms(inst), (inst, name)
    assert api.host_name_forms({"id": 5, "label": "a b/c"}) == {"C.5", "a-b-c", "a-b-c-5"}
    assert api.host_name_forms({"id": 3, "label": None}) == {"C.3"}


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (429, b"API requests too frequent", "HTTP 429 API requests too frequent"),
        (429, b'{"detail": "API requests too frequent endpoint threshold=4.5"}',
         "HTTP 429 API requests too frequent endpoint threshold=4.5"),
        (400, b'{"error": "invalid_token", "msg": "bad"}', "HTTP 400 invalid_token: bad"),
        (404, b'{"success": false}', 'HTTP 404 {"success": false}'),
        (500, b"x" * 300, "HTTP 500 " + "x" * 200),
        (502, b"", "HTTP 502"),
        # an HTML page is its title, a text body one line; no copy of the status number
        (429, NGINX_429.encode(), "HTTP 429 Too Many Requests"),
        (503, b"<!DOCTYPE html><html><body><h1>Down  for\n maintenance</h1><p>soon</p>",
         "HTTP 503 Down for maintenance soon"),
        (503, b"<html><body>" + b"<p>down</p>" * 99, "HTTP 503 " + " ".join(["down"] * 40)),
        (502, b"<html><head><title>api.example &amp; co | 502: Bad gateway</title>",
         "HTTP 502 api.example & co | 502: Bad gateway"),
        (504, b"504 Gateway Time-out\r\nupstream timed out\r\n",
         "HTTP 504 Gateway Time-out upstream timed out"),
    ],
)
def test_error_detail(api: ModuleType, status: int, body: bytes, expected: str) -> None:
    assert api.error_detail(status, body) == expected


def test_explain_and_strip_strings(api: ModuleType) -> None:
    assert api.explain({"error": "no_such_ask", "msg": "Offer gone", "detail": ""}) == (
        "no_such_ask: Offer gone")
    assert api.explain(["error"]) == ""
    assert api.strip_strings({"a": " x ", "b": [" y\n", 3, {"c": "\tz"}], "d": None}) == {
        "a": "x", "b": ["y", 3, {"c": "z"}], "d": None}


def test_api_key_lookup_order(
    api: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("VAST_API_KEY", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    xdg_default = home / ".config" / "vastai" / "vast_api_key"
    legacy = home / ".vast_api_key"
    assert api.key_files() == [str(xdg_default), str(legacy)]
    assert api.find_api_key() is None

    legacy.write_text("legacy-key\n")
    assert api.find_api_key() == ("legacy-key", str(legacy))
    xdg_default.parent.mkdir(parents=True)
    xdg_default.write_text("   \n")  # an empty file is passed over
    assert api.find_api_key() == ("legacy-key", str(legacy))
    xdg_default.write_text("config-key\n")
    assert api.find_api_key() == ("config-key", str(xdg_default))

    xdg = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    assert api.find_api_key() == ("legacy-key", str(legacy))
    (xdg / "vastai").mkdir(parents=True)
    (xdg / "vastai" / "vast_api_key").write_text("xdg-key")
    assert api.find_api_key() == ("xdg-key", str(xdg / "vastai" / "vast_api_key"))

    monkeypatch.setenv("VAST_API_KEY", " env-key ")
    assert api.find_api_key() == ("env-key", "VAST_API_KEY")
    assert api.find_api_key("  ", "the option") == ("env-key", "VAST_API_KEY")
    assert api.find_api_key(" given-key\n", "the option") == ("given-key", "the option")


# -- the HTTP client against the API double ------------------------------------------------------


def test_instances_walks_every_page_and_strips_strings(
    api: ModuleType, double: VastApiDouble
) -> None:
    rows = api.Client(double.url + "/", KEY).instances()
    assert sorted(r["id"] for r in rows) == [ID[n] for n in range(33)]
    spaced = next(r for r in rows if r["id"] == ID[8])
    assert spaced["label"] == "spaced label/x"
    pages = [r for r in _requests(double) if r["path"] == api.LIST_PATH]
    assert [(p["method"], p["query"].get("limit")) for p in pages] == [("GET", "25")] * 2
    assert "after_token" not in pages[0]["query"]
    assert pages[1]["query"]["after_token"]
    assert all(p["key_ok"] for p in pages)


def test_retries_with_a_growing_pause_then_answers(api: ModuleType, double: VastApiDouble) -> None:
    double.state.fail_next = [[429, RATE_LIMITED, "text/plain"], [503, "Service Unavailable"]]
    retried: list[tuple[str, float]] = []
    rows = api.Client(double.url, KEY, on_retry=lambda d, p: retried.append((d, p))).instances()
    assert len(rows) == 33
    assert retried == [(f"HTTP 429 {RATE_LIMITED}", 0.15),
                       ("HTTP 503 Service Unavailable", pytest.approx(0.225))]
    assert double.state.count("GET", api.LIST_PATH) == 4  # 2 refused + 2 pages


def test_retries_are_bounded(api: ModuleType, double: VastApiDouble) -> None:
    double.state.fail_next = [[429, RATE_LIMITED, "text/plain"]] * 5
    with pytest.raises(api.HttpStatusError) as caught:
        api.Client(double.url, KEY, retries=2).instances()
    assert isinstance(caught.value, api.RateLimited)
    assert (caught.value.status, caught.value.tries) == (429, 3)
    assert str(caught.value) == (
        f"Vast.ai API rate limit (HTTP 429 {RATE_LIMITED}) persisted after 3 tries: "
        "wait a minute and retry, or lower the request rate")
    assert caught.value.body is None  # not JSON
    assert double.state.count("GET", api.LIST_PATH) == 3


def test_a_persistent_429_page_is_one_line_without_html(
    api: ModuleType, double: VastApiDouble
) -> None:
    double.state.fail_next = [[429, NGINX_429, "text/html"]] * 2
    retried: list[str] = []
    client = api.Client(double.url, KEY, retries=0, on_retry=lambda d, p: retried.append(d))
    with pytest.raises(api.RateLimited) as caught:
        client.instances()
    assert str(caught.value) == (
        "Vast.ai API rate limit (HTTP 429 Too Many Requests) persisted after 1 try: "
        "wait a minute and retry, or lower the request rate")
    assert retried == []
    double.state.fail_next = [[429, NGINX_429, "text/html"], [502, NGINX_429, "text/html"]]
    with pytest.raises(api.HttpStatusError) as other:
        api.Client(double.url, KEY, retries=1, on_retry=lambda d, p: retried.append(d)).instances()
    assert retried == ["HTTP 429 Too Many Requests"]  # the retry log line has no HTML either
    assert not isinstance(other.value, api.RateLimited)
    assert str(other.value) == "HTTP 502 429 Too Many Requests"  # the page's title, as it is


def test_a_rejected_key_is_not_retried_and_not_shown(
    api: ModuleType, double: VastApiDouble
) -> None:
    with pytest.raises(api.KeyRejected) as caught:
        api.Client(double.url, "wrong-secret-key").instances()
    assert str(caught.value) == "Vast.ai rejected the API key (401 auth_error)"
    assert isinstance(caught.value, api.VastApiError)
    assert [r["key_ok"] for r in _requests(double)] == [False]


def test_error_answers_keep_their_json_body(api: ModuleType, double: VastApiDouble) -> None:
    client = api.Client(double.url, KEY)
    with pytest.raises(api.HttpStatusError) as caught:
        client.call("DELETE", "/api/v0/instances/1/")
    assert caught.value.status == 404
    assert isinstance(caught.value.body, dict)
    assert str(caught.value) == f"HTTP 404 {api.explain(caught.value.body)}"
    assert double.state.count("DELETE", "/api/v0/instances/1/") == 1  # a 404 is final


def test_a_json_body_goes_as_json(api: ModuleType, double: VastApiDouble) -> None:
    search = {"num_gpus": {"eq": 1}, "order": [["dph_total", "asc"]], "limit": 3}
    answer = api.Client(double.url, KEY).call("POST", "/api/v0/bundles/", search)
    assert isinstance(answer["offers"], list)
    assert 0 < len(answer["offers"]) <= 3
    [logged] = [r for r in _requests(double) if r["path"] == "/api/v0/bundles/"]
    assert logged["body"] == search


@pytest.mark.parametrize(
    ("injected", "message"),
    [
        ([200, "<html>maintenance</html>", "text/html"], "the answer is not JSON"),
        ([200, "", "application/json"], "the answer is not JSON"),
        ([200, [1, 2], "application/json"], "the answer is not a JSON object"),
        ([200, {"success": True, "instances_found": 0}, "application/json"],
         "the answer has no instance list"),
        ([200, {"instances": "none"}, "application/json"], "the answer has no instance list"),
    ],
)
def test_answers_of_the_wrong_shape(
    api: ModuleType, double: VastApiDouble, injected: list[Any], message: str
) -> None:
    double.state.fail_next = [injected]
    with pytest.raises(api.BadAnswer) as caught:
        api.Client(double.url, KEY).instances()
    assert str(caught.value) == message


def test_instances_null_is_an_account_without_instances(
    api: ModuleType, double: VastApiDouble
) -> None:
    # the answer once the account's last instance is destroyed; the vastai client reads [] too
    double.state.fail_next = [[200, {"instances": None}, "application/json"]]
    assert api.Client(double.url, KEY).instances() == []
    assert double.state.count("GET", api.LIST_PATH) == 1


def test_an_empty_answer_is_allowed_when_asked(api: ModuleType, double: VastApiDouble) -> None:
    double.state.fail_next = [[200, "", "application/json"]]
    assert api.Client(double.url, KEY).call("DELETE", f"/api/v0/instances/{ID[0]}/",
                                            allow_empty=True) == {}


def test_no_server_is_unreachable(api: ModuleType) -> None:
    with pytest.raises(api.ApiUnreachable) as caught:
        api.Client(f"http://127.0.0.1:{free_port()}", KEY, timeout=5).instances()
    assert str(caught.value).startswith("cannot reach the Vast.ai API: ")
    assert str(caught.value) == f"cannot reach the Vast.ai API: {caught.value.reason}"
    assert KEY not in str(caught.value)
