"""OpenTelemetry tracing, off by default (``--trace-file``).

A ``traceparent`` that arrives in gRPC metadata becomes the parent of a
``moviola.submit`` span on the gateway; the job carries that span's context
through the queue, and the worker records a ``moviola.job`` span under it with
one child span per phase (text encoding, denoising, VAE decode, video encoding,
storing). Spans are written as JSON lines to the trace file; any other
OpenTelemetry exporter can be added to the provider the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Tracer, set_span_in_context


class _JsonLinesExporter(SpanExporter):
    def __init__(self, out: IO[str]) -> None:
        self._out = out

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            self._out.write(json.dumps(json.loads(span.to_json()), separators=(",", ":")) + "\n")
        self._out.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._out.close()


class Tracing:
    """The tracer of one process, or a no-op when no trace file is set."""

    def __init__(self, trace_file: Path | None, service: str) -> None:
        self._tracer: Tracer | None = None
        if trace_file is not None:
            provider = TracerProvider(resource=Resource.create({"service.name": service}))
            provider.add_span_processor(SimpleSpanProcessor(_JsonLinesExporter(trace_file.open("a"))))
            self._tracer = provider.get_tracer("moviola")

    @contextmanager
    def submit(self, traceparent: str) -> Iterator[str]:
        """A ``moviola.submit`` span under the caller's ``traceparent``; yields the context the job carries."""
        if self._tracer is None:
            yield traceparent
            return
        parent = extract({"traceparent": traceparent}) if traceparent else None
        with self._tracer.start_as_current_span("moviola.submit", context=parent) as span:
            carrier: dict[str, str] = {}
            inject(carrier, context=set_span_in_context(span))
            yield carrier.get("traceparent", "")

    def record_job(
        self,
        traceparent: str,
        attributes: dict[str, str | int],
        started: float,
        ended: float,
        phases: list[tuple[str, float, float]],
    ) -> None:
        """Record a finished job and its phases (wall-clock seconds) under the job's ``traceparent``."""
        if self._tracer is None:
            return
        parent = extract({"traceparent": traceparent}) if traceparent else None
        job = self._tracer.start_span(
            "moviola.job", context=parent, start_time=_ns(started), attributes=attributes
        )
        inside = set_span_in_context(job)
        for name, start, end in phases:
            self._tracer.start_span(f"moviola.{name}", context=inside, start_time=_ns(start)).end(
                end_time=_ns(end)
            )
        job.end(end_time=_ns(ended))


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)
