"""Embed's overhead: the same images (a) straight to Triton with tritonclient, (b) through Moviola's Embed.

One tritonserver (the shipped ``triton/dinov2`` configuration with random DINOv2
weights, one CPU thread) and one Moviola server with ``--triton-url``. ``--model tiny``
(default) is the worst case for the gateway: next to nothing to compute, so its own cost
shows; ``--model small`` has DINOv2 ViT-S/14's size (random weights, the real model's compute).
The images are 32 distinct 224x224 JPEG files (the model's size, so nothing is resized).

- ``triton``: the file sent straight to the model's ``IMAGE_FILE`` input (Triton decodes it):
  what a caller without Moviola does with this model repository;
- ``triton-pixels``: a floor: pixels decoded beforehand, sent as the model's ``IMAGE`` tensor
  (the decoding is then nobody's cost);
- ``bare-hop``: as ``triton``, through ``bench/grpc_forwarder.py``: a Python gRPC server that
  forwards the request's bytes to Triton and does nothing else. The floor of any gateway written
  with Python gRPC on this machine: ``bare-hop`` vs ``triton`` is what the hop itself costs,
  ``embed`` vs ``bare-hop`` is what Moviola does on top;
- ``embed``: the file sent to ``Embed``, which checks its header and forwards it to ``IMAGE_FILE``.

Cells run in alternating order round after round, so that machine noise hits every path.

- latency: one request at a time, p50 and p99;
- throughput: 16 concurrent callers.

    python bench/embed.py [--requests 300] [--rounds 3]
    python bench/embed.py --model small --requests 48 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import numpy as np
import uvloop
from PIL import Image
from tritonclient.grpc import InferInput
from tritonclient.grpc.aio import InferenceServerClient

from moviola.embed import media, tiny
from moviola.embed.repository import copy_model
from moviola.testing import ServerProcess, free_port
from moviola.v1 import embedding_pb2 as emb
from moviola.v1 import embedding_pb2_grpc

from percentiles import percentile

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/harness/, as pytest finds it
from harness.servers import TritonServer

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
IMAGES = 32
PATHS = ("triton", "triton-pixels", "bare-hop", "embed")
SHAPES = {"tiny": tiny.DINOV2_TINY, "small": tiny.DINOV2_SMALL}

Call = Callable[[int], Awaitable[None]]


def photo_like(seed: int) -> bytes:
    """A 224x224 JPEG with smooth gradients and a few shapes (random noise would be an unrealistic worst case)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:224, 0:224] / 224.0
    image = np.stack([x, y, 1 - x * y], axis=-1) * rng.uniform(120, 255, size=3)
    for _ in range(4):
        cy, cx, r = rng.integers(20, 204), rng.integers(20, 204), rng.integers(10, 50)
        image[(y * 224 - cy) ** 2 + (x * 224 - cx) ** 2 < r**2] = rng.uniform(0, 255, size=3)
    image += rng.normal(0, 6, image.shape)
    out = io.BytesIO()
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(out, format="JPEG", quality=90)
    return out.getvalue()


