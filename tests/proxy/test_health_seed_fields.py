"""The first seed's /health fields on the proxy, from an OpenAI-compatible upstream's own /health.

The real proxy in front of a small stand-in upstream on loopback that answers ``/v1/models``
(the proxy's health check) and ``/health`` with the seed's documented answer. The proxy reads
the GPU figures with each health check and passes them on; without them they are null.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.proxy.conftest import Proxy, wait_until
from tests.support import free_port

# the first seed's documented GET /health answer
SEED_HEALTH = {
    "status": "healthy",
    "gpu": "NVIDIA RTX A5000",
    "vram_used": "14.23 GB",
    "vram_total": "23.55 GB",
}
SEED_KEYS = ("healthy", "gpu", "vram_used", "vram_total")


class Upstream(ThreadingHTTPServer):
    daemon_threads = True
    models_status = 200
    health_status = 200
    health_body: object = SEED_HEALTH


class Handler(BaseHTTPRequestHandler):
    server: Upstream

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            status, body = self.server.models_status, {"object": "list", "data": []}
        elif self.path == "/health":
            status, body = self.server.health_status, self.server.health_body
        else:
            status, body = 404, {"error": "not found"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    server = Upstream(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def proxy(workdir: Path, upstream: Upstream) -> Iterator[Proxy]:
    url = f"http://127.0.0.1:{upstream.server_address[1]}"
    p = Proxy(workdir, upstreams=[{"name": "api", "kind": "openai", "base_url": url}],
              redis_url="")  # fmt: skip
    yield p
    p.stop()


def seed(proxy: Proxy) -> dict[str, Any]:
    body = httpx.get(proxy.url + "/health").json()
    return {k: body[k] for k in ("status", *SEED_KEYS)}


def test_gpu_figures_come_from_the_upstreams_health(proxy: Proxy, upstream: Upstream) -> None:
    upstream.models_status, upstream.health_status, upstream.health_body = 200, 200, SEED_HEALTH
    expected = {"status": "ok", "healthy": True, "gpu": "NVIDIA RTX A5000",
                "vram_used": "14.23 GB", "vram_total": "23.55 GB"}  # fmt: skip
    wait_until(lambda: seed(proxy) == expected, what="the upstream's GPU figures")
    # the model API answers 503 with the same fields while it loads: still read
    upstream.health_status = 503
    upstream.health_body = {**SEED_HEALTH, "status": "loading", "vram_used": "0.52 GB"}
    wait_until(lambda: seed(proxy)["vram_used"] == "0.52 GB", what="the loading figures")
    assert seed(proxy)["gpu"] == "NVIDIA RTX A5000"


def test_unknown_figures_are_null(proxy: Proxy, upstream: Upstream) -> None:
    nothing = {"healthy": True, "gpu": None, "vram_used": None, "vram_total": None}
    upstream.health_status, upstream.health_body = 404, {"error": "not found"}
    wait_until(lambda: seed(proxy) == {"status": "ok", **nothing}, what="null figures")
    # a CPU host's model API: every figure null
    upstream.health_status = 200
    upstream.health_body = {"status": "ready", "gpu": None, "vram_used": None, "vram_total": None}
    upstream.models_status = 500  # and then the upstream fails its health check
    wait_until(lambda: seed(proxy)["status"] == "degraded", what="degraded")
    assert seed(proxy) == {"status": "degraded", **nothing, "healthy": False}
    upstream.models_status = 200
    upstream.health_body = SEED_HEALTH
    wait_until(lambda: seed(proxy)["gpu"] == "NVIDIA RTX A5000", what="figures again")
