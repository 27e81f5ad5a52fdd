"""The ollama role's choices made on the controller: the context length and parallel requests
picked from free VRAM (plugins/filter/ollama_auto.py, roles/ollama/tasks/settings.yml), and what a
download is checked against (roles/ollama/tasks/archive_url.yml: the sha256 pinned in defaults for
a pinned release, the release's sha256sum.txt for any other).

The task files run in ansible-playbook on this machine (connection local, no container), with
the GPU fact given by a stand-in facts module and releases served from loopback.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import yaml

from tests.doubles import ollama_double_tarball
from tests.proxy.conftest import OllamaDouble
from tests.support import REPO

DEFAULTS = yaml.safe_load((REPO / "roles/ollama/defaults/main.yml").read_text())
TIERS = DEFAULTS["ollama_auto_tiers"]
PYTHON = REPO / ".venv/bin/python"
PLAYBOOK_BIN = REPO / ".venv/bin/ansible-playbook"
FAKE_FACTS = """
from ansible.module_utils.basic import AnsibleModule
m = AnsibleModule({"facts": {"type": "dict", "required": True}}, supports_check_mode=True)
m.exit_json(changed=False, ansible_facts=m.params["facts"])
"""


@pytest.fixture(scope="module")
def auto() -> ModuleType:
    path = REPO / "plugins/filter/ollama_auto.py"
    spec = importlib.util.spec_from_file_location("ollama_auto", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def gpu(free: int | None, total: int | None = None) -> dict[str, Any]:
    return {"mode": "gpu", "vram_free_mib": free, "vram_total_mib": total}


# -- the tiers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("facts", "context", "parallel"),
    [
        ({"mode": "cpu", "vram_free_mib": None, "vram_total_mib": None}, 8192, 1),
        (gpu(3900, 4096), 8192, 1),  # 4 GB card
        (gpu(7900, 8192), 16384, 1),  # 8 GB card
        (gpu(11900, 12288), 32768, 1),  # 12 GB card
        (gpu(15800, 16384), 32768, 1),  # 16 GB card
        (gpu(24210, 24564), 65536, 1),  # 24 GB card (RTX 4090 as nvidia-smi reports it)
        (gpu(48000, 49140), 131072, 2),  # 48 GB card
        (gpu(2 * 80000, 2 * 81559), 131072, 2),  # two 80 GB cards (free summed by gpu_facts)
    ],
)
def test_auto_follows_the_free_vram_tiers_of_the_defaults(
    auto: ModuleType, facts: dict[str, Any], context: int, parallel: int
) -> None:
    got = auto.choose(facts, TIERS)
    assert (got["context_length"], got["num_parallel"]) == (context, parallel)
    assert got["reason"]


def test_auto_is_at_least_64k_on_a_24_gb_card_and_the_cpu_tier_is_small() -> None:
    by_free = {t["min_free_mib"]: t for t in TIERS["gpu"]}
    assert by_free[20480]["context_length"] >= 65536
    assert TIERS["cpu"] == {"context_length": 8192, "num_parallel": 1}


def test_vram_the_loaded_models_hold_counts_as_free_up_to_the_total(auto: ModuleType) -> None:
    # a re-run with the 21 GB model loaded sees what the first run saw
    loaded = [{"name": "qwen3-coder:latest", "size_vram": 21_800_000_000}]
    got = auto.choose(gpu(3300, 24564), TIERS, "auto", "auto", loaded)
    assert got["context_length"] == 65536
    assert "20790 MiB that Ollama's loaded models hold" in got["reason"]
    # capped at the total: a 16 GB card never reaches the 24 GB tier
    got = auto.choose(gpu(15000, 16384), TIERS, "auto", "auto", loaded)
    assert got["context_length"] == 32768


def test_unknown_free_vram_uses_the_total_then_the_smallest_tier(auto: ModuleType) -> None:
    assert auto.choose(gpu(None, 24564), TIERS)["context_length"] == 65536
    got = auto.choose(gpu(None, None), TIERS)
    assert (got["context_length"], got["num_parallel"]) == (8192, 1)


def test_numbers_override_auto_each_on_its_own(auto: ModuleType) -> None:
    cpu = {"mode": "cpu"}
    assert auto.choose(cpu, TIERS, 32768, 4) == {
        "context_length": 32768,
        "num_parallel": 4,
        "reason": "both set",
    }
    got = auto.choose(gpu(24210, 24564), TIERS, "16384", "auto")
    assert (got["context_length"], got["num_parallel"]) == (16384, 1)
    got = auto.choose(gpu(24210, 24564), TIERS, "AUTO", 3)
    assert (got["context_length"], got["num_parallel"]) == (65536, 3)


@pytest.mark.parametrize(
    ("context", "parallel", "message"),
    [
        (
            "lots",
            "auto",
            "ollama_context_length must be auto or a positive whole number, not 'lots'",
        ),
        (0, "auto", "ollama_context_length must be auto or a positive whole number, not 0"),
        ("auto", True, "ollama_num_parallel must be auto or a positive whole number, not True"),
        ("auto", "-1", "ollama_num_parallel must be auto or a positive whole number, not '-1'"),
    ],
)
def test_a_wrong_setting_is_named(
    auto: ModuleType, context: object, parallel: object, message: str
) -> None:
    with pytest.raises(auto.SettingsError, match=message):
        auto.choose(gpu(24210, 24564), TIERS, context, parallel)


def test_broken_tiers_are_named(auto: ModuleType) -> None:
    with pytest.raises(auto.SettingsError, match=r"ollama_auto_tiers\.gpu\[0\] must be"):
        auto.choose(gpu(1, 2), {"gpu": [{"min_free_mib": 0}], "cpu": TIERS["cpu"]})
    with pytest.raises(auto.SettingsError, match=r"ollama_auto_tiers\.gpu must be a non-empty"):
        auto.choose(gpu(1, 2), {"gpu": [], "cpu": TIERS["cpu"]})


# -- the task files in ansible-playbook --------------------------------------------------------


def run_role_tasks(
    tmp: Path, tasks_from: str, extra: dict[str, Any], facts: dict[str, Any] | None = None
) -> tuple[int, str, dict[str, Any]]:
    """Run roles/ollama/tasks/<tasks_from>.yml on localhost; return rc, output and what the play
    wrote of _ollama_settings, _ollama_checksum, _ollama_archive and the GPU fact."""
    lib = tmp / "library"
    lib.mkdir(exist_ok=True)
    (lib / "fake_facts.py").write_text(FAKE_FACTS)
    out = tmp / "out.json"
    out.unlink(missing_ok=True)
    play = [
        {
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "tasks": [
                {"fake_facts": {"facts": {"vastllm_gpu": facts}}, "when": facts is not None},
                {"ansible.builtin.include_role": {"name": "ollama", "tasks_from": tasks_from}},
                {
                    "ansible.builtin.copy": {
                        "dest": str(out),
                        "content": (
                            "{{ {'settings': _ollama_settings | default(None),"
                            " 'checksum': _ollama_checksum | default(None),"
                            " 'archive': _ollama_archive | default(None),"
                            " 'gpu': ansible_facts.vastllm_gpu | default(None)} | to_json }}"
                        ),
                    }
                },
            ],
        }
    ]
    playbook = tmp / "play.yml"
    playbook.write_text(yaml.safe_dump(play))
    env = {
        **os.environ,
        "ANSIBLE_LIBRARY": f"{lib}:{REPO / 'plugins/modules'}",
        "ANSIBLE_CACHE_PLUGIN": "memory",  # not the user's fact cache
        "ANSIBLE_NOCOLOR": "1",
    }
    extra = {"ansible_python_interpreter": str(PYTHON), **extra}
    result = subprocess.run(
        [str(PLAYBOOK_BIN), "-i", "localhost,", str(playbook), "-e", json.dumps(extra)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    written = json.loads(out.read_text()) if out.exists() else {}
    return result.returncode, result.stdout + result.stderr, written


def test_settings_pick_the_tier_of_the_gpu_fact(tmp_path: Path) -> None:
    rc, out, got = run_role_tasks(tmp_path, "settings", {"ollama_port": 9}, gpu(24210, 24564))
    assert rc == 0, out[-3000:]
    assert got["settings"]["context_length"] == 65536
    assert got["settings"]["num_parallel"] == 1
    assert "Ollama context 65536 tokens, 1 parallel request(s), KV cache q8_0 (auto:" in out


def test_settings_count_what_the_running_ollama_holds(tmp_path: Path) -> None:
    double = OllamaDouble(tmp_path, ["qwen3-coder:30b"])
    try:
        # load the model: /api/ps then lists it with its size in VRAM
        httpx.post(double.url + "/api/generate", json={"model": "qwen3-coder:30b"})
        held = httpx.get(double.url + "/api/ps").json()["models"][0]["size_vram"] // 2**20
        assert held > 10000
        rc, out, got = run_role_tasks(
            tmp_path, "settings", {"ollama_port": double.port}, gpu(24564 - held, 24564)
        )
    finally:
        double.kill()
    assert rc == 0, out[-3000:]
    assert got["settings"]["context_length"] == 65536  # as before the model was loaded
    assert f"counting {held} MiB that Ollama's loaded models hold" in got["settings"]["reason"]


def test_settings_gather_the_gpu_fact_when_gpu_facts_has_not_run(
    tmp_path: Path, auto: ModuleType
) -> None:
    rc, out, got = run_role_tasks(
        tmp_path, "settings", {"ollama_port": 9, "vastllm_model_dir": str(tmp_path)}
    )
    assert rc == 0, out[-3000:]
    assert got["gpu"]["mode"] in ("gpu", "cpu")  # whatever this machine has
    expected = auto.choose(got["gpu"], TIERS)
    assert got["settings"]["context_length"] == expected["context_length"]


def test_numbers_are_used_as_set_without_looking_at_the_gpu(tmp_path: Path) -> None:
    rc, out, got = run_role_tasks(
        tmp_path, "settings", {"ollama_context_length": 40960, "ollama_num_parallel": 3}
    )
    assert rc == 0, out[-3000:]
    assert got["settings"] == {"context_length": 40960, "num_parallel": 3, "reason": "both set"}
    assert got["gpu"] is None  # not gathered: nothing was auto


def test_a_quantized_kv_cache_without_flash_attention_stops_the_role(tmp_path: Path) -> None:
    rc, out, _ = run_role_tasks(
        tmp_path, "settings", {"ollama_flash_attention": False}, gpu(24210, 24564)
    )
    assert rc != 0
    assert "ollama_kv_cache_type is q8_0 but ollama_flash_attention is false" in out
    rc, out, _ = run_role_tasks(
        tmp_path,
        "settings",
        {"ollama_flash_attention": False, "ollama_kv_cache_type": "f16", "ollama_port": 9},
        gpu(24210, 24564),
    )
    assert rc == 0, out[-3000:]


def test_a_wrong_context_length_is_named_by_the_role(tmp_path: Path) -> None:
    rc, out, _ = run_role_tasks(tmp_path, "settings", {"ollama_context_length": "big"})
    assert rc != 0
    assert "ollama_context_length must be auto or a positive whole number, not 'big'" in out


# -- what the download is checked against ------------------------------------------------------


@pytest.fixture
def releases(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """An empty release directory served on loopback, and its base URL."""
    root = tmp_path / "www"
    root.mkdir()
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(root))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def publish(root: Path, fmt: str, tmp: Path) -> str:
    """Put the double's Ollama-layout tarball in the release directory; return its sha256."""
    path, digest = ollama_double_tarball.build(tmp / "build", fmt)
    (root / f"ollama-linux-amd64.{fmt}").write_bytes(path.read_bytes())
    return digest


