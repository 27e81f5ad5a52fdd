"""The Ollama path: the role, the cascade's choice, the proxy's answer, re-runs, 8 GB, GGUF.

The host runs the Ollama TEST DOUBLE installed from an Ollama-layout tarball, and an nvidia-smi
TEST DOUBLE reporting one 24 GB GPU. The double fails every pull of qwen3-coder with "no space
left on device". The tests run in file order on one host.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tarfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import gguf
import numpy as np
import pytest
import yaml
from scenario_helpers import REPO, run_playbook, run_python

testinfra_hosts = ["ansible://vastllm-ollama"]

EPHEMERAL = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/tmp"))
OLLAMA = "http://127.0.0.1:11434"
S3_PORT = 45902
RELEASES_PORT = 45903
# the release the role pins (the scenario installs the double under that version)
PINNED = yaml.safe_load((REPO / "roles/ollama/defaults/main.yml").read_text())["ollama_version"]
PINNED_BIN = f"/opt/vastllm/ollama/{PINNED}/bin/ollama"
# what the ollama role's auto picks for the 24 GB card the nvidia-smi double reports
AUTO_CONTEXT = 65536


def playbook(path: str, *extra: str) -> tuple[int, str, int]:
    """Run a playbook with Molecule's inventory; return rc, output and the host's changed count."""
    rc, out, changed = run_playbook(path, *extra)
    return rc, out, changed.get("vastllm-ollama", -1)


def get_json(host, url: str) -> dict:
    out = host.run(f"curl -sS {url}")
    assert out.rc == 0, out.stderr
    return json.loads(out.stdout)


def active(host) -> dict:
    return json.loads(host.file("/etc/vastllm/active_model.json").content_string)


def pulls(host) -> dict[str, int]:
    stats = get_json(host, f"{OLLAMA}/__double__/stats")
    counts = stats["requests"]
    return {k[5:]: v for k, v in counts.items() if isinstance(v, int) and k.startswith("pull ")}


def ask(host, python: str, text: str) -> str:
    code = (
        "import anthropic\n"
        "c = anthropic.Anthropic(base_url='http://127.0.0.1:8082', api_key='unused')\n"
        f"m = c.messages.create(model='claude-sonnet-4-5', max_tokens=64, "
        f"messages=[{{'role': 'user', 'content': {text!r}}}])\n"
        "print(m.model)\nprint(m.content[0].text)\n"
    )
    return run_python(host, python, code)


def test_ollama_is_installed_from_the_tarball_and_answers(host):
    binary = host.file("/usr/local/bin/ollama")
    assert binary.is_symlink
    assert binary.linked_to == PINNED_BIN
    assert host.file(f"/opt/vastllm/ollama/{PINNED}/lib/ollama").is_directory
    assert not host.file("/opt/vastllm/ollama/.download").exists
    # the double plays the pinned release (Anthropic's /v1/messages included)
    assert get_json(host, f"{OLLAMA}/api/version")["version"] == PINNED
    # loopback only
    assert "tcp://0.0.0.0:11434" not in [str(s) for s in host.socket.get_listening_sockets()]


def test_zstd_was_installed_from_empty_minutes_old_package_lists(host):
    # prepare.yml emptied /var/lib/apt/lists and touched it: system_packages updated them anyway
    assert host.package("zstd").is_installed
    assert host.run("ls /var/lib/apt/lists | grep -c _Packages").stdout.strip() not in ("", "0")


def test_ollama_runs_supervised_with_its_settings(host):
    status = host.run("supervisorctl status vastllm-ollama").stdout
    assert "RUNNING" in status, status
    env = host.file("/etc/vastllm/env/vastllm-ollama.env")
    assert env.mode == 0o600
    text = env.content_string
    for line in (
        'OLLAMA_HOST="127.0.0.1:11434"',
        'OLLAMA_MODELS="/workspace/models/ollama"',
        f'OLLAMA_CONTEXT_LENGTH="{AUTO_CONTEXT}"',  # auto: 24 GB free -> 64k
        'OLLAMA_NUM_PARALLEL="1"',
        'OLLAMA_KV_CACHE_TYPE="q8_0"',
        'OLLAMA_KEEP_ALIVE="-1"',
        'OLLAMA_FLASH_ATTENTION="1"',
    ):
        assert line in text, text


def test_check_mode_on_the_converged_host_changes_nothing(host):
    before = pulls(host)
    rc, out, changed = playbook("playbooks/site.yml", "--check")
    assert rc == 0, out[-4000:]
    assert changed == 0, out[-4000:]
    assert "nothing is pulled in check mode" in out
    assert pulls(host) == before


def test_first_candidate_failed_with_no_space_and_the_second_is_active(host):
    record = active(host)
    assert record["name"] == "qwen2.5-coder:7b"
    assert record["engine"] == "ollama"
    assert record["context_length"] == 32768
    skipped = {s["name"]: s["reason"] for s in record["skipped"]}
    assert "no space left on device" in skipped["qwen3-coder"], skipped


def test_idempotent_converge_pulled_nothing_again(host):
    # converge pulled each once (qwen3-coder failed, qwen2.5-coder:7b succeeded); the
    # idempotence run that followed must not have pulled anything
    counts = pulls(host)
    assert counts.get("qwen3-coder:latest") == 1, counts
    assert counts.get("qwen2.5-coder:7b") == 1, counts
    assert set(counts) == {"qwen3-coder:latest", "qwen2.5-coder:7b"}, counts


def test_the_chosen_model_is_resident_in_vram(host):
    loaded = get_json(host, f"{OLLAMA}/api/ps")["models"]
    names = [m["name"] for m in loaded]
    assert "qwen2.5-coder:7b" in names, names
    model = next(m for m in loaded if m["name"] == "qwen2.5-coder:7b")
    assert model["size_vram"] == model["size"]


def test_anthropic_sdk_gets_the_answer_of_the_chosen_model_through_the_proxy(host, sdk):
    out = ask(host, sdk, "Name a prime number please")
    assert "You said: Name a prime number please" in out
    last = get_json(host, f"{OLLAMA}/__double__/last_request")
    assert last["model"] == "qwen2.5-coder:7b", last
    health = get_json(host, "http://127.0.0.1:8082/health")
    assert "qwen2.5-coder:7b" in json.dumps(health)


def test_with_8_gb_the_first_candidate_is_skipped_without_a_pull(host):
    host.run("echo 'custom:NVIDIA GeForce RTX 3070,8192,7900' > /etc/nvidia-smi-double/scenario")
    before = pulls(host)
    try:
        rc, out, _ = playbook("playbooks/model_cascade.yml", "-e", "model_cascade_sticky=false")
        assert rc == 0, out[-4000:]
        assert active(host)["name"] == "qwen2.5-coder:7b"
        # this run's reason (the record keeps the reasons of the selection that chose the model)
        assert re.search(r"skipped qwen3-coder: [^;]*VRAM", out), out[-4000:]
        assert pulls(host) == before, "nothing may be pulled"
        # and again: nothing changes
        rc, out, changed = playbook("playbooks/model_cascade.yml")
        assert rc == 0, out[-4000:]
        assert changed == 0, out[-4000:]
    finally:
        host.run(
            "echo 'custom:NVIDIA GeForce RTX 4090,24564,24210' > /etc/nvidia-smi-double/scenario"
        )


def test_when_nothing_fits_the_failure_names_each_candidate(host):
    host.run("echo 'custom:NVIDIA GeForce GT 1030,2048,1900' > /etc/nvidia-smi-double/scenario")
    try:
        rc, out, _ = playbook(
            "playbooks/model_cascade.yml", "-e", "model_cascade_sticky=false",
            "-e", '{"model_cascade_candidates": [{"name": "qwen3-coder", "download_bytes": '
            '"18.5 GB", "vram_bytes": "21.8 GB"}, {"name": "llama3.1:8b", "download_bytes": '
            '"4.7 GB", "vram_bytes": "9.5 GB"}]}',
        )
        assert rc != 0
        assert "No model passed the cascade" in out, out[-4000:]
        assert re.search(r"qwen3-coder: .*VRAM", out), out[-4000:]
        assert re.search(r"llama3\.1:8b: .*VRAM", out), out[-4000:]
        # the active model is left as it was
        assert active(host)["name"] == "qwen2.5-coder:7b"
    finally:
        host.run(
            "echo 'custom:NVIDIA GeForce RTX 4090,24564,24210' > /etc/nvidia-smi-double/scenario"
        )


def test_recover_pulls_a_missing_active_model_again(host):
    removed = host.run("OLLAMA_HOST=127.0.0.1:11434 ollama rm qwen2.5-coder:7b")
    assert removed.rc == 0, removed.stderr
    rc, out, changed = playbook("playbooks/recover.yml")
    assert rc == 0, out[-4000:]
    assert "Ollama model qwen2.5-coder:7b is missing" in out, out[-4000:]
    assert changed > 0
    tags = [m["name"] for m in get_json(host, f"{OLLAMA}/api/tags")["models"]]
    assert "qwen2.5-coder:7b" in tags
    rc, out, changed = playbook("playbooks/recover.yml")
    assert rc == 0, out[-4000:]
    assert changed == 0, out[-4000:]
    assert "HEALTHY" in out


@pytest.fixture
def release_server(tmp_path):
    """A release download server on this machine's loopback (forwarded into the host) serving
    only the .tgz of the double (as older Ollama releases) and a sha256sum.txt."""
    built = subprocess.run(
        [sys.executable, "-m", "tests.doubles.ollama_double_tarball",
         str(REPO / ".cache/ollama-double"), "--format", "tgz"],
        capture_output=True, text=True, check=True, cwd=REPO,
    )
    info = json.loads(built.stdout)
    (tmp_path / "ollama-linux-amd64.tgz").write_bytes(Path(info["path"]).read_bytes())
    server = ThreadingHTTPServer(
        ("127.0.0.1", RELEASES_PORT), partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield tmp_path, info["sha256"]
    finally:
        server.shutdown()
        server.server_close()


def _url_install(version: str) -> tuple[int, str, int]:
    return playbook(
        "molecule/ollama/ollama_role.yml",
        "-e", f"ollama_version={version}",
        "-e", "ollama_archive_src=",
        "-e", "ollama_archive_src_sha256=",
        "-e", f"ollama_archive_base_url=http://127.0.0.1:{RELEASES_PORT}",
        "-e", f"ollama_archive_checksum=sha256:http://127.0.0.1:{RELEASES_PORT}/sha256sum.txt",
    )


def test_a_release_with_a_wrong_checksum_is_refused_and_the_running_one_kept(host, release_server):
    root, _ = release_server
    (root / "sha256sum.txt").write_text("0" * 64 + "  ollama-linux-amd64.tgz\n")
    rc, out, _ = _url_install("0.12.7")
    assert rc != 0
    assert re.search(r"checksum for \S+ did not match", out), out[-4000:]
    assert not host.file("/opt/vastllm/ollama/0.12.7").exists
    assert host.file("/usr/local/bin/ollama").linked_to == PINNED_BIN
    assert get_json(host, f"{OLLAMA}/api/version")["version"]


def test_a_pinned_release_is_checked_against_its_pinned_hash_not_the_servers(
    host, release_server
):
    # the server's sha256sum.txt matches its .tar.zst, but the hash pinned for the release does
    # not: the pinned one decides, nothing is installed, the running release stays
    root, _ = release_server
    built = subprocess.run(
        [sys.executable, "-m", "tests.doubles.ollama_double_tarball",
         str(REPO / ".cache/ollama-double")],
        capture_output=True, text=True, check=True, cwd=REPO,
    )
    info = json.loads(built.stdout)
    (root / "ollama-linux-amd64.tar.zst").write_bytes(Path(info["path"]).read_bytes())
    (root / "sha256sum.txt").write_text(f"{info['sha256']}  ./ollama-linux-amd64.tar.zst\n")
    rc, out, _ = playbook(
        "molecule/ollama/ollama_role.yml",
        "-e", "ollama_version=0.40.3",
        "-e", "ollama_archive_src=",
        "-e", "ollama_archive_src_sha256=",
        "-e", "ollama_archive_checksum=",
        "-e", f"ollama_archive_base_url=http://127.0.0.1:{RELEASES_PORT}",
        "-e", json.dumps({"ollama_archive_sha256": {"0.40.3": {"amd64": "0" * 64}}}),
    )
    assert rc != 0
    assert re.search(r"checksum for \S+ did not match", out), out[-4000:]
    assert not host.file("/opt/vastllm/ollama/0.40.3").exists
    assert host.file("/usr/local/bin/ollama").linked_to == PINNED_BIN
    (root / "ollama-linux-amd64.tar.zst").unlink()


def test_a_release_downloads_by_url_falling_back_to_tgz_then_back(host, release_server):
    root, sha = release_server
    (root / "sha256sum.txt").write_text(f"{sha}  ollama-linux-amd64.tgz\n")
    rc, out, changed = _url_install("0.12.7")
    assert rc == 0, out[-4000:]
    assert changed > 0
    assert host.file("/usr/local/bin/ollama").linked_to == "/opt/vastllm/ollama/0.12.7/bin/ollama"
    assert "0.12.7/bin/ollama serve" in host.run("ps -eo args").stdout
    assert get_json(host, f"{OLLAMA}/api/version")["version"]
    # the models are kept across the upgrade
    tags = [m["name"] for m in get_json(host, f"{OLLAMA}/api/tags")["models"]]
    assert "qwen2.5-coder:7b" in tags
    rc, out, changed = _url_install("0.12.7")
    assert (rc, changed) == (0, 0), out[-4000:]
    # back to the scenario's release from the controller file
    rc, out, changed = playbook("molecule/ollama/ollama_role.yml")
    assert rc == 0, out[-4000:]
    assert host.file("/usr/local/bin/ollama").linked_to == PINNED_BIN


def _tiny_gguf_tarball(dest: Path) -> Path:
    """A real (tiny, untrained) GGUF file in a .tar.gz, as a fine-tuned model would be shipped."""
    gguf_path = dest / "tiny-coder.Q8_0.gguf"
    writer = gguf.GGUFWriter(str(gguf_path), "llama")
    writer.add_name("tiny-coder")
    writer.add_context_length(32768)
    writer.add_tensor("token_embd.weight", np.zeros((8, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tarball = dest / "tiny-coder.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(gguf_path, arcname="tiny-coder.Q8_0.gguf")
        readme = b"tiny GGUF for the vastllm ollama scenario\n"
        info = tarfile.TarInfo("README.md")
        info.size = len(readme)
        tar.addfile(info, io.BytesIO(readme))
    return tarball


def test_a_gguf_from_s3_becomes_the_served_ollama_model(host, sdk, tmp_path):
    tarball = _tiny_gguf_tarball(tmp_path)
    put = subprocess.run(
        [
            sys.executable, str(REPO / "scripts/local_s3.py"), "put",
            "--port", str(S3_PORT), str(tarball), "s3://models/tiny-coder.tar.gz",
        ],
        capture_output=True, text=True, check=False,
    )
    assert put.returncode == 0, put.stderr
    extra = [
        "--tags", "gpu,model",
        "-e", "model_fetch_url=s3://models/tiny-coder.tar.gz",
        "-e", f"model_fetch_endpoint_url=http://127.0.0.1:{S3_PORT}",
        "-e", "model_fetch_name=tiny-coder",
        "-e", "model_fetch_aws_access_key_id=testing",
        "-e", "model_fetch_aws_secret_access_key=testing",
        "-e", "ollama_gguf_name=tiny-coder",
    ]
    rc, out, changed = playbook("playbooks/site.yml", *extra)
    assert rc == 0, out[-4000:]
    assert changed > 0
    modelfile = host.file("/workspace/models/tiny-coder/Modelfile.vastllm").content_string
    assert "FROM /workspace/models/tiny-coder/tiny-coder.Q8_0.gguf" in modelfile
    assert f"PARAMETER num_ctx {AUTO_CONTEXT}" in modelfile
    tags = [m["name"] for m in get_json(host, f"{OLLAMA}/api/tags")["models"]]
    assert "tiny-coder:latest" in tags
    record = active(host)
    assert record["name"] == "tiny-coder"
    assert record["pinned"] is True
    out = ask(host, sdk, "hello from the fine-tune")
    assert "You said: hello from the fine-tune" in out
    # a second run creates nothing again
    rc, out, changed = playbook("playbooks/site.yml", *extra)
    assert rc == 0, out[-4000:]
    assert changed == 0, out[-4000:]
