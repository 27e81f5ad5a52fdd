"""Generation as seen from the event loop: admission, prompt checks, the turn, the worker
thread, and a stream of text pieces back to the request handler.

One generation runs at a time (:mod:`vastllm.model_api.scheduler`): an admitted request holds
its slot while it is tokenized, while it waits for its turn and while it generates; the single
worker thread gives back the turn and then the slot when the generation ends, whether it
finished, failed or was cancelled. Cancelling (a client that went away) while waiting leaves the
line at once; during the generation it sets a flag that the decode loop checks before every
token.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vastllm.model_api.errors import APIError, bad_request
from vastllm.model_api.generation import ChatTemplateError, GenerationParams, GenerationResult
from vastllm.model_api.runtime import Runtime
from vastllm.model_api.scheduler import QueueFull
from vastllm.model_api.schemas import SamplingParams

if TYPE_CHECKING:
    from vastllm.model_api.engine import Engine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    """A tokenized prompt with the generation parameters it may use."""

    prompt_ids: Sequence[int]
    params: GenerationParams


class Job:
    """One running generation: text pieces flow from the worker thread to ``pieces()``."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.cancel_event = threading.Event()
        self.result: GenerationResult | None = None
        self._loop = loop
        self._queue: asyncio.Queue[str | GenerationResult | BaseException] = asyncio.Queue()

    def cancel(self) -> None:
        self.cancel_event.set()

    def push(self, item: str | GenerationResult | BaseException) -> None:
        """Thread-safe: called by the worker thread."""
        with suppress(RuntimeError):  # the loop is closed: nobody is listening any more
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    async def pieces(self) -> AsyncIterator[str]:
        """Yield text pieces until the generation ends; then ``result`` is set."""
        while True:
            item = await self._queue.get()
            if isinstance(item, str):
                yield item
            elif isinstance(item, GenerationResult):
                self.result = item
                return
            else:
                raise item

    async def wait(self) -> GenerationResult:
        async for _ in self.pieces():
            pass
        return self.finished()

    def finished(self) -> GenerationResult:
        """The result, once ``pieces()`` is exhausted."""
        if self.result is None:
            raise RuntimeError("generation has not finished")
        return self.result


class GenerationService:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def start(
        self,
        encode: Callable[[Engine], list[int]],
        sampling: SamplingParams,
        max_tokens: int | None,
        prompt_param: str,
    ) -> Job:
        """Admit the request, tokenize it, and run it in the worker thread once its turn comes.

        Admission comes first: a request that finds the line full gets its 429 without being
        tokenized (a prompt may be megabytes), and prompts tokenized at once are bounded by
        ``max_concurrent + max_queue``. A request waiting in line tokenizes meanwhile; a prompt
        refused (400) or a client gone (cancelled) leaves the line or frees the slot. Once
        admitted and tokenized, it waits for the one generation running (turns in the order
        they are asked for); a client gone meanwhile gives up its turn and its slot at once.
        """
        engine, executor = self.runtime.require_engine()
        scheduler = self.runtime.scheduler
        try:
            slot = scheduler.enter()
        except QueueFull:
            raise APIError(
                429,
                f"server busy: {scheduler.active} request(s) admitted "
                f"(max_concurrent={scheduler.max_concurrent}, {scheduler.running} generating) "
                f"and {scheduler.waiting} waiting (max_queue={scheduler.max_queue}); retry later",
                type_="rate_limit_error",
                code="queue_full",
                headers={"Retry-After": str(self.runtime.settings.retry_after_s)},
            ) from None
        try:
            prepared = await self._prepare(engine, encode, sampling, max_tokens, prompt_param)
            await slot
            turn = scheduler.take_turn()
            try:
                await turn
                loop = asyncio.get_running_loop()
                job = Job(loop)
                executor.submit(self._run, engine, job, prepared, loop)
            except BaseException:  # a cancelled wait, an executor shut down: not started
                scheduler.leave_turn(turn)
                raise
        except BaseException:  # a 400, a cancelled wait, an executor shut down: not started
            scheduler.leave(slot)
            raise
        return job

    async def _prepare(
        self,
        engine: Engine,
        encode: Callable[[Engine], list[int]],
        sampling: SamplingParams,
        max_tokens: int | None,
        prompt_param: str,
    ) -> Prepared:
        """Tokenize (off the loop) and fit ``max_tokens`` into the context window."""
        try:
            prompt_ids = await asyncio.to_thread(encode, engine)
        except ChatTemplateError as e:
            raise bad_request(str(e), param=prompt_param) from e
        n, ctx = len(prompt_ids), engine.context_length
        if n == 0:
            raise bad_request("the prompt is empty", param=prompt_param)
        if n >= ctx:
            raise bad_request(
                f"the prompt is {n} tokens long but the model's context length is {ctx} tokens",
                param=prompt_param,
                code="context_length_exceeded",
            )
        settings = self.runtime.settings
        wanted = max_tokens or settings.max_new_tokens_default
        temperature = sampling.temperature
        params = GenerationParams(
            max_new_tokens=min(wanted, ctx - n),
            temperature=settings.temperature_default if temperature is None else temperature,
            top_p=sampling.top_p,
            seed=sampling.seed,
            stop=tuple(sampling.stop),
            ignore_eos=sampling.ignore_eos,
        )
        return Prepared(prompt_ids=prompt_ids, params=params)

    def _run(
        self, engine: Engine, job: Job, prepared: Prepared, loop: asyncio.AbstractEventLoop
    ) -> None:
        """Worker thread: generate, hand pieces and the result over, end the turn and release
        the slot."""
        try:
            result = engine.generate(
                prepared.prompt_ids, prepared.params, job.cancel_event, job.push
            )
            rate = result.completion_tokens / result.seconds if result.seconds else 0.0
            log.info(
                "generation %s: prompt=%d completion=%d in %.2fs (%.1f tok/s)",
                result.finish_reason,
                result.prompt_tokens,
                result.completion_tokens,
                result.seconds,
                rate,
            )
            job.push(result)
        except Exception as e:
            log.exception("generation failed")
            job.push(e)
        finally:
            with suppress(RuntimeError):
                loop.call_soon_threadsafe(self._ended)

    def _ended(self) -> None:
        """On the loop, once a generation ended: the next turn, then the slot."""
        scheduler = self.runtime.scheduler
        scheduler.end_turn()
        scheduler.release()
