"""Small helpers shared by the tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import av
import numpy as np
import numpy.typing as npt

from moviola.client import Client
from moviola.jobs import JobRequest
from moviola.v1 import job_pb2 as pb
from moviola.worker.hooks import JobHooks

#: A small valid request of model "m", for tests of the layers below validation.
REQUEST = JobRequest(
    model="m",
    prompt="p",
    negative_prompt="",
    image=None,
    width=16,
    height=16,
    num_frames=1,
    fps=8,
    num_inference_steps=1,
    guidance_scale=1.0,
    guidance_scale_2=None,
    seed=1,
)


# The client must work where torch and diffusers are not installed: make importing them fail.
CLIENT_ONLY = (
    "import sys; sys.modules.update(torch=None, diffusers=None, transformers=None, av=None); "
    "sys.argv[0] = 'moviola'; from moviola.client.cli import main; main()"
)


def moviola(
    *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The ``moviola`` command as a user runs it, with the client package alone; ``env`` adds variables."""
    return subprocess.run(
        [sys.executable, "-c", CLIENT_ONLY, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )


def kinds(events: list[pb.JobEvent]) -> list[str]:
    return [str(e.WhichOneof("kind")) for e in events]


def path_of(uri: str) -> Path:
    parsed = urlparse(uri)
    assert parsed.scheme == "file", uri
    return Path(unquote(parsed.path))


def decode(path: Path) -> tuple[npt.NDArray[np.uint8], str, str]:
    """All frames as an array (frames, height, width, 3), plus codec and pixel format."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        codec, pix_fmt = stream.codec_context.name, stream.codec_context.pix_fmt
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    return np.stack(frames), codec, str(pix_fmt)


def png(pixels: npt.NDArray[np.uint8]) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def mp4(frames: list[npt.NDArray[np.uint8]], fps: int = 8) -> bytes:
    """Encode RGB frames (H, W, 3; even sides) as an H.264 MP4."""
    import io

    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for pixels in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def scene(n: int, size: int = 64, seed: int = 0) -> list[npt.NDArray[np.uint8]]:
    """``n`` frames of a bright square moving across a textured background: every frame differs."""
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 120, (size, size, 3), dtype=np.uint8)
    frames = []
    for i in range(n):
        frame = background.copy()
        x = (i * (size - 16)) // max(1, n - 1)
        frame[24:40, x : x + 16] = (250, 200, 30)
        frames.append(frame)
    return frames


def unit(vector: object) -> npt.NDArray[np.float32]:
    return np.asarray(list(vector), dtype=np.float32)  # type: ignore[call-overload]


@contextmanager
def running_generation(client: Client, **options: Any) -> Iterator[str]:
    """A long generation that has made its first step; yields its job id and cancels it on the way out."""
    options = {"width": 256, "height": 256, "num_frames": 33, "num_inference_steps": 50, **options}
    stream = client.generate("a long one", **options)
    job_id = ""
    for event in stream:
        job_id = event.job_id
        if event.WhichOneof("kind") == "progress":
            break
    try:
        yield job_id
    finally:
        client.cancel(job_id)
        stream.close()  # type: ignore[attr-defined]


class CancelsAt(JobHooks):
    """A job's hooks, cancelled by request when step ``at`` is reported (0: never); keeps the events."""

    def __init__(self, at: int = 0) -> None:
        self.events: list[Any] = []
        super().__init__(self.events.append)
        self._at = at

    def step(self, step: int, total_steps: int, *args: Any, **kwargs: Any) -> None:
        if step == self._at:
            self.request_cancel("cancelled by request")
        super().step(step, total_steps, *args, **kwargs)
