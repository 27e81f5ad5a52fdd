"""The idle watcher's settings, from the environment (prefix ``VASTLLM_IDLE_``).

Times are floats so tests can scale them down (``VASTLLM_IDLE_STOP_MINUTES=0.01``,
``VASTLLM_IDLE_POLL_SECONDS=0.05``; a budget of ``VASTLLM_IDLE_MAX_SPEND_USD=0.0002`` lasts
seconds). The API key is not a setting: see :mod:`vastllm.idle.vast`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from vastllm.defaults import PROXY_PORT

ENV_PREFIX = "VASTLLM_IDLE_"


class IdleSettings(BaseSettings):
    """What the role writes into the watcher's environment (roles/idle_stop)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    # minutes without a request, a stream or a busy mark before the action is taken (0: off)
    stop_minutes: float = Field(default=0.0, ge=0)
    # dollars the instance may spend by the watcher's count: a warning at 80 %, a stop at 100 %
    # (0: no budget)
    max_spend_usd: float = Field(default=0.0, ge=0)
    # the price recorded when the role ran: {"dph_total": $/h} (read with a budget only)
    price_file: Path = Path("/etc/vastllm/price.json")
    # what the instance spent so far, kept across restarts of the watcher
    spend_state_file: Path = Path("/opt/vastllm/idle/spend.json")
    # stop: the GPU is let go, the disk kept (and still billed); destroy: every charge ends
    action: Literal["stop", "destroy"] = "stop"
    # seconds between two reads of /metrics and the busy marks
    poll_seconds: float = Field(default=30.0, gt=0)
    metrics_url: str = f"http://127.0.0.1:{PROXY_PORT}/metrics"
    metrics_timeout: float = Field(default=5.0, gt=0)
    # where the busy marks are (None: VASTLLM_BUSY_DIR, else /run/vastllm/busy)
    busy_dir: Path | None = None
    # the instance to stop (None: CONTAINER_ID, which Vast.ai sets in every instance)
    instance_id: int | None = Field(default=None, gt=0)
    api_url: str = "https://console.vast.ai"
    # a 0600 file with a key, used only where the instance's own CONTAINER_API_KEY is missing
    api_key_file: Path | None = None
    # the shared Vast.ai client (plugins/module_utils/vastai_api.py, installed by the role)
    api_client: Path = Path("/opt/vastllm/idle/vastai_api.py")
    # the environment of the container's first process: Vast.ai's variables are there, while
    # processes started over SSH (as Ansible starts services) do not inherit them
    init_environ: Path = Path("/proc/1/environ")
