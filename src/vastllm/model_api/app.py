"""The FastAPI application: routes, error handlers, and the model loading at startup."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from vastllm import __version__
from vastllm.model_api import routes_health, routes_native, routes_openai
from vastllm.model_api.disconnect import install_disconnect_handler
from vastllm.model_api.errors import install_error_handlers
from vastllm.model_api.runtime import Runtime
from vastllm.model_api.service import GenerationService
from vastllm.model_api.settings import ModelApiSettings


def create_app(settings: ModelApiSettings) -> FastAPI:
    runtime = Runtime(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        runtime.start_loading()
        try:
            yield
        finally:
            runtime.shutdown()

    app = FastAPI(title="vastllm model API", version=__version__, lifespan=lifespan)
    app.state.runtime = runtime
    app.state.service = GenerationService(runtime)
    install_error_handlers(app)
    install_disconnect_handler(app)
    app.include_router(routes_health.router)
    app.include_router(routes_native.router)
    app.include_router(routes_openai.router)
    return app
