"""Wake on request: when a request finds no local upstream reachable, run ``wake_command`` (the
workstation gateway's ``vastllm wake``: start the stopped instances, wait for them, reopen the
tunnels) and let the request wait for an upstream to come back.

- At most one wake runs at a time: a request that finds nothing reachable while one runs waits
  for it and starts nothing. Once it has ended, the next such request starts a new one, but not
  within ``wake_cooldown`` seconds of the last one's end: a wake can rent and provision (a move),
  and clients retry, so a wake that fails or leaves every upstream down is not run again at the
  pace of their retries. In that time a request waits for the hosts the last wake brought up
  when it succeeded, and gets :class:`~vastllm.proxy.errors.Waking` at once (``retry-after``:
  the seconds until the next wake may start) when it failed.
- With a paid upstream (``paid: true``) a request that finds no local upstream reachable is
  answered by it and starts the wake without waiting for it (:meth:`Waker.kick`), so the GPU
  hosts come back while the paid API bridges the gap.
- A request waits until an upstream is healthy (the router's health checks, and one round of
  them the moment the command ends) or until ``wake_wait`` seconds after it first found
  nothing; then it gets :class:`~vastllm.proxy.errors.Waking` (529, with ``retry-after``). A
  command that fails (exit status other than 0, or one that cannot start) ends every wait at
  once with that error.
- The command runs without a shell, in its own session (a restart of the proxy, which its own
  tunnel play may cause, does not kill it), with the proxy's environment plus the lines of
  ``wake_env_file``. Its output goes to the proxy's log (INFO; the last lines of a failed one
  at WARNING), with any value of that file shown as ``***``; its exit status is logged.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import os
import shlex
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from vastllm.proxy import background, errors
from vastllm.proxy.settings import ProxySettings

log = logging.getLogger(__name__)

TAIL_LINES = 20  # lines of a failed wake's output logged at WARNING
NOT_STARTED = 127  # the exit status recorded for a command that could not be started (a shell's)
_CHUNK = 65536


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (blank lines and ``#`` comments skipped, quotes around a value
    dropped), as the tunnels' resolver reads its key file. OSError when it cannot be read."""
    values: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip().removeprefix("export ").strip()] = value.strip().strip("'\"")
    return values


class _Run:
    """One run of the wake command; ``rc`` is its exit status once it ended."""

    __slots__ = ("rc", "task")

    def __init__(self) -> None:
        self.rc: int | None = None
        self.task: asyncio.Task[None] | None = None


