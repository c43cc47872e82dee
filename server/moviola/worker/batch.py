"""One pipeline call for several jobs (``--max-batch``), each job still run by its own ``Worker.run_job``.

Every member's ``run_job`` hands its hooks to ``BatchRender.frames`` and awaits its own frames. Once
all members are in, the batch runs on the pipeline thread. A member that is cancelled leaves at its
next step, and its ``frames`` raises ``JobCancelled`` then, not when the batch ends, so its job ends
at once while the others go on.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from typing import Any

from moviola.errors import JobCancelled
from moviola.jobs import JobRequest
from moviola.pipelines.base import BatchingPipeline, Frames, StepHooks, WrappedHooks
from moviola.worker.hooks import JobHooks


class _Member(WrappedHooks):
    """A member's hooks as the pipeline sees them: leaving the batch resolves its job's frames at once."""

    def __init__(self, hooks: JobHooks, leave: Any) -> None:
        super().__init__(hooks)
        self._leave = leave

    def phase_cancelled(self, exc: JobCancelled) -> None:
        self._leave(exc)
        raise exc

    def after_step(self, step: int, total_steps: int, cancel: JobCancelled | None) -> None:
        if cancel is not None:
            self._leave(cancel)
            raise cancel


class BatchRender:
    def __init__(self, pipeline: BatchingPipeline, requests: list[JobRequest], executor: Executor) -> None:
        self._pipeline = pipeline
        self._requests = requests
        self._executor = executor
        loop = asyncio.get_running_loop()
        self._results: list[asyncio.Future[Frames]] = [loop.create_future() for _ in requests]
        self._hooks: list[JobHooks | None] = [None] * len(requests)
        self._task: asyncio.Task[None] | None = None

    async def frames(self, index: int, hooks: JobHooks) -> Frames:
        """Member ``index``'s frames, once the batch has run (or ``JobCancelled`` when it leaves)."""
        self._hooks[index] = hooks
        if all(h is not None for h in self._hooks):
            self._task = asyncio.create_task(self._run(), name="batch")
        return await self._results[index]

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()

        def resolver(index: int) -> Any:
            def leave(exc: JobCancelled) -> None:
                loop.call_soon_threadsafe(self._settle, index, None, exc)

            return leave

        members: list[StepHooks] = [_Member(h, resolver(i)) for i, h in enumerate(self._hooks) if h]
        try:
            frames = await loop.run_in_executor(
                self._executor, self._pipeline.generate_batch, self._requests, members
            )
        except Exception as exc:  # the whole batch failed: every member still in it fails alike
            for index in range(len(self._requests)):
                self._settle(index, None, exc)
            return
        for index, result in enumerate(frames):
            self._settle(index, result, JobCancelled("cancelled"))

    def _settle(self, index: int, frames: Frames | None, exc: BaseException) -> None:
        future = self._results[index]
        if future.done():
            return
        if frames is None:
            future.set_exception(exc)
        else:
            future.set_result(frames)
