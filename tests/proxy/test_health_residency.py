"""/health reports where each Ollama upstream keeps its loaded models (issue 6, point 4).

The real proxy in front of the Ollama test double, whose ``vram_bytes`` knob sets ``size_vram``
in ``/api/ps``: all of it in VRAM is ``gpu`` and ``ok``; half is ``partial``, none is ``cpu``,
both ``degraded`` for the active model unless ``allow_cpu_offload``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from tests.proxy.conftest import OllamaDouble, Proxy, upstream, wait_until
from tests.support import FIXTURES
from vastllm.proxy.upstreams.residency import parse_ps

ACTIVE = "qwen2.5-coder:7b"
OTHER = "llama3.1:8b"
CTX = 32768


@pytest.fixture(scope="module")
def ollama(workdir: Path) -> Iterator[OllamaDouble]:
    d = OllamaDouble(workdir, [ACTIVE, OTHER])
    yield d
    d.kill()


@pytest.fixture(scope="module")
def active_file(workdir: Path) -> Path:
    path = workdir / "active_model_residency.json"
    path.write_text(json.dumps({"name": ACTIVE, "engine": "ollama", "context_length": CTX}))
    return path


@pytest.fixture(scope="module")
def strict(workdir: Path, ollama: OllamaDouble, active_file: Path) -> Iterator[Proxy]:
    """No Redis (cache off, so only upstreams decide the status); /api/ps asked every time."""
    p = Proxy(
        workdir,
        upstreams=[upstream("main", ollama)],
        redis_url="",
        active_model_file=str(active_file),
        residency_cache_seconds=0,
    )
    yield p
    p.stop()


@pytest.fixture(scope="module")
def lenient(workdir: Path, ollama: OllamaDouble, active_file: Path) -> Iterator[Proxy]:
    """The same, with CPU offload allowed through the environment, as the role sets it."""
    p = Proxy(
        workdir,
        env_settings={"VASTLLM_PROXY_ALLOW_CPU_OFFLOAD": "true"},
        upstreams=[upstream("main", ollama)],
        redis_url="",
        active_model_file=str(active_file),
        residency_cache_seconds=0,
    )
    yield p
    p.stop()


def load_active(proxy: Proxy) -> None:
    """Ollama loads a model on its first request: send one through the proxy."""
    client = anthropic.Anthropic(base_url=proxy.url, api_key="x", max_retries=0)
    msg = client.messages.create(
        model="claude-opus-4-8", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
    )
    assert msg.content


def set_vram(ollama: OllamaDouble, share: float | None) -> int:
    """Point the double's size_vram at `share` of the active model's size; returns the size."""
    ps = httpx.get(ollama.url + "/api/ps").json()["models"]
    size = next(m["size"] for m in ps if m["name"] == ACTIVE)
    ollama.config(vram_bytes=None if share is None else int(size * share))
    return int(size)


def unload(ollama: OllamaDouble, name: str) -> None:
    r = httpx.post(ollama.url + "/api/generate", json={"model": name, "keep_alive": 0})
    assert r.status_code == 200


def health(proxy: Proxy) -> tuple[int, dict[str, Any]]:
    r = httpx.get(proxy.url + "/health")
    return r.status_code, r.json()


def residency(body: dict[str, Any]) -> dict[str, Any]:
    res = body["upstreams"][0]["residency"]
    assert isinstance(res, dict)
    return res


def loaded(res: dict[str, Any], name: str) -> dict[str, Any]:
    return next(m for m in res["models"] if m["name"] == name)


def vram_gauge(proxy: Proxy, model: str) -> float:
    text = httpx.get(proxy.url + "/metrics").text
    m = re.search(
        rf'^vastllm_proxy_upstream_model_vram_fraction\{{upstream="main",model="{re.escape(model)}"\}}'
        r" (\S+)$",
        text,
        re.M,
    )
    assert m is not None, text
    return float(m[1])


def test_all_in_vram_is_gpu_and_ok(strict: Proxy, ollama: OllamaDouble) -> None:
    ollama.config(vram_bytes=None)
    load_active(strict)
    status, body = health(strict)
    assert status == 200
    assert body["status"] == "ok", body
    assert body["reasons"] == []
    assert body["allow_cpu_offload"] is False
    res = residency(body)
    assert res["error"] is None
    m = loaded(res, ACTIVE)
    assert m["size"] > 0
    assert m["size_vram"] == m["size"]
    assert m["vram_fraction"] == 1.0
    assert m["state"] == "gpu"
    # the model was loaded with the context the proxy asked for (options.num_ctx)
    assert m["context_length"] == CTX
    assert m["expires_at"]
    assert res["active_model"] == {
        "name": ACTIVE,
        "loaded": True,
        "state": "gpu",
        "vram_fraction": 1.0,
    }
    assert vram_gauge(strict, ACTIVE) == 1.0
    # the first seed's fields: Ollama tells the VRAM its models take, not the GPU or its total
    in_vram = sum(m["size_vram"] for m in res["models"])
    assert {k: body[k] for k in ("healthy", "gpu", "vram_used", "vram_total")} == {
        "healthy": True,
        "gpu": None,
        "vram_used": f"{in_vram / 1024**3:.2f} GB",
        "vram_total": None,
    }


def test_half_in_vram_is_partial_and_degraded(strict: Proxy, ollama: OllamaDouble) -> None:
    load_active(strict)
    size = set_vram(ollama, 0.5)
    status, body = health(strict)
    assert status == 200  # degraded keeps HTTP 200, as for Redis down
    assert body["status"] == "degraded"
    assert body["healthy"] is False
    m = loaded(residency(body), ACTIVE)
    assert (m["size"], m["size_vram"], m["state"]) == (size, size // 2, "partial")
    assert m["vram_fraction"] == pytest.approx(0.5, abs=0.01)
    assert residency(body)["active_model"]["state"] == "partial"
    [reason] = body["reasons"]
    assert ACTIVE in reason
    assert "main" in reason
    assert "50% in VRAM" in reason
    assert "VASTLLM_PROXY_ALLOW_CPU_OFFLOAD" in reason
    assert vram_gauge(strict, ACTIVE) == pytest.approx(0.5, abs=0.01)


def test_nothing_in_vram_is_cpu_and_degraded(strict: Proxy, ollama: OllamaDouble) -> None:
    load_active(strict)
    set_vram(ollama, 0)
    _, body = health(strict)
    assert body["status"] == "degraded"
    m = loaded(residency(body), ACTIVE)
    assert (m["size_vram"], m["vram_fraction"], m["state"]) == (0, 0.0, "cpu")
    [reason] = body["reasons"]
    assert "runs entirely on the CPU" in reason
    assert vram_gauge(strict, ACTIVE) == 0.0


def test_allow_cpu_offload_keeps_ok_and_still_reports(
    strict: Proxy, lenient: Proxy, ollama: OllamaDouble
) -> None:
    load_active(lenient)
    set_vram(ollama, 0)
    _, body = health(lenient)
    assert body["status"] == "ok", body
    assert body["reasons"] == []
    assert body["allow_cpu_offload"] is True
    assert loaded(residency(body), ACTIVE)["state"] == "cpu"
    assert residency(body)["active_model"]["state"] == "cpu"
    # the same upstream seen by the strict proxy is degraded
    assert health(strict)[1]["status"] == "degraded"


def test_model_not_loaded_is_reported_and_not_degrading(
    strict: Proxy, ollama: OllamaDouble
) -> None:
    ollama.config(vram_bytes=0)
    unload(ollama, ACTIVE)
    unload(ollama, OTHER)
    _, body = health(strict)
    res = residency(body)
    assert res["models"] == []
    assert res["active_model"] == {
        "name": ACTIVE,
        "loaded": False,
        "state": None,
        "vram_fraction": None,
    }
    assert body["status"] == "ok"  # Ollama loads on demand: not loaded is not a fault
    # another model in CPU memory is listed, but only the active model decides the status
    r = httpx.post(ollama.url + "/api/generate", json={"model": OTHER})
    assert r.json()["done_reason"] == "load"
    _, body = health(strict)
    res = residency(body)
    assert [m["name"] for m in res["models"]] == [OTHER]
    assert loaded(res, OTHER)["state"] == "cpu"
    assert res["active_model"]["loaded"] is False
    assert body["status"] == "ok"
    assert vram_gauge(strict, OTHER) == 0.0


def test_ps_answers_are_cached_and_shared(
    workdir: Path, ollama: OllamaDouble, active_file: Path
) -> None:
    p = Proxy(
        workdir,
        upstreams=[upstream("main", ollama)],
        redis_url="",
        active_model_file=str(active_file),
        residency_cache_seconds=600,
    )
    try:
        before = ollama.calls("GET /api/ps")
        for _ in range(5):
            assert health(p)[1]["upstreams"][0]["residency"]["error"] is None
        httpx.get(p.url + "/metrics").raise_for_status()
        assert ollama.calls("GET /api/ps") - before == 1
    finally:
        p.stop()


def test_ollama_down_is_unhealthy_as_before(workdir: Path, active_file: Path) -> None:
    gone = OllamaDouble(workdir, [ACTIVE])
    p = Proxy(
        workdir,
        upstreams=[upstream("main", gone)],
        redis_url="",
        active_model_file=str(active_file),
        residency_cache_seconds=0,
    )
    try:
        load_active(p)
        assert health(p)[1]["status"] == "ok"
        gone.kill()
        wait_until(lambda: health(p)[1]["upstreams"][0]["healthy"] is False, what="unhealthy")
        status, body = health(p)
        assert status == 200
        assert body["status"] == "degraded"
        up = body["upstreams"][0]
        assert up["residency"] == {
            "age_seconds": None,
            "error": "not asked: the upstream failed its health check",
            "models": [],
            "active_model": None,
        }
        assert any(r.startswith("upstream main is unhealthy") for r in body["reasons"])
        assert (body["healthy"], body["vram_used"]) == (False, None)  # not asked: unknown
        metrics = httpx.get(p.url + "/metrics").text
        assert 'vastllm_proxy_upstream_up{upstream="main"} 0' in metrics
        assert "vastllm_proxy_upstream_model_vram_fraction{" not in metrics
    finally:
        p.stop()
        gone.kill()


def test_parse_ps_reads_the_recorded_answer_and_refuses_other_shapes() -> None:
    recorded = json.loads((FIXTURES / "ollama-api" / "ps_full-gpu_docs-api-md.json").read_text())
    [m] = parse_ps(recorded)
    assert (m.name, m.state, m.vram_fraction) == ("mistral:latest", "gpu", 1.0)
    assert m.context_length is None  # older servers do not send it
    assert m.matches("mistral")
    assert not m.matches("mistral:7b")
    assert parse_ps({"models": []}) == ()
    for bad in (
        [],
        {"models": {}},
        {"models": ["x"]},
        {"models": [{"size": 1, "size_vram": 1}]},
        {"models": [{"name": "a", "size": "1", "size_vram": 1}]},
        {"models": [{"name": "a", "size": 1}]},
        {"models": [{"name": "a", "size": 1, "size_vram": True}]},
    ):
        with pytest.raises(ValueError, match=r"."):
            parse_ps(bad)
