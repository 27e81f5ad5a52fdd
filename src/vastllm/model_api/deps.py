"""Request dependencies: the runtime and the generation service held in ``app.state``."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from vastllm.model_api.runtime import Runtime
from vastllm.model_api.service import GenerationService


def get_runtime(request: Request) -> Runtime:
    return cast(Runtime, request.app.state.runtime)


def get_service(request: Request) -> GenerationService:
    return cast(GenerationService, request.app.state.service)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
ServiceDep = Annotated[GenerationService, Depends(get_service)]
