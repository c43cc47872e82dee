"""Embedding models built on Qwen vision-language models: Qwen3-VL-Embedding, VLM2Vec-V2, Jina v4.

Qwen3-VL-Embedding (Apache-2.0) and VLM2Vec-V2 (Qwen2-VL, research comparison) embed like
their reference code: a prompt with the image's placeholder tokens, the last token's hidden
state. Images arrive as square frames of ``IMAGE_SIZE`` (a multiple of both models' 28/32
pixel merge units, so the image processor keeps them as they are).

Written against the tokenizer and the image processor rather than the models' combined
``AutoProcessor``: that processor also builds a video processor, which needs torchvision, and
Moviola samples video frames itself (the gateway sends frames as images). So this module
expands the image placeholder to one token per merged patch, as the processor does.

    encoder = load_encoder("qwen3-vl-embedding", "Qwen/Qwen3-VL-Embedding-2B")
    vectors = encoder.embed_texts(["a red fox running through snow"])   # [1, 2048]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from moviola.embed.backend import Pixels, Vectors

#: Frame side given to the Qwen-based models: 16 x 28 (Qwen2-VL) and 14 x 32 (Qwen3-VL) pixels.
IMAGE_SIZE = 448
IMAGE_PAD = "<|image_pad|>"
VISION = "<|vision_start|>{pads}<|vision_end|>"


def _device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _dtype(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def _numpy(tensor: torch.Tensor) -> Vectors:
    return tensor.detach().float().cpu().numpy().astype(np.float32, copy=False)


def last_token(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Each row's state at its last real token (right padding: the pads come after it)."""
    last = attention_mask.sum(dim=1) - 1
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


class _QwenVisionEncoder:
    """Shared by the Qwen-VL models: the image processor's patches and the prompt's placeholder tokens."""

    accepts_text = True
    image_size: int | None = IMAGE_SIZE

    def __init__(self, weights: str, device: str, model_class: Any) -> None:
        from transformers import AutoImageProcessor, AutoTokenizer

        self.device = _device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(weights, padding_side="right")
        self.images = AutoImageProcessor.from_pretrained(weights)
        self.model = model_class.from_pretrained(weights, dtype=_dtype(self.device)).to(self.device).eval()

    def _image_inputs(self, pixels: Pixels) -> tuple[dict[str, torch.Tensor], int]:
        """The frames' patches and grid, and how many placeholder tokens one frame takes."""
        prepared = self.images(images=list(pixels), return_tensors="pt")
        grid = prepared["image_grid_thw"]
        merge = int(getattr(self.images, "merge_size", 2))
        tokens = {int(t) for t in grid.prod(dim=1) // merge**2}
        if len(tokens) != 1:  # every frame is the same square: one token count
            raise ValueError(f"frames of one batch gave different token counts: {sorted(tokens)}")
        inputs = {
            "pixel_values": prepared["pixel_values"].to(self.device, self.model.dtype),
            "image_grid_thw": grid.to(self.device),
        }
        return inputs, tokens.pop()

    def _run(self, prompts: list[str], extra: dict[str, torch.Tensor] | None = None) -> Vectors:
        encoded = self.tokenizer(prompts, padding=True, return_tensors="pt").to(self.device)
        extra = dict(extra or {})
        if extra:  # the modality of each token (0 text, 1 image), which M-RoPE positions follow
            image_token = self.tokenizer.convert_tokens_to_ids(IMAGE_PAD)
            extra["mm_token_type_ids"] = (encoded["input_ids"] == image_token).long()
        hidden = self._hidden(encoded, extra)
        return _numpy(last_token(hidden, encoded["attention_mask"]))

    def _hidden(self, encoded: Any, extra: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def _image_prompt(self, pads: str) -> str:
        raise NotImplementedError

    def _text_prompt(self, text: str) -> str:
        raise NotImplementedError

    @torch.inference_mode()
    def embed_images(self, pixels: Pixels) -> Vectors:
        inputs, tokens = self._image_inputs(pixels)
        prompt = self._image_prompt(VISION.format(pads=IMAGE_PAD * tokens))
        return self._run([prompt] * len(pixels), inputs)

    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str]) -> Vectors:
        return self._run([self._text_prompt(text) for text in texts])


class Qwen3VLEmbeddingEncoder(_QwenVisionEncoder):
    """Qwen3-VL-Embedding (2B: 2048 dimensions, 8B: 4096; Apache-2.0), as its reference embedder runs it.

    One ChatML conversation per input: the system instruction, the user's text or image, the
    assistant's turn opened; the embedding is that last token's final hidden state.
    """

    INSTRUCTION = "Represent the user's input."

    def __init__(self, weights: str, device: str = "auto") -> None:
        from transformers import AutoModel

        super().__init__(weights, device, AutoModel)

    def _conversation(self, content: str) -> str:
        return (
            f"<|im_start|>system\n{self.INSTRUCTION}<|im_end|>\n"
            f"<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n"
        )

    def _image_prompt(self, pads: str) -> str:
        return self._conversation(pads)

    def _text_prompt(self, text: str) -> str:
        return self._conversation(text)

    def _hidden(self, encoded: Any, extra: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden: torch.Tensor = self.model(**encoded, **extra).last_hidden_state
        return hidden


class Vlm2VecV2Encoder(_QwenVisionEncoder):
    """VLM2Vec-V2 (Qwen2-VL based, research comparison): the last token's hidden state.

    Images with the model's instruction prompt, texts as they are. Frames go in as images; the
    model's own video mode (frames as one clip) is not used.
    """

    IMAGE_INSTRUCTION = "Represent the given image.\n"

    def __init__(self, weights: str, device: str = "auto") -> None:
        from transformers import AutoModelForImageTextToText

        super().__init__(weights, device, AutoModelForImageTextToText)

    def _image_prompt(self, pads: str) -> str:
        return pads + self.IMAGE_INSTRUCTION

    def _text_prompt(self, text: str) -> str:
        return text

    def _hidden(self, encoded: Any, extra: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden: torch.Tensor = self.model(**encoded, **extra, output_hidden_states=True).hidden_states[-1]
        return hidden


class JinaV4Encoder:
    """Jina Embeddings v4 (Qwen Research License: opt-in). Needs its remote code next to the weights.

    Its model code comes with the weights (``trust_remote_code``), so no tiny twin can be built
    offline: this adapter follows its card and is not exercised by the tests.
    """

    accepts_text = True
    image_size: int | None = IMAGE_SIZE

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
