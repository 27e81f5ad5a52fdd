"""A small pipelined Redis client (RESP2) for the cache: ``GET``, ``SET .. EX``, ``PING``.

Why not redis-py's asyncio client: on this proxy's cache-hit path one redis-py ``GET`` cost about
110 us of CPU (connection pool checkout, retry wrapper, an asyncio timeout per call,
observability hooks), more than everything else a hit does together; see bench/RESULTS.md.
Here every command goes out on one shared connection and replies are matched to commands in
order (Redis answers a connection's commands in the order they were sent), so a command is one
``transport.write`` and one future. One timer per connection, not one per call, fails the
connection when the oldest command has waited longer than ``timeout``.

URLs: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` (TLS, verified with the
system's CAs) and ``unix:///path/to/socket[?db=N&password=...]``.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from dataclasses import dataclass, field, replace
from typing import cast
from urllib.parse import parse_qs, unquote, urlsplit

from vastllm.defaults import REDIS_PORT as DEFAULT_PORT


class RedisError(Exception):
    """Anything that kept a command from getting its reply."""


class ReplyError(RedisError):
    """Redis answered the command with an error (``-ERR ...``)."""


class ConnectionLost(RedisError):
    """The connection failed, closed or timed out; its pending commands all fail with this."""


@dataclass(frozen=True, slots=True)
class Address:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    path: str = ""  # unix socket path (then host/port are unused)
    db: int = 0
    username: str = ""
    password: str = field(default="", repr=False)  # a secret: never in a repr or a log
    tls: bool = False


def parse_url(url: str) -> Address:
    """An :class:`Address` from a Redis URL; :class:`ValueError` names what is wrong, never the
    URL nor a piece of it (it may hold a password, and settings errors are printed)."""
    try:
        parts = urlsplit(url)
        port = parts.port  # a password with an unescaped / # ? ends up here
    except ValueError:
        raise ValueError(
            "Redis URL cannot be parsed (a port that is not a number? escape /, #, ? and @ "
            "in the password as %2F, %23, %3F, %40)"
        ) from None
    query = parse_qs(parts.query)
    scheme = parts.scheme.lower()
    if scheme not in ("redis", "rediss", "unix"):
        raise ValueError("Redis URL must start with redis://, rediss:// or unix://")
    db_text = query.get("db", [""])[0]
    if scheme != "unix" and not db_text:
        db_text = parts.path.strip("/")
    try:
        db = int(db_text or 0)
    except ValueError:
        raise ValueError("Redis database (the URL's path or ?db=) must be a number") from None
    username = unquote(parts.username or "")
    password = unquote(parts.password or "") or query.get("password", [""])[0]
    if scheme == "unix":
        if not parts.path:
            raise ValueError("unix:// Redis URL needs a socket path")
        return Address(path=parts.path, db=db, username=username, password=password)
    return Address(
        host=parts.hostname or "127.0.0.1",
        port=port or DEFAULT_PORT,
        db=db,
        username=username,
        password=password,
        tls=scheme == "rediss",
    )


def pack(*args: bytes | str | int) -> bytes:
    """One command in RESP: an array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n" % len(b))
        out.append(b)
        out.append(b"\r\n")
    return b"".join(out)


Reply = bytes | int | list["Reply"] | ReplyError | None


def parse_reply(buf: bytearray, pos: int) -> tuple[Reply, int] | int:
    """The reply at ``buf[pos:]`` and where it ends, or (incomplete) the buffer length needed
    before trying again (0 when not known yet). :class:`ValueError` on bytes that are not RESP."""
    nl = buf.find(b"\r\n", pos)
    if nl < 0:
        return 0
    kind = buf[pos]
    line = bytes(buf[pos + 1 : nl])
    end = nl + 2
    if kind == 0x24:  # $ bulk string
        n = int(line)
        if n < 0:
            return None, end
        if len(buf) < end + n + 2:
            return end + n + 2
        return bytes(buf[end : end + n]), end + n + 2
    if kind == 0x2B:  # + simple string
        return line, end
    if kind == 0x3A:  # : integer
        return int(line), end
    if kind == 0x2D:  # - error
        return ReplyError(line.decode("utf-8", "replace")), end
    if kind == 0x2A:  # * array
        n = int(line)
        if n < 0:
            return None, end
        items: list[Reply] = []
        for _ in range(n):
            got = parse_reply(buf, end)
            if isinstance(got, int):
                return 0
            item, end = got
            items.append(item)
        return items, end
    raise ValueError(f"not a RESP reply: {bytes(buf[pos : pos + 20])!r}")


