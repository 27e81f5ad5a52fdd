"""Response cache in Redis: keys from the normalized request, values are final messages.

The key is the SHA-256 of the request as the model sees it: the upstream model (after aliasing),
messages (billing header and ``cache_control`` are already gone in translation; tool-call ids,
random per session, are renumbered), tools, tool_choice, sampling parameters, the effective
``max_tokens`` and stop sequences. ``metadata``, headers and the client's model alias are not part
of it, so a Claude Code session and an OpenAI client asking the same thing share an entry.

Redis is spoken to through :mod:`vastllm.proxy.cache.redis` (one pipelined connection per process: a
hit costs one write and one read there). Redis being down never fails a request: calls fail
fast, the cache is marked down and skipped until ``retry_seconds`` pass or a background ping
succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from typing import Any

import orjson

from vastllm.proxy import background, validate
from vastllm.proxy.cache.redis import RedisClient, RedisError
from vastllm.proxy.neutral import ChatRequest

log = logging.getLogger(__name__)

KEY_PREFIX = "vastllm:chat:v1:"


def cache_key(req: ChatRequest) -> str:
    """Hex SHA-256 of the normalized request (see module docstring)."""
    assert req.target is not None  # noqa: S101 - the service resolves before caching
    ids: dict[str, str] = {}
    messages: list[Any] = []
    for msg in req.messages:
        if "tool_calls" in msg or "tool_call_id" in msg:
            m = dict(msg)
            if "tool_calls" in m:
                m["tool_calls"] = [
                    {**c, "id": ids.setdefault(c["id"], f"t{len(ids)}")} for c in m["tool_calls"]
                ]
            if "tool_call_id" in m:
                m["tool_call_id"] = ids.setdefault(m["tool_call_id"], f"t{len(ids)}")
            messages.append(m)
        else:
            messages.append(msg)
    material = {
        "model": req.target.name,
        "messages": messages,
        "tools": req.tools,
        "tool_choice": req.tool_choice,
        "max_tokens": req.num_predict,
        "temperature": req.temperature,
        "top_p": req.top_p,
        "top_k": req.top_k,
        "seed": req.seed,
        "stop": req.stop,
    }
    return hashlib.sha256(validate.dumps(material, option=orjson.OPT_SORT_KEYS)).hexdigest()


class ResponseCache:
    def __init__(
        self,
        url: str,
        ttl: int,
        max_entry_bytes: int,
        retry_seconds: float = 2.0,
        *,
        password: str = "",
    ) -> None:
        self.ttl = ttl
        self.max_entry_bytes = max_entry_bytes
        self._retry_seconds = retry_seconds
        # one pipelined connection; fail fast (no retries) so a dead Redis costs a request little
        self._redis = RedisClient(url, connect_timeout=0.5, timeout=2.0, password=password)
        self.up: bool | None = None  # None until the first call
        self._down_until = 0.0
        self._task: asyncio.Task[None] | None = None

    def _failed(self, op: str, err: Exception) -> None:
        if self.up is not False:
            log.warning("redis %s failed, serving without cache: %s", op, err)
        self.up = False
        self._down_until = time.monotonic() + self._retry_seconds

    def _usable(self) -> bool:
        return self.up is not False or time.monotonic() >= self._down_until

    async def get(self, key: str) -> bytes | None:
        if not self._usable():
            return None
        try:
            value = await self._redis.get(KEY_PREFIX + key)
        except (RedisError, OSError) as e:
            self._failed("GET", e)
            return None
        if self.up is not True:
            self._mark_up()
        return value

    async def put(self, key: str, value: bytes) -> bool:
        if len(value) > self.max_entry_bytes or not self._usable():
            return False
        try:
            await self._redis.set(KEY_PREFIX + key, value, ex=self.ttl)
        except (RedisError, OSError) as e:
            self._failed("SET", e)
            return False
        self._mark_up()
        return True

    async def incr(self, key: str, ttl: int) -> int | None:
        """Add one to the counter ``key`` (its own key, outside the cache's prefix), which lives
        ``ttl`` seconds from its first count; the new value, or None when Redis is unusable."""
        if not self._usable():
            return None
        try:
            n = await self._redis.execute("INCR", key)
            if n == 1:
                await self._redis.execute("EXPIRE", key, ttl)
        except (RedisError, OSError) as e:
            self._failed("INCR", e)
            return None
        if not isinstance(n, int):
            self._failed("INCR", RedisError(f"INCR answered {n!r}"))
            return None
        self._mark_up()
        return n

    def _mark_up(self) -> None:
        if self.up is False:
            log.warning("redis is reachable again, cache resumed")
        self.up = True

    async def ping(self) -> bool:
        try:
            await asyncio.wait_for(self._redis.ping(), timeout=1.0)
        except (RedisError, OSError) as e:
            self._failed("PING", e)
            return False
        self._mark_up()
        return True

    async def _loop(self, interval: float) -> None:
        while True:
            await self.ping()
            await asyncio.sleep(interval)

    def start(self, interval: float) -> None:
        self._task = asyncio.create_task(self._loop(interval), name="redis-health")

    async def close(self) -> None:
        await background.cancel(self._task)
        with contextlib.suppress(RedisError, OSError):
            await self._redis.aclose()
