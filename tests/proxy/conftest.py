"""Real processes on loopback for the proxy tests: redis-server, the Ollama test double and the
proxy itself (``python -m vastllm.proxy``), each on a port chosen at run time."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import REPO, free_port, wait_http, wait_tcp

DOUBLE = REPO / "tests" / "doubles" / "ollama_double.py"
ANTHROPIC_DOUBLE = REPO / "tests" / "doubles" / "anthropic_api_double.py"
MODEL = "qwen2.5-coder:7b"
REDIS_BIN = shutil.which("redis-server") or "/usr/bin/redis-server"


def _http_json(method: str, url: str, body: object = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - loopback
    with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - loopback
        return json.loads(r.read() or b"{}")


class RedisServer:
    def __init__(self) -> None:
        if not Path(REDIS_BIN).exists():
            pytest.fail(f"redis-server not found at {REDIS_BIN}: install the redis-server package")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                REDIS_BIN,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_tcp(self.port)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None


class _DoubleProcess:
    """What both doubles' control endpoints share (``/__double__/...``)."""

    url: str
    proc: subprocess.Popen[bytes]

    def stats(self) -> dict[str, int]:
        return dict(_http_json("GET", self.url + "/__double__/stats")["requests"])

    def last_request(self) -> dict[str, Any]:
        return dict(_http_json("GET", self.url + "/__double__/last_request"))

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


class OllamaDouble(_DoubleProcess):
    """The stdlib Ollama double as a subprocess, plus its control endpoints."""

    def __init__(
        self,
        tmp: Path,
        models: list[str],
        knobs: dict[str, Any] | None = None,
        port: int | None = None,
    ) -> None:
        self.port = port or free_port()  # a given port: a server that comes back where it was
        self.url = f"http://127.0.0.1:{self.port}"
        self.models_dir = tmp / f"ollama-models-{self.port}"
        env = {
            **os.environ,
            "OLLAMA_HOST": f"127.0.0.1:{self.port}",
            "OLLAMA_MODELS": str(self.models_dir),
            "OLLAMA_DOUBLE_MODELS": ",".join(models),
            "OLLAMA_DOUBLE_CONFIG": json.dumps(knobs or {}),
        }
        self.env = env
        self.log = tmp / f"ollama-double-{self.port}.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(DOUBLE), "serve"], env=env, stdout=log, stderr=log
            )
        wait_http(self.url + "/api/version")
        self.defaults = self.config()

    def config(self, **knobs: Any) -> dict[str, Any]:
        if not knobs:
            return dict(_http_json("GET", self.url + "/__double__/config"))
        return dict(_http_json("POST", self.url + "/__double__/config", knobs))

    def restore(self) -> None:
        self.config(**self.defaults)

    def calls(self, route: str = "POST /api/chat") -> int:
        return self.stats().get(route, 0)


class AnthropicDouble(_DoubleProcess):
    """The Anthropic API double (tests/doubles/anthropic_api_double.py) as a subprocess: the
    paid upstream, taking one key given through its environment."""

    def __init__(self, tmp: Path, key: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "ANTHROPIC_DOUBLE_PORT": str(self.port),
            "ANTHROPIC_DOUBLE_API_KEY": key,
        }
        self.log = tmp / f"anthropic-double-{self.port}.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(ANTHROPIC_DOUBLE)], env=env, stdout=log, stderr=log
            )
        wait_http(self.url + "/__double__/stats")

    def config(self, **knobs: Any) -> dict[str, Any]:
        return dict(_http_json("POST", self.url + "/__double__/config", knobs))

    def calls(self, route: str = "POST /v1/messages") -> int:
        return self.stats().get(route, 0)


class Proxy:
    """``python -m vastllm.proxy`` with the given settings (written to a JSON config file)."""

    def __init__(
        self, tmp: Path, env_settings: dict[str, str] | None = None, **settings: Any
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = cfg = tmp / f"proxy-{self.port}.json"
        cfg.write_text(json.dumps({"port": self.port, "health_interval": 0.5, **settings}))
        env = {k: v for k, v in os.environ.items() if not k.startswith("VASTLLM_PROXY_")}
        env.update({"VASTLLM_PROXY_CONFIG": str(cfg), **(env_settings or {})})
        self.log = tmp / f"proxy-{self.port}.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "vastllm.proxy"], env=env, stdout=log, stderr=log, cwd=REPO
            )
        try:
            wait_http(self.url + "/", timeout=20)
        except TimeoutError:
            self.stop()
            pytest.fail(f"proxy did not start:\n{self.log.read_text()}")

    def health(self) -> dict[str, Any]:
        return dict(_http_json("GET", self.url + "/health"))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def upstream(name: str, double: OllamaDouble) -> dict[str, str]:
    return {"name": name, "kind": "ollama", "base_url": double.url}


def wait_until(predicate: Any, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} not reached within {timeout}s")


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="vastllm-proxy-tests-") as d:
        yield Path(d)


@contextlib.contextmanager
def running_redis() -> Iterator[RedisServer]:
    """A redis-server on a free loopback port, killed when the block ends."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.kill()


@contextlib.contextmanager
def running_double(workdir: Path, models: list[str]) -> Iterator[OllamaDouble]:
    """The Ollama double serving ``models``, killed when the block ends."""
    d = OllamaDouble(workdir, models)
    try:
        yield d
    finally:
        d.kill()


def write_active_model(path: Path, context_length: int) -> Path:
    """The active model file of the proxy: MODEL on Ollama with ``context_length``."""
    path.write_text(
        json.dumps({"name": MODEL, "engine": "ollama", "context_length": context_length})
    )
    return path


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


@pytest.fixture(scope="session")
def double(workdir: Path) -> Iterator[OllamaDouble]:
    with running_double(workdir, [MODEL]) as d:
        yield d


@pytest.fixture
def knobs(double: OllamaDouble) -> Iterator[OllamaDouble]:
    """The shared double, with its knobs restored after the test."""
    yield double
    double.restore()


@pytest.fixture(scope="session")
def active_model_file(workdir: Path) -> Path:
    return write_active_model(workdir / "active_model.json", 32768)


@pytest.fixture(scope="session")
def proxy(
    workdir: Path, double: OllamaDouble, redis_server: RedisServer, active_model_file: Path
) -> Iterator[Proxy]:
    """The main proxy: one Ollama upstream, Redis cache, active model from a file (32k)."""
    p = Proxy(
        workdir,
        upstreams=[upstream("main", double)],
        redis_url=redis_server.url,
        active_model_file=str(active_model_file),
    )
    yield p
    p.stop()


@pytest.fixture
def unique() -> str:
    """A string no other test uses, to keep cache keys apart."""
    return f"[{time.monotonic_ns()}]"


@contextlib.contextmanager
def started(*procs: Proxy | OllamaDouble | AnthropicDouble) -> Iterator[None]:
    try:
        yield
    finally:
        for p in procs:
            if isinstance(p, Proxy):
                p.stop()
            else:
                p.kill()
