"""How texts and image files travel to the models in Triton.

Texts: UTF-8 rows of one zero-padded uint8 array (``TEXT``). Image files: one
file per request, as a ``[1, L]`` uint8 row (``IMAGE_FILE``, ragged: requests
with files of different lengths still batch); the model's error for a file it
cannot decode starts with ``IMAGE_ERROR``.

Not Triton's BYTES type, because the Python-backend stub of Triton 2.51 crashes reading
BYTES inputs under numpy 2 (see ``triton_model``). Texts cannot contain NUL characters.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

#: Start of the error message of a model that cannot decode an ``IMAGE_FILE`` (an ``InvalidRequest("image")``).
IMAGE_ERROR = "image: "


def encode_texts(texts: Sequence[str]) -> NDArray[np.uint8]:
    encoded = [t.encode() for t in texts]
    rows = np.zeros((len(encoded), max([1, *(len(e) for e in encoded)])), dtype=np.uint8)
    for row, data in zip(rows, encoded, strict=True):
        row[: len(data)] = np.frombuffer(data, dtype=np.uint8)
    return rows


def decode_texts(rows: NDArray[np.uint8]) -> list[str]:
    return [bytes(row).rstrip(b"\0").decode() for row in rows]
