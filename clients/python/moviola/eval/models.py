"""``moviola eval models``: the same prompts, seeds and sizes through every model a deployment serves.

Per (model, prompt) cell: seconds per denoising step, total seconds, peak memory (as the worker
reports it), and quality proxies computed through the server's own Embed: text-video similarity
(the cross-modal model's prompt vector against the video's), temporal consistency (the frame
model's mean cosine between adjacent sampled frames) and amount of motion (mean absolute change
between adjacent decoded frames, 0..1). Each finished cell is appended to ``cells.jsonl`` at once,
so a rerun skips what is done.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from moviola.client import Client, RequestOptions


@dataclass(frozen=True)
class Cell:
    model: str
    prompt_id: str
    kind: str
    prompt: str
    job_id: str
    steps: int
    seconds_per_step: float
    total_seconds: float
    peak_memory_gib: float
    text_video_similarity: float
    temporal_consistency: float
    motion: float
    video: str


def done_cells(path: Path) -> dict[tuple[str, str], Cell]:
    """The cells a previous run finished (a half-written last line is ignored)."""
    if not path.exists():
        return {}
    cells = {}
    for line in path.read_text().splitlines():
        try:
            cell = Cell(**json.loads(line))
        except (ValueError, TypeError):
            continue
        cells[(cell.model, cell.prompt_id)] = cell
    return cells


def _frames(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def motion(frames: list[np.ndarray]) -> float:
    if len(frames) < 2:
        return 0.0
    stack = np.stack(frames).astype(np.float32) / 255.0
    return float(np.abs(np.diff(stack, axis=0)).mean())


def _unit(vector: Any) -> np.ndarray:
    array = np.asarray(list(vector), dtype=np.float32)
    return array / max(float(np.linalg.norm(array)), 1e-12)


class Harness:
    def __init__(
        self,
        client: Client,
        out: Path,
        *,
        text_model: str,
        frame_model: str,
        seed: int,
        options: RequestOptions,
    ) -> None:
        self._client, self._out = client, out
        self._text_model, self._frame_model = text_model, frame_model
        self._seed, self._options = seed, options

    def cells(self, models: list[str], prompts: dict[str, tuple[str, str]]) -> Iterator[tuple[str, str]]:
        for model in models:
            for prompt_id in prompts:
                yield model, prompt_id

    def run(self, model: str, prompt_id: str, kind: str, prompt: str) -> Cell:
        steps, completed, job_id = 0, None, ""
        options = RequestOptions(**self._options, model=model, seed=self._seed)
        for event in self._client.generate(prompt, **options):
            job_id = event.job_id or job_id
            match event.WhichOneof("kind"):
                case "progress":
                    steps = event.progress.total_steps
                case "completed":
                    completed = event.completed
                case "failed" | "cancelled":
                    raise RuntimeError(
                        f"{model} / {prompt_id}: the job ended {event.WhichOneof('kind')}: {event}"
                    )
        assert completed is not None
        video = self._out / "videos" / model / f"{prompt_id}.mp4"
        self._client.download_to(job_id, video)
        denoising = completed.timings.denoising.ToTimedelta().total_seconds()
        text_video, consistency = self._proxies(prompt, job_id)
        return Cell(
            model=model,
            prompt_id=prompt_id,
            kind=kind,
            prompt=prompt,
            job_id=job_id,
            steps=steps,
            seconds_per_step=denoising / max(steps, 1),
            total_seconds=completed.timings.running.ToTimedelta().total_seconds(),
            peak_memory_gib=completed.peak_memory_bytes / 2**30,
            text_video_similarity=text_video,
            temporal_consistency=consistency,
            motion=motion(_frames(video)),
            video=str(video.relative_to(self._out)),
        )

    def _proxies(self, prompt: str, job_id: str) -> tuple[float, float]:
        text, video, frames = self._client.embed_batch(
            [
                {"text": prompt, "model": self._text_model},
                {"job_id": job_id, "model": self._text_model},
                {
                    "job_id": job_id,
                    "model": self._frame_model,
                    "frame_count": 8,
                    "return_frame_embeddings": True,
                },
            ]
        )
        for result in (text, video, frames):
            if result.WhichOneof("result") != "embedding":
                raise RuntimeError(f"embedding job {job_id}: {result.error.code} {result.error.message}")
        similarity = float(_unit(text.embedding.vector) @ _unit(video.embedding.vector))
        vectors = [_unit(f.vector) for f in frames.embedding.frames]
        adjacent = [float(a @ b) for a, b in itertools.pairwise(vectors)]
        return similarity, float(np.mean(adjacent)) if adjacent else 1.0


def evaluate(
    harness: Harness,
    models: list[str],
    prompts: dict[str, tuple[str, str]],
    cells_path: Path,
    advance: Callable[[str], None] = lambda _: None,
) -> list[Cell]:
    """Every (model, prompt) cell, finished ones read back from ``cells_path``, new ones appended to it."""
    done = done_cells(cells_path)
    cells_path.parent.mkdir(parents=True, exist_ok=True)
    results = []
    for model, prompt_id in harness.cells(models, prompts):
        cell = done.get((model, prompt_id))
        if cell is None:
            kind, prompt = prompts[prompt_id]
            cell = harness.run(model, prompt_id, kind, prompt)
            with cells_path.open("a") as file:
                file.write(json.dumps(asdict(cell)) + "\n")
        advance(f"{model} / {prompt_id}")
        results.append(cell)
    return results
