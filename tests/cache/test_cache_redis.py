"""The cache's own pipelined Redis client against a real redis-server on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cache.test_cache import ask
from tests.proxy.conftest import REDIS_BIN, OllamaDouble, Proxy, upstream, write_active_model
from tests.support import free_port, wait_tcp
from vastllm.proxy.cache.redis import (
    Address,
    ConnectionLost,
    RedisClient,
    ReplyError,
    pack,
    parse_reply,
    parse_url,
)


class Redis:
    def __init__(self, tmp: Path, *extra: str) -> None:
        if not Path(REDIS_BIN).exists():
            pytest.fail(f"redis-server not found at {REDIS_BIN}: install the redis-server package")
        self.port = free_port()
        self.socket = tmp / f"redis-{self.port}.sock"
        self.argv = [
            REDIS_BIN, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--unixsocket", str(self.socket), *extra,
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_tcp(self.port)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None


@pytest.fixture(scope="module")
def server(workdir: Path) -> Iterator[Redis]:
    r = Redis(workdir)
    yield r
    r.stop()


@pytest.fixture
def restartable(workdir: Path) -> Iterator[Redis]:
    r = Redis(workdir)
    yield r
    if r.proc is not None:
        os.kill(r.proc.pid, signal.SIGCONT)
    r.stop()


def test_parse_url_covers_the_documented_forms() -> None:
    assert parse_url("redis://127.0.0.1:6380/2") == Address("127.0.0.1", 6380, db=2)
    assert parse_url("redis://localhost") == Address("localhost", 6379)
    pw = "s@cret"
    assert parse_url("redis://:s%40cret@h:1/3") == Address("h", 1, db=3, password=pw)
    assert parse_url("redis://u:t@h?db=4") == Address("h", db=4, username="u", password=pw[-1:])
    assert parse_url("rediss://h:6390/0").tls
    assert parse_url("unix:///run/redis.sock?db=1&password=s") == Address(
        path="/run/redis.sock", db=1, password=pw[:1]
    )
    for bad in ("http://h", "redis://h/x", "unix://"):
        with pytest.raises(ValueError, match="Redis"):
            parse_url(bad)


def test_parse_reply_handles_every_type_and_partial_input() -> None:
    buf = bytearray(b"+OK\r\n:42\r\n$3\r\nabc\r\n$-1\r\n-ERR no\r\n*2\r\n$1\r\nx\r\n:1\r\n")
    pos, got = 0, []
    while pos < len(buf):
        item = parse_reply(buf, pos)
        assert not isinstance(item, int)
        value, pos = item
        got.append(value)
    assert got[:4] == [b"OK", 42, b"abc", None]
    assert isinstance(got[4], ReplyError)
    assert str(got[4]) == "ERR no"
    assert got[5] == [b"x", 1]
    # incomplete: the bulk's full length is known once its header is in
    assert parse_reply(bytearray(b"$10\r\nabc"), 0) == 5 + 10 + 2
    assert parse_reply(bytearray(b"$10"), 0) == 0
    assert parse_reply(bytearray(b"*2\r\n:1\r\n"), 0) == 0
    with pytest.raises(ValueError, match="RESP"):
        parse_reply(bytearray(b"?x\r\n"), 0)
    assert (
        pack("SET", "k", b"\x00\r\n", 5)
        == b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\n\x00\r\n\r\n$1\r\n5\r\n"
    )


async def test_commands_on_tcp_and_unix_socket(server: Redis) -> None:
    for url in (f"redis://127.0.0.1:{server.port}/0", f"unix://{server.socket}?db=3"):
        c = RedisClient(url)
        try:
            await c.ping()
            key = f"resp-test:{url}"
            assert await c.get(key) is None
            value = bytes(range(256)) * 3 + b"\r\n$-1\r\n"  # binary, with RESP-looking bytes
            await c.set(key, value, ex=60)
            assert await c.get(key) == value
            ttl = await c.execute("TTL", key)
            assert isinstance(ttl, int)
            assert 0 < ttl <= 60
            with pytest.raises(ReplyError, match="unknown command"):
                await c.execute("NO-SUCH-COMMAND")
            assert await c.get(key) == value  # the connection survives an error reply
        finally:
            await c.aclose()
    # db 3 via the unix socket really is another database than db 0 over TCP
    c0 = RedisClient(f"redis://127.0.0.1:{server.port}/0")
    try:
        assert await c0.get(f"resp-test:unix://{server.socket}?db=3") is None
    finally:
        await c0.aclose()


async def test_concurrent_commands_get_their_own_replies(server: Redis) -> None:
    c = RedisClient(f"redis://127.0.0.1:{server.port}/0")
    try:
        big = os.urandom(3 * 1024 * 1024)  # arrives in many chunks
        await c.set("resp-big", big, ex=60)
        keys = [f"resp-many:{i}" for i in range(300)]
        values = [k.encode() * (i % 7 + 1) for i, k in enumerate(keys)]
        await asyncio.gather(*(c.set(k, v, ex=60) for k, v in zip(keys, values, strict=True)))
        tasks = [c.get(k) for k in keys] + [c.get("resp-big")] + [c.get(k) for k in reversed(keys)]
        got = await asyncio.gather(*tasks)
        assert got == [*values, big, *reversed(values)]
    finally:
        await c.aclose()


async def test_a_cancelled_caller_does_not_shift_the_replies(server: Redis) -> None:
    c = RedisClient(f"redis://127.0.0.1:{server.port}/0")
    try:
        await c.set("resp-a", b"A", ex=60)
        await c.set("resp-b", b"B", ex=60)
        first = asyncio.ensure_future(c.get("resp-a"))
        await asyncio.sleep(0)  # sent
        first.cancel()
        assert await c.get("resp-b") == b"B"
        assert await c.get("resp-a") == b"A"
    finally:
        await c.aclose()


async def test_password_and_database_from_the_url(workdir: Path) -> None:
    r = Redis(workdir, "--requirepass", "s3cret")
    try:
        ok = RedisClient(f"redis://:s3cret@127.0.0.1:{r.port}/5")
        try:
            await ok.set("k", b"v", ex=60)
            info = await ok.execute("CLIENT", "INFO")
            assert isinstance(info, bytes)
            assert b" db=5 " in info
        finally:
            await ok.aclose()
        for url in (f"redis://:wrong@127.0.0.1:{r.port}/0", f"redis://127.0.0.1:{r.port}/0"):
            bad = RedisClient(url)
            try:
                with pytest.raises(ReplyError, match=r"WRONGPASS|NOAUTH|invalid"):
                    await bad.get("k")
            finally:
                await bad.aclose()
    finally:
        r.stop()


async def test_a_password_given_apart_from_the_url_is_used_and_never_shown(
    workdir: Path,
) -> None:
    secret = "a1" * 32  # what the redis role generates: 64 hex digits
    r = Redis(workdir, "--requirepass", secret)
    try:
        c = RedisClient(f"redis://:wrong@127.0.0.1:{r.port}/0", password=secret)
        try:
            await c.ping()  # the password wins over the URL's
            assert secret not in repr(c.address)
        finally:
            await c.aclose()
        bare = RedisClient(f"redis://127.0.0.1:{r.port}/0")
        try:
            with pytest.raises(ReplyError, match="NOAUTH") as error:
                await bare.ping()
            assert secret not in str(error.value)
        finally:
            await bare.aclose()
    finally:
        r.stop()


def test_the_proxy_caches_with_the_redis_password_from_its_environment(
    workdir: Path, double: OllamaDouble
) -> None:
    """How the llm_proxy role hands over the redis role's password: VASTLLM_PROXY_REDIS_PASSWORD
    in the proxy's environment (its root-only env file), not in argv, the URL or proxy.json."""
    secret = "5e" * 32
    r = Redis(workdir, "--requirepass", secret)
    active = write_active_model(workdir / f"active-{r.port}.json", 32768)
    settings = {
        "upstreams": [upstream("main", double)],
        "redis_url": f"redis://127.0.0.1:{r.port}/0",
        "active_model_file": str(active),
    }
    with_password = Proxy(workdir, {"VASTLLM_PROXY_REDIS_PASSWORD": secret}, **settings)
    without = Proxy(workdir, **settings)
    try:
        text = f"cache me behind a password [{r.port}]"
        assert ask(with_password, text).headers["x-vastllm-cache"] == "miss"
        calls = double.calls()
        hit = ask(with_password, text)
        assert hit.status_code == 200, hit.text
        assert hit.headers["x-vastllm-cache"] == "hit"
        assert double.calls() == calls
        assert with_password.health()["redis"] == "ok"
        # a proxy that does not know the password is refused (NOAUTH) and answers uncached
        assert ask(without, text).headers.get("x-vastllm-cache") != "hit"
        assert without.health()["redis"] == "down"
        cmdline = Path(f"/proc/{with_password.proc.pid}/cmdline").read_bytes()
        assert secret.encode() not in cmdline
        for p in (with_password, without):
            assert secret not in p.log.read_text()
            assert secret not in json.dumps(p.health())
    finally:
        with_password.stop()
        without.stop()
        r.stop()
    for p in (with_password, without):
        assert secret not in p.log.read_text()