def download(tmp: Path, base: str, version: str, **extra: Any) -> tuple[int, str, dict[str, Any]]:
    install_root = tmp / "install"
    (install_root / ".download").mkdir(parents=True, exist_ok=True)
    return run_role_tasks(
        tmp,
        "archive_url",
        {
            "ollama_version": version,
            "ollama_archive_base_url": base,
            "ollama_install_root": str(install_root),
            "_ollama_arch": "amd64",
            **extra,
        },
    )


def test_the_pinned_release_is_checked_against_the_pinned_hash_not_sha256sum_txt(
    tmp_path: Path, releases: tuple[Path, str]
) -> None:
    root, base = releases
    digest = publish(root, "tar.zst", tmp_path)
    (root / "sha256sum.txt").write_text("0" * 64 + "  ./ollama-linux-amd64.tar.zst\n")
    pinned = {"ollama_archive_sha256": {"9.9.9": {"amd64": digest, "arm64": "1" * 64}}}
    rc, out, got = download(tmp_path, base, "9.9.9", **pinned)
    assert rc == 0, out[-3000:]
    assert got["checksum"] == f"sha256:{digest}"
    assert got["archive"].endswith("/ollama-linux-amd64.tar.zst")
    assert hashlib.sha256(Path(got["archive"]).read_bytes()).hexdigest() == digest

    # a tarball that is not the pinned one is refused, whatever sha256sum.txt says
    (root / "sha256sum.txt").write_text(f"{'2' * 64}  ./ollama-linux-amd64.tar.zst\n")
    wrong = {"ollama_archive_sha256": {"9.9.9": {"amd64": "2" * 64}}}
    rc, out, _ = download(tmp_path, base, "9.9.9", **wrong)
    assert rc != 0
    assert "did not match" in out


