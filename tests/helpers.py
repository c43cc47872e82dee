"""Small helpers shared by the tests."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

import av
import numpy as np
import numpy.typing as npt

from moviola.v1 import job_pb2 as pb


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
