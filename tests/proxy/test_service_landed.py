"""A request that arrives after an identical answer went out but before its cache write ended
is answered from that answer ("hit"), not joined to the finished flight as a "miss". The
window is a Redis round trip; a cache whose ``put`` waits on an event holds it open here."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from vastllm.proxy.flights import Served
from vastllm.proxy.metrics import Metrics
from vastllm.proxy.models import ModelCatalog
from vastllm.proxy.neutral import ChatRequest, Event, Finish, TextDelta
from vastllm.proxy.service import ChatService
from vastllm.proxy.settings import ProxySettings


class SlowCache:
    """Stores on ``put`` only once ``release`` is set; counts the gets."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.release = asyncio.Event()

    async def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    async def put(self, key: str, value: bytes) -> bool:
        await self.release.wait()
        self.data[key] = value
        return True


class OneAnswer:
    """A router stand-in: each call answers "Paris." and counts itself."""

    def __init__(self) -> None:
        self.calls = 0

    def outstanding(self) -> int:
        return 0

    async def events(self, req: ChatRequest, served: Served) -> AsyncIterator[Event]:
        self.calls += 1
        served.upstream = "one"
        yield TextDelta("Paris.")
        yield Finish("stop", 5, 2)


def request() -> ChatRequest:
    return ChatRequest(model="m", messages=[{"role": "user", "content": "capital?"}], temperature=0)


def test_an_answer_whose_cache_write_is_under_way_is_a_hit(tmp_path: Path) -> None:
    async def scenario() -> tuple[str, str, int, str]:
        settings = ProxySettings(
            default_model="m", active_model_file=tmp_path / "none.json", redis_url=""
        )
        cache, router = SlowCache(), OneAnswer()
        service = ChatService(
            settings,
            ModelCatalog(settings),
            router,
            cache,
            Metrics(),
        )
        first = request()
        service.prepare(first)
        ex1 = await service.execute(first)
        text1 = (await ex1.final()).text  # the answer is out; its cache write waits
        await asyncio.sleep(0)
        second = request()
        service.prepare(second)
        ex2 = await service.execute(second)
        cache.release.set()
        await asyncio.sleep(0.01)
        return ex2.status, (await ex2.final()).text, router.calls, text1

    status, text, calls, first_text = asyncio.run(scenario())
    assert (status, text, calls) == ("hit", first_text, 1)
