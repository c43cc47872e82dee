"""A user's own clip set: a folder of videos and a captions CSV (``file,caption[,group]``)."""

from __future__ import annotations

import csv
from pathlib import Path

from moviola.eval.clips import Clip


def load(folder: Path, captions: Path) -> list[Clip]:
    """The clips the CSV names, in its order; ``group`` (optional) makes clips relevant to each other.

    Raises ``ValueError`` naming the line of a row that does not fit.
    """
    clips = []
    with captions.open(newline="") as file:
        reader = csv.DictReader(file)
        if not reader.fieldnames or not {"file", "caption"} <= set(reader.fieldnames):
            raise ValueError(f"{captions}: the header must name file and caption (and optionally group)")
        for line, row in enumerate(reader, start=2):
            path = folder / row["file"]
            if not path.is_file():
                raise ValueError(f"{captions}:{line}: no video {path}")
            if not row["caption"].strip():
                raise ValueError(f"{captions}:{line}: empty caption")
            group = (row.get("group") or "").strip() or f"#{line}"  # no group: relevant to none but itself
            clips.append(Clip(row["file"], row["caption"], group, path.read_bytes()))
    if not clips:
        raise ValueError(f"{captions}: no clips")
    return clips
