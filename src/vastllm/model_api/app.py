"""The FastAPI application: routes, error handlers, the request guard, and the model loading at
startup."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.routing import APIRoute

from vastllm import __version__
from vastllm.model_api import routes_health, routes_native, routes_openai
from vastllm.model_api.disconnect import install_disconnect_handler
from vastllm.model_api.errors import install_error_handlers
from vastllm.model_api.guard import Guard
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
    routers = (routes_health.router, routes_native.router, routes_openai.router)
    for router in routers:
        app.include_router(router)
    post_paths = {
        route.path
        for router in routers
        for route in router.routes
        if isinstance(route, APIRoute) and "POST" in (route.methods or ())
    }
    app.add_middleware(Guard, settings=settings, post_paths=post_paths)
    return app
