"""Upstreams reloaded from the config file while the proxy runs: hosts that join or leave a fleet
(provision, destroy, an inventory change rewriting ``VASTLLM_PROXY_CONFIG``) take effect without a
restart and without dropping the streams in flight.

Each process looks at the file's modification time and size every ``health_interval`` seconds;
when they change it loads the settings again (environment over file, as at start) and hands the
new ``upstreams`` to :meth:`Router.reload`: unchanged upstreams keep their state, requests in
flight finish on the upstream they started on. Only ``upstreams`` is applied; other fields that
changed are named in the log as needing a restart. A file that does not load leaves everything
as it was, logged with the problem (never a value, see :func:`vastllm.config_file.load_settings`).
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from vastllm.config_file import InvalidSettings, load_settings
from vastllm.proxy import background
from vastllm.proxy.settings import CONFIG_ENV, ENV_PREFIX, ProxySettings
from vastllm.proxy.upstreams.router import Router

log = logging.getLogger(__name__)

Stamp = tuple[int, int] | None


def _stamp(path: Path) -> Stamp:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


class ConfigWatcher:
    def __init__(self, settings: ProxySettings, router: Router) -> None:
        name = os.environ.get(CONFIG_ENV, "")
        self.path = Path(name) if name else None
        self._settings = settings
        self._router = router
        self._stamp = None if self.path is None else _stamp(self.path)
        self._task: asyncio.Task[None] | None = None

    def check(self) -> bool:
        """Reload when the file changed; True when upstreams were applied."""
        if self.path is None:
            return False
        stamp = _stamp(self.path)
        if stamp == self._stamp or stamp is None:
            return False
        self._stamp = stamp
        try:
            new = load_settings(ProxySettings, ENV_PREFIX)
        except InvalidSettings as e:
            log.warning("config %s changed but was not applied: %s", self.path, e)
            return False
        changed, removed = self._router.reload(new.upstreams)
        names = ", ".join(u.name for u in new.upstreams)
        log.warning(
            "upstreams reloaded from %s: now %s (new or changed: %s; removed: %s)",
            self.path,
            names,
            ", ".join(changed) or "none",
            ", ".join(removed) or "none",
        )
        old, fresh = self._settings.model_dump(), new.model_dump()
        later = sorted(k for k in fresh if k != "upstreams" and fresh[k] != old.get(k))
        if later:
            log.warning("changed settings that apply after a restart: %s", ", ".join(later))
        return True

    async def _loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                self.check()
            except Exception:
                log.exception("config reload failed")

    def start(self, interval: float) -> None:
        if self.path is not None:
            self._task = asyncio.create_task(self._loop(interval), name="config-reload")

    async def stop(self) -> None:
        await background.cancel(self._task)
