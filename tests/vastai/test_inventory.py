"""The vastai inventory plugin, run by the real ansible-inventory against the Vast.ai API double."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import yaml

from tests.doubles.vastai_api_double import FIRST_ID
from tests.support import REPO
from tests.vastai.conftest import Env

KEY = "test-vast-key"
BAD_KEY_MSG = (
    "Vast.ai rejected the API key (401 auth_error): "
    "check VAST_API_KEY / ~/.config/vastai/vast_api_key"
)
RATE_LIMITED = "API requests too frequent: endpoint threshold=1.0"
ID = {n: FIRST_ID + n for n in range(33)}
AUTO_PLUGIN = "ansible_collections.ansible.builtin.plugins.inventory.auto"


def test_lists_every_running_instance_with_its_ssh_endpoint(plugin: Env) -> None:
    plugin.write_key_file(KEY)  # the key comes from ~/.config/vastai/vast_api_key
    plugin.state.fail_next = [[429, RATE_LIMITED, "text/plain"], [503, "Service Unavailable"]]
    run = plugin.inventory({
        "keyed_groups": [{"key": "vast_gpu_name", "prefix": "gpu"}],
        "groups": {"multi_gpu": "vast_num_gpus > 1", "direct": "vast_ssh_mode == 'direct'"},
        "compose": {"total_vram_gib": "vast_gpu_ram_gib * vast_num_gpus"},
    })
    inv = run.inventory
    hostvars = inv["_meta"]["hostvars"]

    # two pages (25 + 5) after one 429 and one 503, each sent with the key from the file
    requests = plugin.list_requests()
    assert [r["query"].get("after_token") is None for r in requests] == [True] * 3 + [False]
    assert all(r["key_ok"] for r in requests)
    assert all(r["query"]["limit"] == "25" for r in requests)
    assert sorted(v["vast_id"] for v in hostvars.values()) == [ID[n] for n in range(30)]
    assert sorted(run.hosts("gpu_hosts")) == sorted(hostvars) == sorted(run.hosts("vast"))

    # names: label, C.<id> for a null label, -<id> on shared labels, sanitized padded label
    assert hostvars["llm-00"]["vast_id"] == ID[0]
    assert hostvars[f"C.{ID[3]}"]["vast_label"] is None
    assert {f"dup-box-{ID[5]}", f"dup-box-{ID[6]}"} <= set(hostvars)
    assert "dup-box" not in hostvars
    assert hostvars["spaced-label-x"]["vast_label"] == "spaced label/x"

    # stopped / created / provisioning instances are left out by default
    assert not {"old-exited", "abandoned", "provisioning"} & set(hostvars)

    # direct: public IP + host port of 22/tcp (a string in the API); proxy: ssh_host:ssh_port
    direct = hostvars["llm-00"]
    assert (direct["ansible_host"], direct["ansible_port"]) == ("203.0.113.1", 30000)
    assert direct["vast_ssh_mode"] == "direct"
    assert direct["vast_ports"] == {"22/tcp": 30000, "8000/tcp": 31000}
    proxy = hostvars["llm-01"]
    assert (proxy["ansible_host"], proxy["ansible_port"]) == ("ssh2.vast.ai", 20007)
    assert proxy["vast_ssh_mode"] == "proxy"
    assert proxy["vast_ports"] == {}
    no_22 = hostvars["llm-09"]  # ports mapped, but not 22/tcp
    assert (no_22["ansible_host"], no_22["ansible_port"], no_22["vast_ssh_mode"]) == (
        "ssh1.vast.ai", 20063, "proxy")
    assert hostvars["llm-11"]["ansible_port"] == 20077 + 1  # Jupyter run type: proxy port + 1
    assert {h["ansible_user"] for h in hostvars.values()} == {"root"}
    mapped_22 = {h for h, v in hostvars.items() if "22/tcp" in v["vast_ports"]}
    assert set(run.hosts("direct")) == mapped_22
    assert len(run.hosts("direct")) == 15

    # vast_* variables, nullable ones absent when the API leaves them out
    rtx = hostvars["llm-01"]
    assert rtx["vast_gpu_name"] == "RTX 4090"
    assert rtx["vast_gpu_ram"] == 24564
    assert rtx["vast_gpu_ram_gib"] == 24.0
    assert rtx["vast_cuda_max_good"] == 12.2
    assert rtx["vast_driver_version"] == "535.183.01"
    assert rtx["vast_geolocation"] == "Guangxi, CN"
    assert rtx["vast_actual_status"] == "running"
    assert rtx["total_vram_gib"] == 24.0
    assert "vast_cuda_max_good" not in hostvars["llm-00"]  # the A5000 record has no such field
    # the prices and start time vastllm status counts spend from, as the double records them
    row = plugin.state.instances[ID[1]]
    assert (rtx["vast_dph_total"], rtx["vast_storage_total_cost"], rtx["vast_start_date"]) == (
        row["dph_total"], row["storage_total_cost"], row["start_date"])

    # keyed groups by GPU model
    assert set(run.hosts("gpu_RTX_4090")) == {
        h for h, v in hostvars.items() if v["vast_gpu_name"] == "RTX 4090"}
    assert len(run.hosts("gpu_RTX_A5000")) == 10
    assert "multi_gpu" not in inv
    assert "test-vast-key" not in run.stdout + run.stderr


def test_statuses_option_and_forced_proxy(plugin: Env) -> None:
    # the api_key option (a template here) wins over VAST_API_KEY
    run = plugin.inventory(
        {"statuses": ["running", "exited", "created", None], "ssh_mode": "proxy",
         "api_key": "{{ lookup('ansible.builtin.env', 'MY_VAST_KEY') }}"},
        env={"MY_VAST_KEY": KEY, "VAST_API_KEY": "stale-key"},
    )
    hostvars = run.inventory["_meta"]["hostvars"]
    assert len(hostvars) == 33
    assert hostvars["old-exited"]["vast_actual_status"] == "exited"
    assert hostvars["abandoned"]["vast_cur_state"] == "stopped"
    provisioning = hostvars["provisioning"]
    assert provisioning["vast_actual_status"] is None
    assert "ansible_host" not in provisioning
    assert provisioning["vast_ssh_mode"] is None
    assert {v["vast_ssh_mode"] for h, v in hostvars.items() if h != "provisioning"} == {"proxy"}
    assert hostvars["llm-00"]["ansible_host"] == "ssh1.vast.ai"


def test_rejected_key_is_one_clear_error(plugin: Env) -> None:
    run = plugin.inventory({}, env={"VAST_API_KEY": "wrong-secret-key"})
    assert run.rc != 0
    assert BAD_KEY_MSG in run.stderr
    assert "Traceback" not in run.stderr
    assert "wrong-secret-key" not in run.stdout + run.stderr
    assert len(plugin.list_requests()) == 1  # a 401 is not retried
    assert not plugin.list_requests()[0]["key_ok"]


def test_missing_key_says_where_it_looked(plugin: Env) -> None:
    run = plugin.inventory({})
    assert run.rc != 0
    assert "No Vast.ai API key found" in run.stderr
    assert "VAST_API_KEY" in run.stderr
    assert f"{plugin.home}/.config/vastai/vast_api_key" in run.stderr
    assert f"{plugin.home}/.vast_api_key" in run.stderr
    assert plugin.list_requests() == []


def test_rate_limit_retries_are_bounded(plugin: Env) -> None:
    plugin.state.fail_next = [[429, RATE_LIMITED, "text/plain"]] * 5
    run = plugin.inventory({"api_key": KEY, "retries": 2})
    assert run.rc != 0
    assert "HTTP 429 API requests too frequent" in run.stderr
    assert len(plugin.list_requests()) == 3


def test_account_without_instances_is_an_empty_inventory(plugin: Env) -> None:
    # the Vast.ai answer once the account's last instance is destroyed
    plugin.state.fail_next = [[200, {"instances": None}, "application/json"]]
    run = plugin.inventory({"api_key": KEY}, name="test.vastai.yml", repo_config=True)
    assert run.rc == 0, run.stderr
    inv = run.inventory
    assert inv["_meta"]["hostvars"] == {}
    assert [g for g, v in inv.items() if v.get("hosts")] == []
    assert len(plugin.list_requests()) == 1


def test_repository_config_parses_a_failing_source_once(plugin: Env) -> None:
    # ansible.cfg's enable_plugins: ansible.builtin.auto would run the plugin a second time
    run = plugin.inventory({}, name="test.vastai.yml", env={"VAST_API_KEY": "wrong-secret-key"},
                         repo_config=True)
    assert run.rc != 0
    assert BAD_KEY_MSG in run.stderr
    assert AUTO_PLUGIN not in run.stderr
    assert len(plugin.list_requests()) == 1

    nginx_429 = ("<html>\r\n<head><title>429 Too Many Requests</title></head>\r\n<body>\r\n"
                 "<center><h1>429 Too Many Requests</h1></center>\r\n"
                 "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
    plugin.state.fail_next = [[429, nginx_429, "text/html"]] * 10
    run = plugin.inventory({"api_key": KEY, "retries": 2}, name="test.vastai.yml",
                         repo_config=True)
    assert run.rc != 0
    assert len(plugin.list_requests()) == 1 + 3
    assert ("Vast.ai API rate limit (HTTP 429 Too Many Requests) persisted after 3 tries: wait a "
            "minute and retry, or lower the request rate") in " ".join(run.stderr.split())
    for html in ("<html>", "<title>", "</", "nginx"):
        assert html not in run.stderr


def test_example_config_with_cache_serves_second_run_without_requests(plugin: Env) -> None:
    plugin.write_key_file(KEY, legacy=True)  # only the legacy ~/.vast_api_key exists
    config = yaml.safe_load((REPO / "inventory" / "vast.yml").read_text())
    assert config["cache"] is True
    config["cache_connection"] = str(plugin.tmp / "inventory-cache")
    first = plugin.inventory(config)
    hostvars = first.inventory["_meta"]["hostvars"]
    assert hostvars["llm-00"]["model_port"] == 31000
    assert "model_port" not in hostvars["llm-01"]
    assert hostvars["llm-01"]["total_vram_gib"] == 24.0
    assert len(first.hosts("gpu_RTX_4090")) == 20
    assert set(first.hosts("region_Guangxi")) == set(first.hosts("gpu_RTX_4090"))
    assert "large_vram" not in first.inventory
    assert len(plugin.list_requests()) == 2
    assert any((plugin.tmp / "inventory-cache").iterdir())
    # it holds instance tokens: the user's alone
    assert stat.S_IMODE((plugin.tmp / "inventory-cache").stat().st_mode) == 0o700
    second = plugin.inventory(config)
    assert len(plugin.list_requests()) == 2  # nothing new: served from the cache
    assert second.inventory["_meta"]["hostvars"] == first.inventory["_meta"]["hostvars"]
    assert len(second.hosts("gpu_hosts")) == 30


def test_plugin_away_from_its_api_client_says_what_it_needs(plugin: Env) -> None:
    # the plugin loads plugins/module_utils/vastai_api.py by its path next to plugins/inventory
    plugin_dir = plugin.tmp / "elsewhere" / "inventory"
    plugin_dir.mkdir(parents=True)
    shutil.copyfile(REPO / "plugins" / "inventory" / "vastai.py", plugin_dir / "vastai.py")
    run = plugin.inventory({"api_key": KEY}, env={"ANSIBLE_INVENTORY_PLUGINS": str(plugin_dir)})
    assert run.rc != 0
    expected = plugin.tmp / "elsewhere" / "module_utils" / "vastai_api.py"
    assert f"needs its Vast.ai API client {expected}" in " ".join(run.stderr.split())
    assert "Traceback" not in run.stderr
    assert plugin.list_requests() == []


def test_ansible_doc_renders_the_plugin(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(REPO / ".venv/bin/ansible-doc"), "-t", "inventory", "vastai"], cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
             "ANSIBLE_INVENTORY_PLUGINS": str(REPO / "plugins/inventory")},
        capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    for word in ("api_key", "api_url", "statuses", "ssh_mode", "retries", "keyed_groups",
                 "cache_plugin", "EXAMPLES"):
        assert word in proc.stdout
