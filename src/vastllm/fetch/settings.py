"""Defaults for the fetch CLI, from the environment (prefix `VASTLLM_FETCH_`).

Command-line flags win over these. S3 credentials are *not* settings: boto reads them from
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, the AWS config or the instance
profile. boto also honours AWS_ENDPOINT_URL(_S3) and AWS_REGION itself.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "VASTLLM_FETCH_"


class FetchSettings(BaseSettings):
    """Environment defaults: e.g. VASTLLM_FETCH_WORKERS=16, VASTLLM_FETCH_CHUNK_MIB=64."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    endpoint_url: str | None = None
    region: str | None = None
    addressing_style: Literal["auto", "virtual", "path"] | None = None
    workers: int = Field(default=8, ge=1, le=256)
    chunk_mib: int = Field(default=32, ge=1, le=1024)
    prefetch_chunks: int = Field(default=0, ge=0, le=1024)
    progress_seconds: float = Field(default=5.0, gt=0)
    max_attempts: int = Field(default=5, ge=1, le=20)
    connect_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=60.0, gt=0)
