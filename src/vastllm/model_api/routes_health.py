"""``GET /health`` (200 when ready, 503 while loading or after a load error; JSON either way)
and ``GET /ping``."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from vastllm.model_api.deps import RuntimeDep
from vastllm.model_api.schemas import Health, QueueStats
from vastllm.seed_health import seed_size

router = APIRouter()


def health_of(runtime: RuntimeDep) -> Health:
    engine = runtime.engine
    device = engine.device if engine else None
    gpu = engine.gpu_info() if engine else None
    scheduler = runtime.scheduler
    return Health(
        status=runtime.status,
        healthy=runtime.status == "ready",
        reason=runtime.reason,
        model=runtime.model_id,
        model_path=str(runtime.settings.model_path),
        device=device,
        dtype=engine.dtype if engine else None,
        gpu_name=gpu.name if gpu else None,
        vram_used_mib=gpu.used_mib if gpu else None,
        vram_total_mib=gpu.total_mib if gpu else None,
        gpu=gpu.name if gpu else None,
        vram_used=seed_size(gpu.used_bytes) if gpu else None,
        vram_total=seed_size(gpu.total_bytes) if gpu else None,
        uptime_s=runtime.uptime_s,
        queue=QueueStats(
            active=scheduler.active,
            running=scheduler.running,
            waiting=scheduler.waiting,
            max=scheduler.max_queue,
            max_concurrent=scheduler.max_concurrent,
        ),
        context_length=engine.context_length if engine else runtime.settings.context_length,
    )


@router.get("/health", response_model=Health)
async def health(runtime: RuntimeDep) -> JSONResponse:
    body = health_of(runtime)
    status = 200 if body.status == "ready" else 503
    return JSONResponse(body.model_dump(exclude_none=False), status_code=status)


@router.get("/ping")
async def ping() -> dict[str, str]:
    return {"message": "pong"}