async def measure(call: Call, requests: int, concurrency: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    counter = iter(range(requests))

    async def caller() -> None:
        for n in counter:
            started = time.perf_counter()
            await call(n)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return latencies, requests / (time.perf_counter() - started)


async def run(
    triton_url: str, forwarder: str, gateway: str, requests: int, rounds: int, dimension: int
) -> None:
    files = [photo_like(seed) for seed in range(IMAGES)]
    pixels = [media.load_image(data, 224) for data in files]

    triton = InferenceServerClient(triton_url)
    forwarded = InferenceServerClient(forwarder)
    channel = grpc.aio.insecure_channel(gateway)
    stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)

    def file_to(client: InferenceServerClient) -> Call:
        async def call(n: int) -> None:
            data = np.frombuffer(files[n % IMAGES], dtype=np.uint8)[np.newaxis]
            tensor = InferInput("IMAGE_FILE", list(data.shape), "UINT8")
            tensor.set_data_from_numpy(data)
            result = await client.infer("dinov2", [tensor], priority=1)
            assert result.as_numpy("EMBEDDING").shape == (1, dimension)

        return call

    async def direct_pixels(n: int) -> None:
        tensor = InferInput("IMAGE", [1, 224, 224, 3], "UINT8")
        tensor.set_data_from_numpy(pixels[n % IMAGES][np.newaxis])
        result = await triton.infer("dinov2", [tensor], priority=1)
        assert result.as_numpy("EMBEDDING").shape == (1, dimension)

    async def through(n: int) -> None:
        response = await stub.Embed(emb.EmbedRequest(image=files[n % IMAGES], model="dinov2"))
        assert response.dimension == dimension

    paths: list[tuple[str, Call]] = [
        ("triton", file_to(triton)),
        ("triton-pixels", direct_pixels),
        ("bare-hop", file_to(forwarded)),
        ("embed", through),
    ]
    for _, call in paths:  # warm up every path, batches included (Triton grows its buffers once)
        await measure(call, min(200, requests), 16)
    results: dict[tuple[str, int], list[tuple[list[float], float]]] = {}
    for round_ in range(rounds):
        for concurrency in (1, 16):
            for name, call in paths if round_ % 2 == 0 else paths[::-1]:
                results.setdefault((name, concurrency), []).append(await measure(call, requests, concurrency))
    await channel.close()
    await triton.close()
    await forwarded.close()

    report(results, requests, rounds)


def report(
    results: dict[tuple[str, int], list[tuple[list[float], float]]], requests: int, rounds: int
) -> None:
    print(f"{IMAGES} distinct 224x224 JPEG images, {requests} requests x {rounds} rounds per cell\n")
    print(f"{'path':<15}{'callers':>8}{'p50 ms':>10}{'p99 ms':>10}{'req/s':>10}")
    summary: dict[tuple[str, int], tuple[float, float, float]] = {}
    for (name, concurrency), runs in sorted(
        results.items(), key=lambda kv: (kv[0][1], PATHS.index(kv[0][0]))
    ):
        latencies = [x for run_latencies, _ in runs for x in run_latencies]
        rate = statistics.median(rate for _, rate in runs)
        p50, p99 = percentile(latencies, 0.5) * 1e3, percentile(latencies, 0.99) * 1e3
        summary[(name, concurrency)] = (p50, p99, rate)
        print(f"{name:<15}{concurrency:>8}{p50:>10.2f}{p99:>10.2f}{rate:>10.0f}")
    print()
    for concurrency in (1, 16):
        for path, baseline in [
            ("embed", "triton"),
            ("embed", "triton-pixels"),
            ("bare-hop", "triton"),
            ("embed", "bare-hop"),
        ]:
            e, d = summary[(path, concurrency)], summary[(baseline, concurrency)]
            target = "  (targets: <= +1 ms, >= 90%)" if baseline == "triton" and path == "embed" else ""
            print(
                f"{concurrency:>2} callers, {path:<8} vs {baseline:<13}: {e[0] - d[0]:+.2f} ms at p50, "
                f"{e[2] / d[2]:.0%} of the throughput{target}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--model", choices=sorted(SHAPES), default="tiny", help="DINOv2's size (random weights)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        weights = work / "weights"
        tiny.build_tiny_dinov2(weights, shape=SHAPES[args.model])
        copy_model(ROOT / "triton" / "dinov2", work / "repository", weights=str(weights), torch_threads=1)
        server_args = ["--cache-dir", str(work / "cache"), "--data-dir", str(work / "data")]
        with (
            TritonServer(work / "repository", ["dinov2"]) as triton,
            ServerProcess([*server_args, "--triton-url", triton.url]) as gateway,
        ):
            port = free_port()
            forwarder = subprocess.Popen(
                [sys.executable, str(HERE / "grpc_forwarder.py"), str(port), triton.url],
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                if forwarder.stdout is None or not forwarder.stdout.readline().startswith("forwarding"):
                    raise RuntimeError("bench/grpc_forwarder.py did not start")
                dimension = SHAPES[args.model]["hidden_size"]
                print(f"DINOv2 {args.model} (random weights, {dimension} dimensions)")
                uvloop.run(
                    run(
                        triton.url,
                        f"127.0.0.1:{port}",
                        gateway.address,
                        args.requests,
                        args.rounds,
                        dimension,
                    )
                )
            finally:
                forwarder.terminate()
                forwarder.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
