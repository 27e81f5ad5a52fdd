"""The Ollama test double (tests/doubles/ollama_double.py) on a free loopback port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import REPO, free_port, wait_http

DOUBLE = REPO / "tests" / "doubles" / "ollama_double.py"


def http_json(method: str, url: str, body: object = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - loopback
    with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - loopback
        return json.loads(r.read() or b"{}")


class Double:
    def __init__(self, tmp: Path, models: list[str], knobs: dict[str, Any]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "OLLAMA_HOST": f"127.0.0.1:{self.port}",
            "OLLAMA_MODELS": str(tmp / "ollama-models"),
            "OLLAMA_DOUBLE_MODELS": ",".join(models),
            "OLLAMA_DOUBLE_CONFIG": json.dumps(knobs),
        }
        self.log = tmp / "ollama-double.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(DOUBLE), "serve"], env=env, stdout=log, stderr=log
            )
        wait_http(self.url + "/api/version")

    def config(self, **knobs: Any) -> dict[str, Any]:
        return dict(http_json("POST", self.url + "/__double__/config", knobs))

    def requests(self, route: str) -> int:
        stats = http_json("GET", self.url + "/__double__/stats")["requests"]
        return int(stats.get(route, 0))

    @property
    def pulls(self) -> int:
        return self.requests("POST /api/pull")

    def installed(self) -> list[str]:
        return sorted(m["name"] for m in http_json("GET", self.url + "/api/tags")["models"])

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def start_double(tmp_path: Path) -> Iterator[Any]:
    """``start_double(models=[...], **knobs)`` -> a running Double; killed after the test."""
    started: list[Double] = []

    def start(models: list[str] | None = None, **knobs: Any) -> Double:
        d = Double(tmp_path / f"d{len(started)}", models or [], knobs)
        started.append(d)
        return d

    (tmp_path / "d0").mkdir()
    for i in range(1, 4):
        (tmp_path / f"d{i}").mkdir()
    yield start
    for d in started:
        d.kill()