def test_a_pinned_release_is_only_taken_as_tar_zst(
    tmp_path: Path, releases: tuple[Path, str]
) -> None:
    root, base = releases
    digest = publish(root, "tgz", tmp_path)
    pinned = {"ollama_archive_sha256": {"9.9.9": {"amd64": digest}}}
    rc, out, _ = download(tmp_path, base, "9.9.9", **pinned)
    assert rc != 0
    assert "Ollama 9.9.9 for amd64 is not at" in out
    assert "tar.zst: 404" in out


def test_another_release_is_checked_against_its_sha256sum_txt_tgz_fallback(
    tmp_path: Path, releases: tuple[Path, str]
) -> None:
    root, base = releases
    digest = publish(root, "tgz", tmp_path)
    (root / "sha256sum.txt").write_text(f"{digest}  ./ollama-linux-amd64.tgz\n")
    rc, out, got = download(tmp_path, base, "0.12.7")
    assert rc == 0, out[-3000:]
    assert got["checksum"] == f"sha256:{base}/sha256sum.txt"
    assert got["archive"].endswith("/ollama-linux-amd64.tgz")
    # and a set checksum wins over both
    rc, out, got = download(tmp_path, base, "0.12.7", ollama_archive_checksum="sha256:" + "3" * 64)
    assert rc != 0
    assert "did not match" in out


def test_the_defaults_pin_both_architectures_of_the_pinned_release() -> None:
    hashes = DEFAULTS["ollama_archive_sha256"][DEFAULTS["ollama_version"]]
    assert set(hashes) == {"amd64", "arm64"}
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in hashes.values())
    assert DEFAULTS["ollama_archive_checksum"] == ""
