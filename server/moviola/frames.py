"""Decoded video, as pipelines make it and the MP4 encoder takes it."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Frames = npt.NDArray[np.uint8]
"""Video frames, shape (frames, height, width, 3), RGB."""
