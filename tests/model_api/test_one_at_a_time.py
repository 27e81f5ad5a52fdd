"""One generation at a time, whatever ``max_concurrent`` admits: the service in-process on the
real test model, with the engine's ``generate`` watched for overlapping calls."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from vastllm.model_api.engine import Engine
from vastllm.model_api.errors import APIError
from vastllm.model_api.generation import GenerationParams, GenerationResult
from vastllm.model_api.runtime import Runtime
from vastllm.model_api.schemas import SamplingParams
from vastllm.model_api.service import GenerationService, Job
from vastllm.model_api.settings import ModelApiSettings

GREEDY = SamplingParams(temperature=0, ignore_eos=True)
FAIL_AT = 1  # a request for exactly this many tokens makes the watched generate fail


@pytest.fixture(scope="module")
def engine(test_model_dir: Path) -> Engine:
    return Engine.load(ModelApiSettings(model_path=test_model_dir, cpu_threads=1))


class Watch:
    """Wraps ``Engine.generate``: how many run at once (the most seen), and in which order
    they started (by ``max_new_tokens``, which each test makes distinct)."""

    def __init__(self, generate: Callable[..., GenerationResult]) -> None:
        self._generate = generate
        self._lock = threading.Lock()
        self.now = 0
        self.most = 0
        self.started: list[int] = []

    def __call__(
        self,
        prompt_ids: Sequence[int],
        params: GenerationParams,
        cancel: threading.Event,
        on_text: Callable[[str], None] | None = None,
    ) -> GenerationResult:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)
            self.started.append(params.max_new_tokens)
        try:
            if params.max_new_tokens == FAIL_AT:
                raise RuntimeError("generation failed on purpose")
            return self._generate(prompt_ids, params, cancel, on_text)
        finally:
            with self._lock:
                self.now -= 1


@pytest.fixture
def watch(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Watch:
    w = Watch(engine.generate)
    monkeypatch.setattr(engine, "generate", w)
    return w


@pytest.fixture
def make_service(engine: Engine, test_model_dir: Path) -> Iterator[Any]:
    """``make_service(max_concurrent, max_queue) -> (runtime, service)``, ready, on ``engine``."""
    made: list[Runtime] = []

    def make(max_concurrent: int, max_queue: int) -> tuple[Runtime, GenerationService]:
        settings = ModelApiSettings(
            model_path=test_model_dir, max_concurrent=max_concurrent, max_queue=max_queue
        )
        runtime = Runtime(settings)
        runtime._ready(engine)
        made.append(runtime)
        return runtime, GenerationService(runtime)

    yield make
    for runtime in made:
        runtime.shutdown()


def encode(engine: Engine) -> list[int]:
    return engine.encode_prompt("Once upon a time")


def start(service: GenerationService, tokens: int) -> asyncio.Task[Job]:
    return asyncio.create_task(service.start(encode, GREEDY, tokens, "prompt"))


async def until(check: Callable[[], bool]) -> None:
    """Poll ``check`` (state the event loop itself changes) for up to a minute."""
    for _ in range(12_000):
        if check():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never met")


async def test_three_admitted_at_once_never_decode_side_by_side(
    make_service: Any, watch: Watch
) -> None:
    _, service = make_service(max_concurrent=3, max_queue=0)
    jobs = await asyncio.gather(*(service.start(encode, GREEDY, n, "prompt") for n in (8, 9, 10)))
    results = [await job.wait() for job in jobs]
    assert sorted(r.completion_tokens for r in results) == [8, 9, 10]
    assert sorted(watch.started) == [8, 9, 10]
    assert watch.most == 1


async def test_admitted_requests_generate_one_at_a_time_in_order(
    make_service: Any, watch: Watch
) -> None:
    runtime, service = make_service(max_concurrent=3, max_queue=0)
    scheduler = runtime.scheduler
    first = start(service, 12)
    await until(lambda: scheduler.running == 1)
    second = start(service, 6)
    await until(lambda: scheduler.waiting_turn == 1)
    third = start(service, 7)
    await until(lambda: scheduler.waiting_turn == 2)
    # three admitted (max_concurrent), one generating, the others waiting their turn
    assert (scheduler.active, scheduler.running, scheduler.waiting) == (3, 1, 0)
    results = [await (await t).wait() for t in (first, second, third)]
    assert [r.completion_tokens for r in results] == [12, 6, 7]
    assert watch.most == 1  # never two decode loops at once
    assert watch.started == [12, 6, 7]  # in the order they were ready
    await until(lambda: scheduler.active == 0)
    assert (scheduler.running, scheduler.waiting_turn) == (0, 0)


async def test_a_request_gone_while_waiting_its_turn_frees_its_slot_at_once(
    make_service: Any, watch: Watch
) -> None:
    runtime, service = make_service(max_concurrent=2, max_queue=0)
    scheduler = runtime.scheduler
    long = await service.start(encode, GREEDY, 5000, "prompt")  # runs for minutes unless cancelled
    waiter = start(service, 5)
    await until(lambda: scheduler.waiting_turn == 1)
    with pytest.raises(APIError) as refused:  # both slots taken, no room in line
        await service.start(encode, GREEDY, 3, "prompt")
    assert refused.value.status == 429
    waiter.cancel()  # its client went away
    await asyncio.gather(waiter, return_exceptions=True)
    # its slot and its place in the turn line are free while the long one still generates
    assert (scheduler.active, scheduler.running, scheduler.waiting_turn) == (1, 1, 0)
    after = start(service, 4)
    await until(lambda: scheduler.waiting_turn == 1)
    long.cancel()
    assert (await long.wait()).finish_reason == "cancelled"
    assert (await (await after).wait()).completion_tokens == 4
    assert watch.started == [5000, 4]
    assert watch.most == 1
    await until(lambda: scheduler.active == 0)


async def test_a_failed_generation_passes_the_turn_on(make_service: Any, watch: Watch) -> None:
    runtime, service = make_service(max_concurrent=2, max_queue=0)
    failing = await service.start(encode, GREEDY, FAIL_AT, "prompt")
    nxt = start(service, 3)
    with pytest.raises(RuntimeError, match="on purpose"):
        await failing.wait()
    assert (await (await nxt).wait()).completion_tokens == 3
    await until(lambda: runtime.scheduler.active == 0)
    assert runtime.scheduler.running == 0
