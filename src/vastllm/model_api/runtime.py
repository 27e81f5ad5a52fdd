"""What the server knows at run time: load status, the engine once loaded, the scheduler.

The model loads in a daemon thread started at application startup, so /health answers
``loading`` meanwhile, then ``ready`` (or ``error`` with the reason).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Literal

from vastllm.model_api.errors import APIError
from vastllm.model_api.model_dir import check_model_dir
from vastllm.model_api.scheduler import Scheduler
from vastllm.model_api.settings import ModelApiSettings

if TYPE_CHECKING:
    from vastllm.model_api.engine import Engine

log = logging.getLogger(__name__)

Status = Literal["loading", "ready", "error"]
GPU_DEFAULT_CONCURRENCY = 2


class Runtime:
    def __init__(self, settings: ModelApiSettings) -> None:
        self.settings = settings
        self.model_id = settings.served_model_id
        self.status: Status = "loading"
        self.reason: str | None = None
        self.engine: Engine | None = None
        self.scheduler = Scheduler(settings.max_concurrent or 1, settings.max_queue)
        self.executor: ThreadPoolExecutor | None = None
        self.started_monotonic = time.monotonic()
        self.created = int(time.time())
        self._loader: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start_loading(self) -> None:
        """Load the model in a daemon thread; the result is applied on the event loop."""
        loop = asyncio.get_running_loop()

        def work() -> None:
            # the model is a local directory: never ask a hub (read when transformers loads)
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                check_model_dir(self.settings.model_path)
                # torch and transformers are imported here, off the event loop
                from vastllm.model_api.engine import Engine  # noqa: PLC0415

                engine = Engine.load(self.settings)
            except Exception as e:
                log.error("model failed to load: %s", e)
                reason = str(e) or type(e).__name__
                loop.call_soon_threadsafe(self._failed, reason)
                return
            loop.call_soon_threadsafe(self._ready, engine)

        self._loader = threading.Thread(target=work, name="model-loader", daemon=True)
        self._loader.start()

    def _ready(self, engine: Engine) -> None:
        if self.settings.max_concurrent is None and engine.device.startswith("cuda"):
            self.scheduler.max_concurrent = GPU_DEFAULT_CONCURRENCY
        # one generation at a time (the scheduler's turn): one worker thread, whatever
        # max_concurrent admits
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generate")
        self.engine = engine
        self.status = "ready"
        log.info(
            "ready: serving %s (max_concurrent=%d, max_queue=%d)",
            self.model_id,
            self.scheduler.max_concurrent,
            self.scheduler.max_queue,
        )

    def _failed(self, reason: str) -> None:
        self.status = "error"
        self.reason = reason

    def shutdown(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)

    # -- access -------------------------------------------------------------------------------

    @property
    def uptime_s(self) -> float:
        return round(time.monotonic() - self.started_monotonic, 3)

    def require_engine(self) -> tuple[Engine, ThreadPoolExecutor]:
        """The loaded engine, or a 503 that says why there is none."""
        if self.status == "ready" and self.engine is not None and self.executor is not None:
            return self.engine, self.executor
        if self.status == "error":
            raise APIError(
                503,
                f"model failed to load: {self.reason}",
                type_="service_unavailable",
                code="model_load_failed",
            )
        raise APIError(
            503,
            f"model {self.model_id} is loading, retry shortly",
            type_="service_unavailable",
            code="model_loading",
            headers={"Retry-After": str(self.settings.loading_retry_after_s)},
        )
