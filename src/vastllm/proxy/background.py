"""The proxy's background loops (upstream health checks, Redis pings, the config reload, the
workers' shared metrics) are tasks started with the app; :func:`cancel` ends one at its end."""

from __future__ import annotations

import asyncio
import contextlib


async def cancel(task: asyncio.Task[None] | None) -> None:
    """Cancel ``task`` (None: never started) and wait until it has ended."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
