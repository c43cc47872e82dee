"""Prometheus metrics of a gateway or worker process (``--metrics-port``).

One ``Metrics`` object per process, on its own registry, passed to the parts
that report; none of them reads a global.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from moviola.jobs import Completed, EventKind, Expert, Failed, Progress

#: Buckets for durations from a few milliseconds (tiny models) to an hour (long real jobs).
SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
#: Buckets for the event loop's lag: a millisecond (idle; the loop's timer resolution) to seconds (stalled).
LAG = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.ready = Gauge(
            "moviola_ready",
            "1 while the process serves (its lifecycle READY, no dependency down)",
            registry=r,
        )
        self.queue_depth = Gauge(
            "moviola_queue_depth", "Jobs waiting to start", ["model", "priority"], registry=r
        )
        self.submitted = Counter("moviola_jobs_submitted", "Jobs accepted", ["model", "priority"], registry=r)
        self.finished = Counter(
            "moviola_jobs_finished", "Jobs ended, by terminal state", ["model", "state"], registry=r
        )
        self.queued_seconds = Histogram(
            "moviola_queue_seconds", "Time from acceptance to start", ["model"], buckets=SECONDS, registry=r
        )
        self.first_step_seconds = Histogram(
            "moviola_time_to_first_step_seconds",
            "Time from start to the first denoising step",
            ["model"],
            buckets=SECONDS,
            registry=r,
        )
        self.step_seconds = Histogram(
            "moviola_denoising_step_seconds",
            "Seconds per denoising step",
            ["model", "expert"],
            buckets=SECONDS,
            registry=r,
        )
        self.vae_seconds = Histogram(
            "moviola_vae_decode_seconds", "VAE decode time", ["model"], buckets=SECONDS, registry=r
        )
        self.job_seconds = Histogram(
            "moviola_job_seconds",
            "Job run time, start to end",
            ["model", "state"],
            buckets=SECONDS,
            registry=r,
        )
        self.embedding_seconds = Histogram(
            "moviola_embedding_seconds",
            "Embed latency, by model and input",
            ["model", "input"],
            buckets=SECONDS,
            registry=r,
        )
        self.embedding_failures = Counter(
            "moviola_embedding_failures",
            "Embed requests that failed, by input and error",
            ["input", "error"],
            registry=r,
        )
        self.active_streams = Gauge("moviola_active_streams", "Open event streams", ["method"], registry=r)
        self.streams_refused = Counter(
            "moviola_streams_refused",
            "Event streams refused because this front had --max-streams open (RESOURCE_EXHAUSTED)",
            registry=r,
        )
        self.redis_pool_wait_seconds = Histogram(
            "moviola_redis_pool_wait_seconds",
            "Seconds a Redis command waited for a free connection of the pool (--redis-max-connections)",
            buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0),
            registry=r,
        )
        self.loop_lag = Histogram(
            "moviola_event_loop_lag_seconds",
            "How much later than asked the event loop ran a timer, sampled every 0.25 s (loop_lag.py): "
            "past a few milliseconds the process is short of CPU or something blocks its loop",
            buckets=LAG,
            registry=r,
        )
        self.dead_letters = Gauge("moviola_dead_letters", "Jobs in the dead-letter stream", registry=r)
        self.videos_indexed = Counter(
            "moviola_videos_indexed", "Completed videos embedded into the search index", registry=r
        )
        self.adapter_loads = Counter(
            "moviola_adapter_loads", "LoRA adapters loaded (cache misses)", ["model", "adapter"], registry=r
        )
        self.adapter_cache_hits = Counter(
            "moviola_adapter_cache_hits",
            "Jobs whose LoRA adapter was loaded already",
            ["model", "adapter"],
            registry=r,
        )
        self.adapter_load_seconds = Histogram(
            "moviola_adapter_load_seconds",
            "Seconds loading one LoRA adapter",
            ["model"],
            buckets=SECONDS,
            registry=r,
        )
        self.webhook_attempts = Counter(
            "moviola_webhook_attempts",
            "Webhook delivery attempts by outcome: delivered, retried, given_up",
            ["outcome"],
            registry=r,
        )

    def adapter_used(self, model: str, adapter: str, load_seconds: float | None) -> None:
        """A job needed ``adapter``: loaded in ``load_seconds``, or (None) found loaded."""
        if load_seconds is None:
            self.adapter_cache_hits.labels(model, adapter).inc()
            return
        self.adapter_loads.labels(model, adapter).inc()
        self.adapter_load_seconds.labels(model).observe(load_seconds)

    async def follow(self, serving: bool) -> None:
        """A lifecycle listener (``Lifecycle.subscribe``): ``moviola_ready`` follows the process's state."""
        self.ready.set(1 if serving else 0)

    def serve(self, port: int, host: str) -> None:
        """Expose /metrics on ``port`` (a daemon thread)."""
        start_http_server(port, addr=host, registry=self.registry)


class JobMetrics:
    """Turns one running job's events into observations."""

    def __init__(self, metrics: Metrics, model: str, queued_seconds: float) -> None:
        self._m = metrics
        self._model = model
        self._last_elapsed = 0.0
        metrics.queued_seconds.labels(model).observe(max(0.0, queued_seconds))

    def event(self, kind: EventKind, since_start: float) -> None:
        if isinstance(kind, Progress):
            if kind.step == 1:
                self._m.first_step_seconds.labels(self._model).observe(since_start)
            expert = "" if kind.expert is Expert.SINGLE else kind.expert.value
            self._m.step_seconds.labels(self._model, expert or "single").observe(
                kind.elapsed - self._last_elapsed
            )
            self._last_elapsed = kind.elapsed

    def end(self, kind: EventKind, run_seconds: float) -> None:
        state = {Completed: "completed", Failed: "failed"}.get(type(kind), "cancelled")
        self._m.finished.labels(self._model, state).inc()
        self._m.job_seconds.labels(self._model, state).observe(run_seconds)
        if isinstance(kind, Completed):
            self._m.vae_seconds.labels(self._model).observe(kind.timings.vae_decoding)


async def refresh_forever(refresh: Callable[[], Awaitable[None]], interval: float = 1.0) -> None:
    """Call ``refresh`` every ``interval`` seconds; errors are logged, never fatal."""
    import asyncio
    import logging

    while True:
        try:
            await refresh()
        except Exception as exc:  # a scrape gauge must not take the server down
            logging.getLogger(__name__).debug("metrics refresh failed: %s", exc)
        await asyncio.sleep(interval)
