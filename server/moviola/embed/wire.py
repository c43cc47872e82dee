"""How texts travel to the models in Triton: UTF-8 rows of one zero-padded uint8 array.

Not Triton's BYTES type, because the Python-backend stub of Triton 2.51 crashes reading
BYTES inputs under numpy 2 (see ``triton_model``). Texts cannot contain NUL characters.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray


def encode_texts(texts: Sequence[str]) -> NDArray[np.uint8]:
    encoded = [t.encode() for t in texts]
    rows = np.zeros((len(encoded), max([1, *(len(e) for e in encoded)])), dtype=np.uint8)
    for row, data in zip(rows, encoded, strict=True):
        row[: len(data)] = np.frombuffer(data, dtype=np.uint8)
    return rows


def decode_texts(rows: NDArray[np.uint8]) -> list[str]:
    return [bytes(row).rstrip(b"\0").decode() for row in rows]
