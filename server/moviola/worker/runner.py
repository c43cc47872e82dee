"""Runs jobs one at a time: pipeline on a thread, events on the loop.

The event loop never blocks on torch: generation and MP4 encoding run on a
single pipeline thread (one pipeline runs one request at a time), storage on
the default executor. Every job ends with exactly one terminal event.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from moviola.errors import (
    InvalidInput,
    JobCancelled,
    JobError,
    LeaseLost,
    OutOfMemory,
    Unavailable,
)
from moviola.jobs import Cancelled, Completed, EventKind, Failed, FailureCode, JobRequest, LoraChoice, Phase
from moviola.metrics import JobMetrics, Metrics
from moviola.mp4 import MIME_TYPE, encode_mp4, encode_poster, encode_spritesheet
from moviola.pipelines.base import BatchingPipeline, EditingPipeline, Frames, TunedPipeline, VideoPipeline
from moviola.scheduler.base import Assignment, WorkerQueue
from moviola.storage.base import Storage, StoredVideo
from moviola.tracing import Tracing
from moviola.worker import profiles, segments, sources
from moviola.worker.batch import BatchRender
from moviola.worker.hooks import JobHooks
from moviola.worker.outbox import LINGER, Outbox
from moviola.worker.pairing import Partners

log = logging.getLogger(__name__)

SHUTDOWN_MESSAGE = "the server shut down before the job finished; submit it again"
#: Seconds a finished job's result is retried while the queue is unreachable before the worker gives up.
REDELIVERY_LIMIT = 300.0
#: Seconds storing a finished video is retried (storage unreachable) before the job fails, retryable.
STORE_TIMEOUT = 120.0


class Worker:
    def __init__(
        self,
        queue: WorkerQueue,
        pipeline: VideoPipeline,
        storage: Storage,
        *,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
        linger: float = LINGER,
        store_timeout: float = STORE_TIMEOUT,
        speed_profile: str = "exact",
        max_batch: int = 1,
        partners: Partners | None = None,
    ) -> None:
        self._queue = queue
        #: Where a long video past this model's window goes on (its catalogue partner); None: nowhere.
        self._partners = partners
        #: Jobs run in one batch at most (where the pipeline batches and the jobs share a batch key).
        self._max_batch = max_batch
        #: The profile of requests that name none.
        self._speed_profile = speed_profile
        self._store_timeout = store_timeout
        self._linger = linger
        self._tracing = tracing or Tracing(None, "moviola-worker")
        self._metrics = metrics
        self._pipeline = pipeline
        self._storage = storage
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pipeline")
        #: The pipeline, where it reports adapters and quantization (what results say it ran with).
        self._tuned = pipeline if isinstance(pipeline, TunedPipeline) else None
        if metrics is not None and self._tuned is not None and self._tuned.adapter_bank is not None:
            self._tuned.adapter_bank.listener = lambda load: metrics.adapter_used(
                self.model, load.name, load.seconds
            )
        self._running: dict[str, JobHooks] = {}
        self._shutting_down = False  # take no more jobs
        self._stopping_job = False  # the running job is being stopped by us, not by a caller
        self._idle = asyncio.Event()
        self._idle.set()
        self._taking: asyncio.Task[Assignment] | None = None

    @property
    def model(self) -> str:
        return self._pipeline.spec.id

    async def run(self) -> None:
        """Take and run jobs, one at a time, until ``drain`` or cancellation."""
        try:
            while not self._shutting_down:
                self._taking = asyncio.create_task(self._queue.take(self.model))
                try:
                    assignment = await self._taking
                except asyncio.CancelledError:
                    if self._shutting_down:  # drain() stopped the take
                        break
                    raise
                self._idle.clear()
                try:
                    jobs = await self._mates(assignment)
                    if len(jobs) == 1:
                        await self.run_job(assignment)
                    else:
                        await self.run_batch(jobs)
                finally:
                    self._idle.set()
        except Exception:
            log.exception("the worker for %s stopped taking jobs", self.model)
            raise
        finally:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def drain(self, grace: float) -> None:
        """Take no more jobs; let the running one finish within ``grace`` seconds, else stop it."""
        self._shutting_down = True
        if self._taking is not None and not self._taking.done():
            self._taking.cancel()
        try:
            await asyncio.wait_for(self.wait_idle(), grace)
        except TimeoutError:
            self.interrupt()
            await self.wait_idle()

    async def wait_idle(self) -> None:
        """Return once no job is running."""
        await self._idle.wait()

    def interrupt(self) -> None:
        """Stop the running job at its next step: the process is going away."""
        self._shutting_down = True
        self._stopping_job = True
        for hooks in self._running.values():
            hooks.request_cancel(SHUTDOWN_MESSAGE)

    async def _mates(self, first: Assignment) -> list[Assignment]:
        """``first`` and the waiting jobs that may run in one batch with it (up to ``max_batch``)."""
        pipeline, jobs = self._pipeline, [first]
        if self._max_batch < 2 or not isinstance(pipeline, BatchingPipeline):
            return jobs
        if (
            not pipeline.batchable(first.request)
            or first.request.num_frames > pipeline.spec.limits.max_frames
        ):
            return jobs  # a long video runs its segments alone
        while len(jobs) < self._max_batch:
            try:
                mate = await self._queue.take_mate(self.model, first.request.batch_key())
            except Unavailable:  # the queue went away: run what was taken
                break
            if mate is None:
                break
            jobs.append(mate)
        return jobs

    async def run_batch(self, jobs: list[Assignment]) -> None:
        """Run ``jobs`` (of one batch key) in one pipeline call; each ends on its own."""
        assert isinstance(self._pipeline, BatchingPipeline)
        render = BatchRender(self._pipeline, [self._request(job) for job in jobs], self._executor)
        log.info("running %d jobs in one batch: %s", len(jobs), ", ".join(job.job_id for job in jobs))
        await asyncio.gather(
            *(self.run_job(job, functools.partial(render.frames, i)) for i, job in enumerate(jobs))
        )

    async def run_job(
        self, job: Assignment, batch: Callable[[JobHooks], Awaitable[Frames]] | None = None
    ) -> None:
        """Run one job, alone or (``batch``: its frames come from the batch's one call) in a batch."""
        started = time.time()
        observer = (
            None if self._metrics is None else JobMetrics(self._metrics, self.model, started - job.created_at)
        )
        hooks, outbox = self._connect(job, observer, started)
        self._running[job.job_id] = hooks
        watcher = asyncio.create_task(self._queue.wait_cancel_requested(job.job_id))
        watcher.add_done_callback(
            lambda task: (
                None if task.cancelled() or task.exception() else hooks.request_cancel("cancelled by request")
            )
        )
        outcome: EventKind | None
        try:
            outcome = await self._generate(job, hooks, started, batch)
        except JobCancelled as exc:
            outcome = await self._cancelled(job, str(exc))
        except OutOfMemory as exc:
            outcome = Failed(code=FailureCode.OUT_OF_MEMORY, message=exc.message, retryable=True)
        except InvalidInput as exc:
            outcome = Failed(code=FailureCode.INVALID_INPUT, message=exc.message)
        except Unavailable as exc:  # the storage stayed unreachable: nothing was stored, submit it again
            outcome = Failed(code=FailureCode.UNAVAILABLE, message=exc.message, retryable=True)
        except JobError as exc:
            outcome = Failed(code=FailureCode.INTERNAL, message=exc.message, retryable=exc.retryable)
        except Exception as exc:  # a bug in a pipeline must end its job, not the worker
            log.exception("job %s failed", job.job_id, extra={"job_id": job.job_id})
            outcome = Failed(
                code=FailureCode.INTERNAL, message=f"internal error: {type(exc).__name__}: {exc}"
            )
        finally:
            watcher.cancel()
            unsent = await outbox.close()
            del self._running[job.job_id]
        if outcome is None:  # handed back: this run's progress is moot, RELEASE announced it queued
            log.info("job %s handed back to the queue", job.job_id, extra={"job_id": job.job_id})
            return
        if observer is not None:
            observer.end(outcome, time.time() - started)
        attributes: dict[str, str | int] = {"moviola.job_id": job.job_id, "moviola.model": self.model}
        attributes |= {"moviola.attempt": job.attempt, "moviola.outcome": type(outcome).__name__.lower()}
        self._tracing.record_job(
            job.request.traceparent, attributes, started, time.time(), hooks.phase_spans()
        )
        if not await self._deliver(job, outcome, time.time() - started, unsent):
            return
        outcome_name = type(outcome).__name__.lower()
        extra = {"job_id": job.job_id, "model": self.model, "outcome": outcome_name}
        log.info("job %s ended: %s", job.job_id, outcome_name, extra=extra)

    async def _deliver(
        self, job: Assignment, outcome: EventKind, run_seconds: float, unsent: list[EventKind]
    ) -> bool:
        """Finish the job, waiting out a queue outage; False when another worker owns it now.

        Raises ``Unavailable`` after ``REDELIVERY_LIMIT`` seconds of outage: the worker cannot go on, and
        its process exits so that its supervisor restarts it (the job's lease runs out; it is run again).
        """
        backoff, gave_up_at = 0.1, time.monotonic() + REDELIVERY_LIMIT
        while True:
            try:
                await self._queue.finish(job, outcome, run_seconds, preceding=unsent)
                return True
            except LeaseLost:
                log.warning("job %s was taken over by another worker; dropping this run's result", job.job_id)
                return False
            except Unavailable as exc:
                if time.monotonic() + backoff > gave_up_at:
                    raise
                log.warning(
                    "could not deliver the result of job %s (%s); retrying in %.1fs",
                    job.job_id,
                    exc.message,
                    backoff,
                    extra={"job_id": job.job_id},
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def _connect(
        self, job: Assignment, observer: JobMetrics | None, started: float
    ) -> tuple[JobHooks, Outbox]:
        """The pipeline's hooks, whose events go (observed, in order) to the job's outbox on the loop."""
        loop = asyncio.get_running_loop()

        def put(kind: EventKind) -> None:
            if observer is not None:
                observer.event(kind, time.time() - started)
            outbox.put(kind)

        def emit(kind: EventKind) -> None:  # on the pipeline thread
            loop.call_soon_threadsafe(put, kind)

        hooks = JobHooks(
            emit, preview_every=job.request.preview_every, loras=self._adapters(self._request(job))
        )
        outbox = Outbox(
            lambda kinds: self._queue.publish_many(job.job_id, kinds, attempt=job.attempt),
            lambda: hooks.request_cancel("taken over by another worker"),
            linger=self._linger,
        )
        return hooks, outbox

    async def _cancelled(self, job: Assignment, reason: str) -> EventKind | None:
        if not self._stopping_job:
            return Cancelled(reason=reason)
        if await self._queue.release(job):
            return None
        return Failed(code=FailureCode.UNAVAILABLE, message=SHUTDOWN_MESSAGE, retryable=True)

    async def _generate(
        self,
        job: Assignment,
        hooks: JobHooks,
        started: float,
        batch: Callable[[JobHooks], Awaitable[Frames]] | None,
    ) -> Completed:
        loop = asyncio.get_running_loop()
        request = self._request(job)
        made_of = 1
        partner = None if self._partners is None else self._partners.partner(self._pipeline.spec, request)
        if partner is not None:  # the first window here, the rest on the partner model
            assert self._partners is not None
            frames, made_of = await self._partners.render(
                self._pipeline,
                self._executor,
                job.job_id,
                request,
                hooks,
                partner,
                lambda: self._stopping_job,
            )
            stored = await loop.run_in_executor(self._executor, self._encode_store, job, hooks, frames)
        elif batch is None:
            frames, stored, made_of = await loop.run_in_executor(self._executor, self._render, job, hooks)
        else:
            frames = await batch(hooks)
            stored = await loop.run_in_executor(self._executor, self._encode_store, job, hooks, frames)
        count, height, width, _ = frames.shape
        return Completed(
            video_uri=stored.uri,
            width=width,
            height=height,
            num_frames=count,
            fps=request.fps,
            seed=request.seed,
            model=request.model,
            timings=hooks.timings(queued=started - job.created_at, running=time.time() - started),
            size_bytes=stored.size_bytes,
            mime_type=MIME_TYPE,
            peak_memory_bytes=hooks.peak_memory_bytes,
            thumbnail_uri=stored.thumbnail_uri,
            speed_profile=request.speed_profile,
            cached_steps=hooks.cached_steps,
            loras=self._adapters(request),
            transformer_passes=hooks.transformer_passes,
            quantization=self._tuned.quantization if self._tuned is not None else "none",
            segments=made_of,
        )

    def _adapters(self, request: JobRequest) -> tuple[LoraChoice, ...]:
        """The adapters ``request`` runs with (none on a pipeline that takes none)."""
        return self._tuned.adapters_of(request) if self._tuned is not None else ()

    def _request(self, job: Assignment) -> JobRequest:
        """The job's request as the pipeline runs it (``profiles.as_run``)."""
        return profiles.as_run(job.request, self._pipeline.spec, self._speed_profile)

    def _render(self, job: Assignment, hooks: JobHooks) -> tuple[Frames, StoredVideo, int]:
        """Generate (a long video as segments), encode and store, on the pipeline thread (one hop from
        the loop, not three); and how many segments made it."""
        request = self._request(job)
        if request.edit_from:
            frames = self._edited(request, hooks)
            return frames, self._encode_store(job, hooks, frames), 1
        before = sources.continued(self._storage, request)
        frames, made_of = segments.render(self._pipeline, request, hooks, before)
        return frames, self._encode_store(job, hooks, frames), made_of

    def _edited(self, request: JobRequest, hooks: JobHooks) -> Frames:
        """An edit's video: its source, read from storage (decoded and checked at submit), remade."""
        pipeline = self._pipeline
        if not isinstance(pipeline, EditingPipeline):
            raise InvalidInput(f"model {pipeline.spec.id} cannot edit videos on this worker")
        return pipeline.edit(request, hooks, sources.edited(self._storage, request))

    def _encode_store(self, job: Assignment, hooks: JobHooks, frames: Frames) -> StoredVideo:
        hooks.phase(Phase.VIDEO_ENCODING)
        data = encode_mp4(frames, job.request.fps)
        poster, sheet = encode_poster(frames), encode_spritesheet(frames)
        hooks.phase(Phase.STORING)
        stored = self._store(job, hooks, data, poster, sheet)
        hooks.end_phase()
        return stored

    def _store(
        self, job: Assignment, hooks: JobHooks, video: bytes, poster: bytes, sheet: bytes
    ) -> StoredVideo:
        """Store, retrying while the storage is unreachable (the encoded video is kept, not rendered again).

        Raises ``Unavailable`` after ``store_timeout`` seconds; a cancel stops the retries.
        """
        backoff, give_up_at = 0.5, time.monotonic() + self._store_timeout
        while True:
            try:
                return self._storage.put(job.job_id, video, poster, sheet)
            except Unavailable as exc:
                if time.monotonic() + backoff > give_up_at:
                    raise
                log.warning(
                    "could not store the video of job %s (%s); retrying in %.1fs",
                    job.job_id,
                    exc.message,
                    backoff,
                    extra={"job_id": job.job_id},
                )
                if hooks.wait_cancelled(backoff):
                    hooks.check()
                backoff = min(backoff * 2, 10.0)
