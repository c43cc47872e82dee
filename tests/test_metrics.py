"""Prometheus metrics: scraped from a live server before and after a generation."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import start_server
from processes import worker
from prometheus_client.parser import text_string_to_metric_families

from moviola.client import Client
from moviola.client.errors import InvalidArgument
from moviola.testing import ServerProcess, free_port


@pytest.fixture(scope="module")
def metered(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, int]]:
    port = free_port()
    with start_server(cache_dir, tmp_path_factory.mktemp("metered"), "--metrics-port", str(port)) as server:
        yield server, port


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_counters_and_histograms_move_with_a_generation(metered: tuple[ServerProcess, int]) -> None:
    server, port = metered
    model = "tiny-wan2.2-t2v"
    before = scrape(port)
    during = None
    with Client(server.address) as client:
        for event in client.generate("a fox", num_frames=5, num_inference_steps=6):
            if event.HasField("progress") and during is None:
                during = scrape(port)
    after = scrape(port)

    assert during is not None
    assert value(during, "moviola_active_streams", method="Generate") == 1
    assert value(after, "moviola_active_streams", method="Generate") == 0
    diff = {key: after[key] - before.get(key, 0.0) for key in after}
    assert value(diff, "moviola_jobs_submitted_total", model=model, priority="interactive") == 1
    assert value(diff, "moviola_jobs_finished_total", model=model, state="completed") == 1
    steps = sum(
        value(diff, "moviola_denoising_step_seconds_count", model=model, expert=e)
        for e in ("high_noise", "low_noise")
    )
    assert steps == 6
    assert value(diff, "moviola_denoising_step_seconds_sum", model=model, expert="high_noise") > 0
    for histogram in (
        "moviola_queue_seconds",
        "moviola_time_to_first_step_seconds",
        "moviola_vae_decode_seconds",
    ):
        assert value(diff, f"{histogram}_count", model=model) == 1
    assert value(diff, "moviola_job_seconds_count", model=model, state="completed") == 1
    assert value(after, "moviola_queue_depth", model=model, priority="interactive") == 0
    assert ("moviola_dead_letters", ()) in after


def lag_samples(port: int, at_least: float) -> float:
    """The count of ``moviola_event_loop_lag_seconds`` once it is ``at_least`` (sampled 4 times a second)."""
    deadline = time.monotonic() + 30
    while True:  # polled: the samples come from the process's own timer
        count = value(scrape(port), "moviola_event_loop_lag_seconds_count")
        if count >= at_least or time.monotonic() > deadline:
            return count
        time.sleep(0.05)


def test_the_event_loops_lag_is_sampled_on_a_server_and_a_worker(
    metered: tuple[ServerProcess, int], redis_url: str, tmp_path: Path
) -> None:
    _, port = metered
    assert lag_samples(port, 1) >= 1
    before = scrape(port)
    count = value(before, "moviola_event_loop_lag_seconds_count")
    assert lag_samples(port, count + 4) >= count + 4  # it goes on sampling
    # Idle, the loop runs its timers on time: most of these samples fall under 25 ms.
    after = scrape(port)
    on_time = "moviola_event_loop_lag_seconds_bucket"
    assert value(after, on_time, le="0.025") - value(before, on_time, le="0.025") >= 0.5 * (
        value(after, "moviola_event_loop_lag_seconds_count") - count
    )
    worker_port = free_port()
    with worker(redis_url, tmp_path, "w", "--metrics-port", str(worker_port)):
        assert lag_samples(worker_port, 2) >= 2


def test_embed_latency_and_failures_are_counted(metered: tuple[ServerProcess, int]) -> None:
    server, port = metered
    before = scrape(port)
    with Client(server.address) as client:
        client.embed(text="a fox")
        client.embed(text="a fox")
        with pytest.raises(InvalidArgument):
            client.embed(image=b"not an image")
    diff = {key: value - before.get(key, 0.0) for key, value in scrape(port).items()}
    assert value(diff, "moviola_embedding_seconds_count", model="tiny-siglip2", input="text") == 2
    assert value(diff, "moviola_embedding_seconds_sum", model="tiny-siglip2", input="text") > 0
    assert value(diff, "moviola_embedding_failures_total", input="image", error="InvalidRequest") == 1


def test_json_logs_carry_the_job_id(cache_dir: Path, tmp_path: Path) -> None:
    import json

    with (
        start_server(cache_dir, tmp_path, "--log-format", "json") as server,
        Client(server.address) as client,
    ):
        job_id = list(client.generate("a fox", num_frames=1, num_inference_steps=1))[-1].job_id
    records = [json.loads(line) for line in server.log_lines if line.startswith("{")]
    assert records, server.log_lines
    ended = [r for r in records if r.get("job_id") == job_id]
    assert ended[-1]["outcome"] == "completed"
    assert ended[-1]["level"] == "INFO"
    assert ended[-1]["message"] == f"job {job_id} ended: completed"


def test_traceparent_follows_the_job_from_gateway_to_worker_with_a_span_per_phase(
    cache_dir: Path, tmp_path: Path
) -> None:
    import json

    import grpc

    from moviola.v1 import generation_pb2_grpc
    from moviola.v1 import job_pb2 as pb

    trace_file = tmp_path / "spans.jsonl"
    trace_id, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    with start_server(cache_dir, tmp_path, "--trace-file", str(trace_file)) as server:
        with grpc.insecure_channel(server.address) as channel:
            stub = generation_pb2_grpc.GenerationServiceStub(channel)
            request = pb.GenerateRequest(prompt="traced", num_frames=1, num_inference_steps=2)
            metadata = (("traceparent", f"00-{trace_id}-{caller_span}-01"),)
            events = [r.event for r in stub.Generate(request, metadata=metadata)]
        assert events[-1].HasField("completed")
    spans = [json.loads(line) for line in trace_file.read_text().splitlines()]
    by_name = {s["name"]: s for s in spans}
    assert {s["context"]["trace_id"] for s in spans} == {f"0x{trace_id}"}
    submit, job = by_name["moviola.submit"], by_name["moviola.job"]
    assert submit["parent_id"] == f"0x{caller_span}"
    assert job["parent_id"] == submit["context"]["span_id"]
    assert job["attributes"]["moviola.job_id"] == events[0].job_id
    phases = {"text_encoding", "denoising", "vae_decoding", "video_encoding", "storing"}
    assert {f"moviola.{p}" for p in phases} <= set(by_name)
    for phase in phases:
        assert by_name[f"moviola.{phase}"]["parent_id"] == job["context"]["span_id"]


def test_every_call_is_one_access_log_line_at_debug(cache_dir: Path, tmp_path: Path) -> None:
    """The access-log interceptor: method, status and seconds, for unary calls and streams alike."""
    from moviola.client.errors import NotFound

    with (
        start_server(cache_dir, tmp_path, "--log-level", "debug") as server,
        Client(server.address) as client,
    ):
        with pytest.raises(NotFound):
            client.get("0" * 32)
        events = list(client.generate("a fox", num_frames=1, num_inference_steps=1))
        assert events[-1].WhichOneof("kind") == "completed"
        server.wait_for_log("moviola.access: Generate OK")
        lines = [line for line in server.log_lines if "moviola.access:" in line]
    calls = [line.split("moviola.access: ", 1)[1].split()[:2] for line in lines]
    assert ["GetJob", "NOT_FOUND"] in calls
    assert ["Generate", "OK"] in calls
    assert all(float(line.rsplit(" ", 1)[1].rstrip("s\n")) >= 0 for line in lines)
