"""The embedding models: the same code runs inside Triton's Python backend and in-process.

Every encoder takes what the gateway sends: square RGB frames (``uint8``, shape
``[N, S, S, 3]``, already resized and centre-cropped to ``image_size``) and/or
texts, and returns one float32 row per input. Weights load with transformers
from a local folder or a hub id, as users give them.

    encoder = load_encoder("dinov2", "facebook/dinov2-base")
    vectors = encoder.embed_images(frames)   # [N, 768]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import torch

from moviola.embed import qwen
from moviola.embed.backend import Pixels, Vectors


class Encoder(Protocol):
    #: Side of the square frames ``embed_images`` takes; None: no image input.
    image_size: int | None
    #: Whether ``embed_texts`` works.
    accepts_text: bool

    def embed_images(self, pixels: Pixels) -> Vectors: ...

    def embed_texts(self, texts: Sequence[str]) -> Vectors: ...


def _device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _numpy(tensor: torch.Tensor) -> Vectors:
    return tensor.detach().float().cpu().numpy().astype(np.float32, copy=False)


def _square_size(processor: Any) -> int:
    """The frame side the image processor produces (its crop size when it crops)."""
    size = processor.crop_size if getattr(processor, "do_center_crop", False) else processor.size
    side = size.get("height") or size.get("shortest_edge")
    if side is None or size.get("width", side) != side:
        raise ValueError(f"the image processor must produce square frames, it is set to {size}")
    return int(side)


def _pixel_values(processor: Any, pixels: Pixels, device: torch.device) -> torch.Tensor:
    """The processor's rescale and normalisation, as tensor operations (frames arrive already sized).

    Same arithmetic as calling the processor with resizing off, without its per-image PIL round trip.
    """
    values = torch.from_numpy(np.ascontiguousarray(pixels)).to(device).permute(0, 3, 1, 2).float()
    if getattr(processor, "do_rescale", True):
        values = values * float(processor.rescale_factor)
    if getattr(processor, "do_normalize", True):
        mean = torch.tensor(processor.image_mean, device=device).view(1, -1, 1, 1)
        std = torch.tensor(processor.image_std, device=device).view(1, -1, 1, 1)
        values = (values - mean) / std
    return values


class _NoText:
    accepts_text = False

    def embed_texts(self, texts: Sequence[str]) -> Vectors:
        raise ValueError("this model embeds images only")


class _NoImages:
    image_size: int | None = None

    def embed_images(self, pixels: Pixels) -> Vectors:
        raise ValueError("this model embeds text only")


class Dinov2Encoder(_NoText):
    """DINOv2 (Apache 2.0): the CLS token after the final layer norm, per frame."""

    image_size: int | None

    def __init__(self, weights: str, device: str = "auto") -> None:
        from transformers import AutoImageProcessor, AutoModel

        self.device = _device(device)
        self.processor = AutoImageProcessor.from_pretrained(weights)
        self.model = AutoModel.from_pretrained(weights).to(self.device).eval()
        self.image_size = _square_size(self.processor)

    @torch.inference_mode()
    def embed_images(self, pixels: Pixels) -> Vectors:
        values = _pixel_values(self.processor, pixels, self.device)
        return _numpy(self.model(pixel_values=values.to(self.model.dtype)).pooler_output)


class SiglipEncoder:
    """SigLIP / SigLIP 2 fixed-resolution checkpoints: text and images in one space."""

    accepts_text = True
    image_size: int | None

    def __init__(self, weights: str, device: str = "auto") -> None:
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

        self.device = _device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(weights)
        self.processor = AutoImageProcessor.from_pretrained(weights)
        self.model = AutoModel.from_pretrained(weights).to(self.device).eval()
        self.image_size = _square_size(self.processor)
        # SigLIP was trained on texts padded to a fixed length; other lengths shift the vectors.
        self.max_length = int(self.model.config.text_config.max_position_embeddings)

    @torch.inference_mode()
    def embed_images(self, pixels: Pixels) -> Vectors:
        values = _pixel_values(self.processor, pixels, self.device).to(self.model.dtype)
        return _numpy(self.model.get_image_features(pixel_values=values).pooler_output)

    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str]) -> Vectors:
        inputs = self.tokenizer(
            list(texts),
            padding="max_length",
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        ).to(self.device)
        return _numpy(self.model.get_text_features(input_ids=inputs["input_ids"]).pooler_output)


class SentenceEncoder(_NoImages):
    """Sentence-transformers text models (all-MiniLM-L6-v2): mean of the token states."""

    accepts_text = True

    def __init__(self, weights: str, device: str = "auto") -> None:
        from transformers import AutoModel, AutoTokenizer

        self.device = _device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(weights)
        self.model = AutoModel.from_pretrained(weights).to(self.device).eval()

    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str]) -> Vectors:
        inputs = self.tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt").to(
            self.device
        )
        states = self.model(**inputs).last_hidden_state
        mask = inputs["attention_mask"].unsqueeze(-1).to(states.dtype)
        return _numpy((states * mask).sum(1) / mask.sum(1).clamp(min=1e-9))


#: Encoder kinds, as named by the ``encoder`` parameter of a Triton model's config.pbtxt.
ENCODERS: dict[str, Callable[[str, str], Encoder]] = {
    "dinov2": Dinov2Encoder,
    "siglip": SiglipEncoder,
    "sentence-transformer": SentenceEncoder,
    "qwen3-vl-embedding": qwen.Qwen3VLEmbeddingEncoder,
    "jina-embeddings-v4": qwen.JinaV4Encoder,
    "vlm2vec-v2": qwen.Vlm2VecV2Encoder,
}


def load_encoder(kind: str, weights: str, device: str = "auto") -> Encoder:
    """Load the encoder of ``kind`` from ``weights`` (a local folder or a hub id)."""
    try:
        factory = ENCODERS[kind]
    except KeyError:
        raise ValueError(f"unknown encoder {kind!r}; known: {', '.join(ENCODERS)}") from None
    return factory(weights, device)
