"""The vllm role's readiness probe (roles/vllm/files/vllm-ready) against recorded vLLM logs.

It decides whether site.yml waits on, uses, or gives up on a vLLM start, so a wrong "failed"
would hand a model vLLM serves to the slower model API and a missed one would wait out
vllm_ready_timeout for a server that restarts into the same error.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.machinery import SourceFileLoader
from pathlib import Path
from types import ModuleType

import pytest

from tests.support import FIXTURES, REPO

PROBE = REPO / "roles/vllm/files/vllm-ready"
LOGS = FIXTURES / "vllm"


@pytest.fixture(scope="module")
def ready() -> ModuleType:
    loader = SourceFileLoader("vllm_ready", str(PROBE))
    spec = importlib.util.spec_from_loader("vllm_ready", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_a_clean_start_is_no_failure(ready: ModuleType) -> None:
    text = (LOGS / "start-ready.log").read_text()
    assert "OSError: [Errno 24]" in text  # mid-line in a WARNING: not an error of the start
    assert ready.failure_reason(text) is None


def test_an_unsupported_architecture_is_named_in_one_sentence(ready: ModuleType) -> None:
    reason = ready.failure_reason((LOGS / "start-unsupported-architecture.log").read_text())
    assert reason == "Model architectures ['GPTNeoForCausalLM'] are not supported for now."


# Final lines of failed GPU starts as public vLLM bug reports quote them (vllm-project/vllm
# issues on KV cache memory and CUDA OOM), behind the traceback vLLM prints first.
KV_CACHE = (
    "(EngineCore_DP0 pid=211) ValueError: To serve at least one request with the models's max seq "
    "len (131072), (16.00 GiB KV cache is needed, which is larger than the available KV cache "
    "memory (9.47 GiB). Based on the available memory, the estimated maximum model length is "
    "77568. Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when "
    "initializing the engine.\n"
    "(APIServer pid=170) RuntimeError: Engine core initialization failed. See root cause above. "
    "Failed core proc(s): {}\n"
)
CUDA_OOM = (
    "Traceback (most recent call last):\n"
    '  File "/opt/vastllm/vllm/lib/python3.11/site-packages/vllm/worker.py", line 1, in load\n'
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 896.00 MiB. GPU 0 has a total "
    "capacity of 23.57 GiB of which 501.44 MiB is free.\n"
    "RuntimeError: Engine core initialization failed. See root cause above.\n"
)


@pytest.mark.parametrize(("log", "expected"), [
    (KV_CACHE, "ValueError: To serve at least one request"),
    (CUDA_OOM, "torch.OutOfMemoryError: CUDA out of memory."),
])
def test_memory_failures_name_the_root_cause_not_the_closing_line(
    ready: ModuleType, log: str, expected: str
) -> None:
    reason = ready.failure_reason(log)
    assert reason is not None
    assert reason.startswith(expected)
    assert len(reason) <= 400


def test_a_reason_is_capped(ready: ModuleType) -> None:
    reason = ready.failure_reason("ValueError: " + "x" * 5000)
    assert reason is not None
    assert len(reason) == 400
    assert reason.endswith("...")


class _Vllm(BaseHTTPRequestHandler):
    """Answers /health and /v1/models as vLLM 0.32 does once the model is loaded."""

    def do_GET(self) -> None:
        body = b""
        if self.path == "/v1/models":
            body = json.dumps({"object": "list", "data": [
                {"id": "smollm2", "object": "model", "owned_by": "vllm", "max_model_len": 8192},
            ]}).encode()
        elif self.path != "/health":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def answering() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Vllm)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _run(url: str, log: Path, since: int) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, str(PROBE), "--url", url, "--log", str(log), "--since", str(since)],
        capture_output=True, text=True, check=True, timeout=30,
    )
    answer: dict[str, object] = json.loads(out.stdout)
    return answer


def test_a_server_that_answers_is_ready_with_its_context_length(
    answering: str, tmp_path: Path
) -> None:
    log = tmp_path / "vllm.log"
    # a failed start logged earlier does not matter: the server answers
    log.write_text((LOGS / "start-unsupported-architecture.log").read_text())
    assert _run(answering, log, 0) == {"state": "ready", "model": "smollm2", "max_model_len": 8192}


def test_only_the_log_of_this_start_counts(tmp_path: Path) -> None:
    from tests.support import free_port  # noqa: PLC0415

    url = f"http://127.0.0.1:{free_port()}"  # nothing listens
    log = tmp_path / "vllm.log"
    old = (LOGS / "start-unsupported-architecture.log").read_text()
    line = "INFO 12-02 02:00:00 [api_server.py:1] vLLM API server version 0.32.0"
    log.write_text(old + line + "\n")
    assert _run(url, log, len(old.encode())) == {"state": "starting", "last": line}
    assert _run(url, log, 0)["state"] == "failed"
    # a log rotated (copytruncate) since the size was taken is read from its start
    assert _run(url, log, 10**9)["state"] == "failed"
    assert _run(url, tmp_path / "absent.log", 0) == {"state": "starting", "last": ""}
