"""``python -m vastllm.proxy``: read the settings (env ``VASTLLM_PROXY_*``, optional config file)
and serve until SIGINT/SIGTERM. Bad settings exit 2 with a message that names the fields and the
problems but never a value (see :func:`vastllm.config_file.load_settings`)."""

from __future__ import annotations

import logging
import sys

from aiohttp import web

from vastllm.config_file import InvalidSettings, load_settings
from vastllm.proxy.app import build_app
from vastllm.proxy.settings import ENV_PREFIX, ProxySettings, without_credentials
from vastllm.proxy.workers import WorkerPool, worker_role

log = logging.getLogger("vastllm.proxy")


def main() -> int:
    try:
        settings = load_settings(ProxySettings, ENV_PREFIX)
    except InvalidSettings as e:
        print(f"vastllm-proxy: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    role = worker_role(settings)
    if role is None:
        upstreams = ", ".join(
            f"{u.name}={u.kind}:{without_credentials(u.base_url)}" for u in settings.upstreams
        )
        print(
            f"vastllm-proxy listening on http://{settings.host}:{settings.port} "
            f"(upstreams: {upstreams}; cache: {settings.cache_mode}; "
            f"api keys: {'on' if settings.api_keys else 'off'}; workers: {settings.workers})",
            file=sys.stderr,
            flush=True,
        )
        if settings.workers > 1:
            return WorkerPool(settings).run()
    web.run_app(
        build_app(settings, role),
        host=settings.host,
        port=settings.port,
        access_log=None,
        print=None,
        shutdown_timeout=5.0,
        reuse_port=role is not None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
