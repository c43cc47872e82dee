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


class JinaV4Encoder:
    """Jina Embeddings v4 (Qwen Research License: opt-in). Needs its remote code next to the weights."""

    accepts_text = True
    image_size: int | None = 448

    def __init__(self, weights: str, device: str = "auto") -> None:
        from transformers import AutoModel

        self.device = _device(device)
        self.model = AutoModel.from_pretrained(weights, trust_remote_code=True, dtype=torch.bfloat16)
        self.model = self.model.to(self.device).eval()

    @torch.inference_mode()
    def embed_images(self, pixels: Pixels) -> Vectors:
        from PIL import Image

        images = [Image.fromarray(frame) for frame in pixels]
        return _numpy(torch.stack(list(self.model.encode_image(images=images, task="retrieval"))))

    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str]) -> Vectors:
        out = self.model.encode_text(texts=list(texts), task="retrieval", prompt_name="query")
        return _numpy(torch.stack(list(out)))


class Vlm2VecV2Encoder:
    """VLM2Vec-V2 (Qwen2-VL based, research comparison): the last token's hidden state.

    Frames go in one at a time as images with the model's instruction prompts; for
    temporal modelling pass the sampled frames as one video, which this adapter does
    not do yet.
    """

    accepts_text = True
    image_size: int | None = 448
    IMAGE_PROMPT = "<|vision_start|><|image_pad|><|vision_end|>Represent the given image.\n"

    def __init__(self, weights: str, device: str = "auto") -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.device = _device(device)
        self.processor = AutoProcessor.from_pretrained(weights)
        model = AutoModelForImageTextToText.from_pretrained(weights, dtype=torch.bfloat16)
        self.model = model.to(self.device).eval()  # type: ignore[arg-type]

    def _last_token(self, inputs: Any) -> Vectors:
        hidden = self.model(**inputs.to(self.device), output_hidden_states=True).hidden_states[-1]
        last = inputs["attention_mask"].sum(1) - 1
        return _numpy(hidden[torch.arange(hidden.shape[0]), last])

    @torch.inference_mode()
    def embed_images(self, pixels: Pixels) -> Vectors:
        rows = [
            self._last_token(self.processor(text=[self.IMAGE_PROMPT], images=[frame], return_tensors="pt"))
            for frame in pixels
        ]
        return np.concatenate(rows)

    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str]) -> Vectors:
        return np.concatenate(
            [self._last_token(self.processor(text=[text], return_tensors="pt")) for text in texts]
        )


#: Encoder kinds, as named by the ``encoder`` parameter of a Triton model's config.pbtxt.
ENCODERS: dict[str, Callable[[str, str], Encoder]] = {
    "dinov2": Dinov2Encoder,
    "siglip": SiglipEncoder,
    "sentence-transformer": SentenceEncoder,
    "jina-embeddings-v4": JinaV4Encoder,
    "vlm2vec-v2": Vlm2VecV2Encoder,
}


def load_encoder(kind: str, weights: str, device: str = "auto") -> Encoder:
    """Load the encoder of ``kind`` from ``weights`` (a local folder or a hub id)."""
    try:
        factory = ENCODERS[kind]
    except KeyError:
        raise ValueError(f"unknown encoder {kind!r}; known: {', '.join(ENCODERS)}") from None
    return factory(weights, device)
