"""Scheduler overhead: no-op jobs through Moviola's Redis scheduler vs. arq, on one redis-server.

Moviola: one gateway and two workers (``moviola.runtime simulated-worker``: the real worker with
a pipeline that does nothing; a job still gets its events, a one-frame MP4 and
storage). arq: two arq workers running a no-op function, ``max_jobs=1`` each, once
polling their queue every 5 ms and once every 1 ms (arq has no blocking read: its
poll interval caps a worker at one job per poll). All on the same redis-server, one
after the other. Then the floor (``floor.py``): the same path with nothing of Moviola in it (a bare
``grpc.aio`` gateway, two ``BLPOP`` workers, ten messages a job), on a redis-server of its own; and
the floor with the work a no-op Moviola job still does (its MP4, poster, spritesheet and their durable
write, on a pipeline thread): what is left between that and Moviola is Moviola's own per-job code.

- dispatch latency: submit (enqueue) to STARTED (the job function starting), jobs one at a time;
- throughput: 32 callers each submitting and awaiting jobs until 1,000 are done.

It also prints the CPU each process used per job during the throughput phase (Linux).

    python bench/scheduler.py [--latency-jobs 200] [--throughput-jobs 1000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import floor
import load
import redis
import uvloop
from cpu import CpuMeter

from moviola.client import AsyncClient
from moviola.testing import ServerProcess

from percentiles import percentile

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/harness/, as pytest finds it
from harness.servers import RedisServer

HERE = Path(__file__).resolve().parent
#: arq workers' queue poll intervals (seconds) to compare with.
ARQ_POLLS = (0.005, 0.001)
#: Issue 31's targets, in one run: CPU per job (every process), dispatch p50, throughput against arq at 5 ms.
TARGET_CPU_MS, TARGET_DISPATCH_MS, TARGET_RATIO = 4.5, 1.0, 1.2


async def moviola_run(
    address: str, latency_jobs: int, throughput_jobs: int, meter: CpuMeter
) -> tuple[list[float], float]:
    async with AsyncClient(address) as client:
        options = {"num_inference_steps": 1, "num_frames": 1, "width": 16, "height": 16}
        latencies = []
        for _ in range(latency_jobs):
            sent = time.time()
            async for event in client.generate("noop", **options):  # type: ignore[arg-type]
                if event.HasField("started"):
                    latencies.append(event.time.ToNanoseconds() / 1e9 - sent)

        async def job() -> None:
            async for event in client.generate("noop", **options):  # type: ignore[arg-type]
                if event.HasField("failed"):
                    raise RuntimeError(event.failed.message)

        return latencies, await load.throughput(job, throughput_jobs, meter)


#: arq's own environment (``make bench`` makes it): arq pins redis-py below 6, Moviola does not.
ARQ_PYTHON = HERE.parent / ".venv-arq" / "bin" / "python"


def arq_measure(
    url: str, poll: float, args: argparse.Namespace, redis_pid: int, *, work: bool = False
) -> tuple[list[float], float, dict[str, float]]:
    """arq's latencies, throughput and CPU per job, measured in its own environment (``arq_side.py``);
    ``work``: its job does the work a no-op Moviola job does (``job_work.py``)."""
    if not ARQ_PYTHON.exists():
        raise SystemExit(f"{ARQ_PYTHON} is missing: `make bench` creates it (arq in its own venv)")
    command = [str(ARQ_PYTHON), str(HERE / "arq_side.py"), url, str(poll)]
    command += [
        str(args.latency_jobs),
        str(args.throughput_jobs),
        str(redis_pid),
        *(["work"] if work else []),
    ]
    result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    return result["latencies"], result["rate"], result["cpu"]


def report(name: str, latencies: list[float], rate: float) -> None:
    p50, p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
    print(f"  {name:<11} dispatch p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   throughput {rate:7.1f} jobs/s")


def report_cpu(name: str, per_job: dict[str, float]) -> None:
    parts = "  ".join(f"{process} {ms:.2f}" for process, ms in per_job.items())
    print(f"  {name:<11} {parts}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency-jobs", type=int, default=200)
    parser.add_argument("--throughput-jobs", type=int, default=1000)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="moviola-bench-"))
    with RedisServer() as redis_server:
        url = redis_server.url
        info: dict[str, Any] = redis.Redis.from_url(url).info()  # type: ignore[assignment]
        redis_pid = {"redis": int(info["process_id"])}
        worker_args = ["--redis-url", url, "--data-dir", str(data), "--log-level", "warning"]
        with ServerProcess(["--redis-url", url, "--max-queue-depth", "1000", "--log-level", "warning"]) as gw:
            workers = [
                ServerProcess(
                    [*worker_args, "--name", f"w{i}", "--log-level", "info"],
                    program=[sys.executable, "-m", "moviola.runtime", "simulated-worker"],
                    worker=True,
                ).start()
                for i in range(2)
            ]
            meter = CpuMeter(
                redis_pid | {"gateway": gw.pid} | {f"worker {i}": w.pid for i, w in enumerate(workers)}
            )
            try:
                m_lat, m_rate = uvloop.run(
                    moviola_run(gw.address, args.latency_jobs, args.throughput_jobs, meter)
                )
            finally:
                for w in workers:
                    w.stop()
        measured = {poll: arq_measure(url, poll, args, redis_pid["redis"]) for poll in ARQ_POLLS}
        arq_results = {poll: (lat, rate) for poll, (lat, rate, _) in measured.items()}
        # Like for like: arq's job doing what a no-op Moviola job does.
        q_lat, q_rate, q_cpu = arq_measure(url, ARQ_POLLS[0], args, redis_pid["redis"], work=True)
    f_lat, f_rate, f_cpu = floor.measure(args.latency_jobs, args.throughput_jobs)
    w_lat, w_rate, w_cpu = floor.measure(args.latency_jobs, args.throughput_jobs, work=True)
    print(
        f"no-op jobs, 2 workers, one redis-server; latency over {args.latency_jobs} sequential jobs, "
        f"throughput over {args.throughput_jobs} jobs from {load.CONCURRENCY} callers"
    )
    report("moviola", m_lat, m_rate)
    for poll, (a_lat, a_rate) in arq_results.items():
        report(f"arq {poll * 1000:g}ms", a_lat, a_rate)
    report(f"arq {ARQ_POLLS[0] * 1000:g}ms+work", q_lat, q_rate)
    report("floor", f_lat, f_rate)
    report("floor+work", w_lat, w_rate)
    for poll, (a_lat, a_rate) in arq_results.items():
        ratio_p50 = percentile(m_lat, 0.5) / percentile(a_lat, 0.5)
        print(
            f"  ratios vs arq {poll * 1000:g}ms: dispatch p50 {ratio_p50:.2f}   throughput {m_rate / a_rate:.2f}"
        )
    print(
        f"  ratios vs arq {ARQ_POLLS[0] * 1000:g}ms+work (like for like): dispatch p50 "
        f"{percentile(m_lat, 0.5) / percentile(q_lat, 0.5):.2f}   throughput {m_rate / q_rate:.2f}"
    )
    print("CPU per job in the throughput phase (ms, from /proc):")
    cpu = meter.per_job(args.throughput_jobs)
    report_cpu("moviola", cpu)
    for poll, (_, _, arq_cpu) in measured.items():
        report_cpu(f"arq {poll * 1000:g}ms", arq_cpu)
    report_cpu(f"arq {ARQ_POLLS[0] * 1000:g}ms+work", q_cpu)
    report_cpu("floor", f_cpu)
    report_cpu("floor+work", w_cpu)
    floors = {"the floor": (f_lat, f_rate, f_cpu), "floor+work": (w_lat, w_rate, w_cpu)}
    for name, (lat, rate, used) in floors.items():
        print(
            f"  moviola over {name}: dispatch p50 {percentile(m_lat, 0.5) / percentile(lat, 0.5):.2f}x   "
            f"throughput {m_rate / rate:.2f}x   CPU per job {cpu['total'] / used['total']:.2f}x"
        )
    arq_rate = arq_results[ARQ_POLLS[0]][1]
    checks = {
        f"CPU per job <= {TARGET_CPU_MS:g} ms": cpu["total"] <= TARGET_CPU_MS,
        f"dispatch p50 <= {TARGET_DISPATCH_MS:g} ms": percentile(m_lat, 0.5) * 1000 <= TARGET_DISPATCH_MS,
        f"throughput >= {TARGET_RATIO:g}x arq at {ARQ_POLLS[0] * 1000:g} ms": m_rate
        >= TARGET_RATIO * arq_rate,
    }
    print(
        "targets (issue 31): "
        + "; ".join(f"{name}: {'met' if ok else 'NOT met'}" for name, ok in checks.items())
    )
    # The same two ratios against arq's job doing the work a no-op Moviola job does.
    like = {
        "dispatch p50 <= arq+work's": percentile(m_lat, 0.5) <= percentile(q_lat, 0.5),
        f"throughput >= {TARGET_RATIO:g}x arq+work's": m_rate >= TARGET_RATIO * q_rate,
    }
    print(
        "like for like (arq's job doing the same work): "
        + "; ".join(f"{name}: {'met' if ok else 'NOT met'}" for name, ok in like.items())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