class Waker:
    def __init__(self, settings: ProxySettings, probe: Callable[[], Awaitable[None]]) -> None:
        self._argv = list(settings.wake_command)
        self._wait = settings.wake_wait
        self._retry_after = settings.wake_retry_after
        self._env_file = settings.wake_env_file
        self._cooldown = settings.wake_cooldown
        self._ended: float | None = None  # loop time the last wake ended
        self._probe = probe  # one round of health checks, which calls changed() on a change
        self._run: _Run | None = None
        self._changed = asyncio.Event()
        self.started = 0  # wakes started since the proxy started
        self.waiting = 0  # requests waiting now
        self.last_exit: int | None = None

    # -- the router's side --------------------------------------------------------------------
    def changed(self) -> None:
        """An upstream's health changed (or the wake ended): the waiting requests look again."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def kick(self) -> None:
        """Start a wake unless one runs or the last one ended under ``wake_cooldown`` ago, and
        do not wait for it (a paid upstream answers meanwhile)."""
        if not self._running() and self._cooldown_left() == 0:
            self._start()

    def deadline(self) -> float:
        """The loop time until which a request that finds nothing reachable now may wait."""
        return asyncio.get_running_loop().time() + self._wait

    async def until_up(self, up: Callable[[], bool], deadline: float) -> None:
        """Return once ``up()`` (an upstream the request could use is healthy), starting a wake
        unless one runs; :class:`errors.Waking` when the wake fails or ``deadline`` passes."""
        if up():
            return
        self._start_unless_running()
        self.waiting += 1
        try:
            async with asyncio.timeout_at(deadline):
                while not up():
                    run = self._run  # the latest wake: a failed one ends every wait
                    if run is not None and run.rc is not None and run.rc != 0:
                        raise self._failed(run.rc)
                    await self._changed.wait()
        except TimeoutError:
            raise errors.Waking(
                f"no upstream is reachable: the GPU hosts are being woken (wake_command), and "
                f"none came back within {self._wait:g}s (wake_wait); retry in "
                f"{self._retry_after}s",
                retry_after=self._retry_after,
            ) from None
        finally:
            self.waiting -= 1

    def status(self) -> dict[str, Any]:
        """What /health shows: whether a wake runs, how many ran, their last exit status and the
        requests waiting."""
        return {
            "running": self._running(),
            "started": self.started,
            "last_exit": self.last_exit,
            "waiting": self.waiting,
            "wait_seconds": self._wait,
            "cooldown_left": math.ceil(self._cooldown_left() * 10) / 10,  # 0 only once over
        }

    async def stop(self) -> None:
        """Stop watching a wake that runs (the command itself goes on: see the module doc)."""
        if self._run is not None:
            await background.cancel(self._run.task)

    # -- the command ---------------------------------------------------------------------------
    def _failed(self, rc: int) -> errors.Waking:
        why = f"failed (exit {rc})" if rc >= 0 else f"was killed (signal {-rc})"
        if self._cooldown > 0:
            then = f"the next wake may start in {self._cooldown:g}s (wake_cooldown)"
        else:
            then = f"the next request tries again (retry in {self._retry_after}s)"
        return errors.Waking(
            f"no upstream is reachable, and waking the GPU hosts {why}: the proxy's log has "
            f"its output; {then}",
            retry_after=max(self._retry_after, math.ceil(self._cooldown)),
        )

    def _running(self) -> bool:
        return self._run is not None and self._run.rc is None

    def _cooldown_left(self) -> float:
        """Seconds until a new wake may start (0: now, or one runs)."""
        if self._ended is None or self._running():
            return 0.0
        return max(0.0, self._ended + self._cooldown - asyncio.get_running_loop().time())

    def _start_unless_running(self) -> None:
        """Start a wake unless one runs or the last one ended under ``wake_cooldown`` ago; in
        that time, :class:`errors.Waking` when the last one failed (else the request waits for
        the hosts it woke)."""
        if self._running():
            return
        left = self._cooldown_left()
        if left > 0:
            rc = self.last_exit
            if rc is not None and rc != 0:
                raise errors.Waking(
                    f"no upstream is reachable, and the last wake of the GPU hosts failed (exit "
                    f"{rc}); the next may start in {left:.0f}s (wake_cooldown): the proxy's log "
                    f"has its output",
                    retry_after=max(1, math.ceil(left)),
                )
            return
        self._start()

    def _start(self) -> None:
        run = self._run = _Run()
        self.started += 1
        run.task = asyncio.create_task(self._execute(run), name="wake")

    def _environment(self) -> tuple[dict[str, str], list[str]]:
        """The command's environment, and the values to hide in its output."""
        env = dict(os.environ)
        if self._env_file is None:
            return env, []
        try:
            extra = read_env_file(self._env_file)
        except (OSError, UnicodeDecodeError) as e:
            why = e.strerror if isinstance(e, OSError) else "it is not UTF-8 text"
            log.warning(
                "wake_env_file %s cannot be read (%s): waking without it", self._env_file, why
            )
            return env, []
        env.update(extra)
        return env, sorted((v for v in extra.values() if len(v) >= 4), key=len, reverse=True)

    async def _execute(self, run: _Run) -> None:
        try:
            rc = await self._command()
        except Exception:
            log.exception("the wake command could not be run")
            rc = NOT_STARTED
        # the upstreams at once, not at the next health interval; then the waiters look again
        try:
            await self._probe()
        except Exception:
            log.exception("health check after the wake failed")
        run.rc = self.last_exit = rc
        self._ended = asyncio.get_running_loop().time()
        self.changed()

    async def _command(self) -> int:
        env, secrets = self._environment()
        log.warning("no upstream is reachable: waking them: %s", shlex.join(self._argv))
        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)

        def emit(raw: bytes) -> None:
            line = raw.decode("utf-8", "replace").rstrip()
            for secret in secrets:
                line = line.replace(secret, "***")
            if line:
                tail.append(line)
                log.info("wake: %s", line)

        try:
            proc = await asyncio.create_subprocess_exec(
                *self._argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        except OSError as e:
            log.warning("the wake command could not be started: %s", e.strerror or e)
            return NOT_STARTED
        assert proc.stdout is not None  # noqa: S101 - stdout=PIPE
        buf = b""
        with contextlib.suppress(ConnectionError):
            while chunk := await proc.stdout.read(_CHUNK):
                *lines, buf = (buf + chunk).split(b"\n")
                for line in lines:
                    emit(line)
                if len(buf) > _CHUNK:  # a line without end: logged in pieces
                    emit(buf)
                    buf = b""
        emit(buf)
        rc = await proc.wait()
        if rc == 0:
            log.warning("the wake command ended (exit 0)")
        else:
            log.warning(
                "the wake command failed (exit %d); its last lines:\n%s", rc, "\n".join(tail)
            )
        return rc