class _Connection(asyncio.Protocol):
    """One pipelined connection: commands out in order, replies back to their futures."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._loop = asyncio.get_running_loop()
        self._buf = bytearray()
        self._need = 0
        self._waiting: collections.deque[tuple[asyncio.Future[Reply], float]] = collections.deque()
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._failed = False

    @property
    def closed(self) -> bool:
        t = self._transport
        return self._failed or t is None or t.is_closing()

    # -- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport (uvloop's are not subclasses of asyncio.Transport)
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        if len(buf) < self._need:
            return
        pos, need = 0, 0
        while pos < len(buf):
            try:
                got = parse_reply(buf, pos)
            except ValueError as e:
                self.abort(ConnectionLost(f"redis sent something that is not RESP: {e}"))
                return
            if isinstance(got, int):
                need = got - pos if got else 0
                break
            reply, pos = got
            if not self._waiting:
                self.abort(ConnectionLost("redis sent a reply nobody asked for"))
                return
            fut, _ = self._waiting.popleft()
            if not fut.done():  # a caller that gave up has a cancelled future
                if isinstance(reply, ReplyError):
                    fut.set_exception(reply)
                else:
                    fut.set_result(reply)
        if pos:
            del buf[:pos]
        self._need = need

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionLost(f"redis connection lost: {exc or 'closed by the server'}"))

    # -- commands -------------------------------------------------------------------------------
    def send(self, payload: bytes) -> asyncio.Future[Reply]:
        t = self._transport
        if t is None or self._failed or t.is_closing():
            raise ConnectionLost("redis connection is closed")
        fut: asyncio.Future[Reply] = self._loop.create_future()
        self._waiting.append((fut, self._loop.time() + self._timeout))
        t.write(payload)
        if self._timer is None:
            self._timer = self._loop.call_at(self._waiting[0][1], self._check_deadline)
        return fut

    def _check_deadline(self) -> None:
        self._timer = None
        if not self._waiting:
            return
        oldest = self._waiting[0][1]
        if oldest <= self._loop.time():
            self.abort(ConnectionLost(f"redis did not answer within {self._timeout:g}s"))
        else:
            self._timer = self._loop.call_at(oldest, self._check_deadline)

    def abort(self, err: RedisError) -> None:
        self._fail(err)
        if self._transport is not None:
            self._transport.abort()

    def _fail(self, err: RedisError) -> None:
        self._failed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._waiting:
            fut, _ = self._waiting.popleft()
            if not fut.done():
                fut.set_exception(err)
        self._buf.clear()


class RedisClient:
    """Commands over one pipelined connection, (re)connected on demand by the first caller.

    ``password`` (AUTH) is used over any in ``url``."""

    def __init__(
        self, url: str, *, connect_timeout: float = 0.5, timeout: float = 2.0, password: str = ""
    ) -> None:
        self.address = parse_url(url)
        if password:
            self.address = replace(self.address, password=password)
        self._connect_timeout = connect_timeout
        self._timeout = timeout
        self._conn: _Connection | None = None
        self._connecting: asyncio.Task[_Connection] | None = None

    async def execute(self, *args: bytes | str | int) -> Reply:
        conn = self._conn
        if conn is None or conn.closed:
            conn = await self._connection()
        return await conn.send(pack(*args))

    async def get(self, key: str) -> bytes | None:
        conn = self._conn
        if conn is None or conn.closed:
            conn = await self._connection()
        k = key.encode()
        reply = await conn.send(b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(k), k))
        if reply is not None and not isinstance(reply, bytes):
            raise ReplyError(f"GET answered {reply!r}")
        return reply

    async def set(self, key: str, value: bytes, *, ex: int) -> None:
        await self.execute("SET", key, value, "EX", ex)

    async def ping(self) -> None:
        reply = await self.execute("PING")
        if reply != b"PONG":
            raise ReplyError(f"PING answered {reply!r}")

    async def aclose(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
        if self._conn is not None:
            self._conn.abort(ConnectionLost("client closed"))
            self._conn = None

    async def _connection(self) -> _Connection:
        task = self._connecting
        if task is None or task.done():
            task = self._connecting = asyncio.create_task(self._connect(), name="redis-connect")
            # retrieved here too: every caller may have given up before it ended
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
        try:
            # callers that give up (cancelled) must not cancel the attempt others wait for
            return await asyncio.shield(task)
        finally:
            if task.done() and self._connecting is task:
                self._connecting = None

    async def _connect(self) -> _Connection:
        a = self.address
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                if a.path:
                    _, conn = await loop.create_unix_connection(
                        lambda: _Connection(self._timeout), a.path
                    )
                else:
                    tls = ssl.create_default_context() if a.tls else None
                    _, conn = await loop.create_connection(
                        lambda: _Connection(self._timeout), a.host, a.port, ssl=tls
                    )
        except TimeoutError:
            where = a.path or f"{a.host}:{a.port}"
            raise ConnectionLost(
                f"redis at {where} did not accept a connection within {self._connect_timeout:g}s"
            ) from None
        except OSError as e:
            raise ConnectionLost(f"redis is unreachable: {e}") from e
        try:
            if a.password:
                auth = (a.username, a.password) if a.username else (a.password,)
                await conn.send(pack("AUTH", *auth))
            if a.db:
                await conn.send(pack("SELECT", a.db))
        except RedisError:
            conn.abort(ConnectionLost("redis refused the connection's setup"))
            raise
        self._conn = conn
        return conn
