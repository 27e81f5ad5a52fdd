"""Entry point: ``python -m vastllm.model_api [--config FILE]``.

Settings come from ``VASTLLM_MODEL_API_*`` variables and the optional config file; bad ones exit
2 with a message naming the fields and problems, never a value (see
:func:`vastllm.config_file.load_settings`). The listening socket is bound before anything else,
so a busy port fails at once (exit code 2) instead of after loading a model, and never silently
moves to another port.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import socket
import sys

import uvicorn

from vastllm.config_file import InvalidSettings, load_settings
from vastllm.model_api.app import create_app
from vastllm.model_api.settings import CONFIG_ENV, ENV_PREFIX, ModelApiSettings

EXIT_USAGE = 2
log = logging.getLogger("vastllm.model_api")


class PortInUse(OSError):
    pass


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on host:port (IPv6 when host has a colon)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise PortInUse(e.errno, f"port {port} on {host} is already in use") from e
        raise
    sock.set_inheritable(True)
    return sock


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m vastllm.model_api",
        description="Serve a local transformers model over HTTP (OpenAI-compatible). "
        "Settings: VASTLLM_MODEL_API_* variables (MODEL_PATH, MODEL_ID, HOST, PORT, DTYPE, "
        "DEVICE, CPU_THREADS, MAX_CONCURRENT, MAX_QUEUE, MAX_NEW_TOKENS_DEFAULT, "
        "CONTEXT_LENGTH, MAX_BODY_BYTES, ALLOWED_HOSTS, CORS_ORIGINS, LOG_LEVEL) "
        f"over the JSON/YAML file named by {CONFIG_ENV}.",
    )
    parser.add_argument("--config", help=f"settings file (JSON or YAML); overrides {CONFIG_ENV}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.config:
        os.environ[CONFIG_ENV] = args.config
    try:
        settings = load_settings(ModelApiSettings, ENV_PREFIX)  # model_path from env/file
    except InvalidSettings as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        sock = bind_socket(settings.host, settings.port)
    except PortInUse as e:
        print(f"error: {e.strerror}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:
        where = f"{settings.host}:{settings.port}"
        print(f"error: cannot listen on {where}: {e.strerror or e}", file=sys.stderr)
        return EXIT_USAGE

    config = uvicorn.Config(
        create_app(settings),
        log_level=settings.log_level,
        timeout_graceful_shutdown=int(settings.shutdown_grace_s),
        log_config=None,  # keep the basicConfig above
    )
    log.info(
        "listening on http://%s:%d (model %s)",
        settings.host,
        settings.port,
        settings.served_model_id,
    )
    uvicorn.Server(config).run(sockets=[sock])
    return 0
