"""The work a no-op Moviola job cannot skip, for the baselines that stand beside it (``floor.py``, arq).

A no-op job of ``moviola.runtime simulated-worker`` still encodes its one black 16x16 frame to an MP4,
a poster and a spritesheet, and writes the three files durably (``LocalStorage.put``'s way). A
baseline that does this too, on a thread as Moviola's pipeline thread does, is compared like for like.
Imports only numpy and Moviola's two modules for it: arq's own environment runs it too.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from moviola.mp4 import encode_mp4, encode_poster, encode_spritesheet
from moviola.storage.durable import write_files


def folder() -> Path:
    """A new folder for one process's files (under the system's temporary folder)."""
    return Path(tempfile.mkdtemp(prefix="moviola-job-work-"))


def run(where: Path, job: str) -> None:
    """Encode the job's video and images and write them durably into ``where``, named after ``job``."""
    frames = np.zeros((1, 16, 16, 3), dtype=np.uint8)
    video, poster, sheet = encode_mp4(frames, 16), encode_poster(frames), encode_spritesheet(frames)
    write_files(
        where,
        [
            (where / f"{job}.jpg", poster),
            (where / f"{job}.sprites.jpg", sheet),
            (where / f"{job}.mp4", video),
        ],
    )