async def test_unreachable_fails_fast_with_connection_lost() -> None:
    c = RedisClient(f"redis://127.0.0.1:{free_port()}/0", connect_timeout=0.5)
    with pytest.raises(ConnectionLost, match="unreachable"):
        await c.get("k")
    await c.aclose()


async def test_a_hung_server_times_out_and_a_restarted_one_is_used_again(
    restartable: Redis,
) -> None:
    assert restartable.proc is not None
    c = RedisClient(f"redis://127.0.0.1:{restartable.port}/0", timeout=0.3)
    try:
        await c.set("k", b"v", ex=60)
        os.kill(restartable.proc.pid, signal.SIGSTOP)  # accepts nothing, answers nothing
        pending = [asyncio.ensure_future(c.get("k")) for _ in range(5)]
        for outcome in await asyncio.gather(*pending, return_exceptions=True):
            assert isinstance(outcome, ConnectionLost), outcome
            assert "did not answer within 0.3s" in str(outcome)
        os.kill(restartable.proc.pid, signal.SIGCONT)
        assert await c.get("k") == b"v"  # reconnected on demand

        restartable.stop()  # killed: the connection is gone and nothing listens
        with pytest.raises(ConnectionLost):
            await c.get("k")
        restartable.start()
        await c.ping()
        assert await c.get("k") is None  # a new, empty server
    finally:
        await c.aclose()
