"""Triton Python-backend adapter: ``model.py`` in each model folder of ``triton/`` re-exports this class.

Parameters (``config.pbtxt``): ``encoder`` (a kind from ``moviola.embed.encoders.ENCODERS``),
``weights`` (local folder or hub id), ``torch_threads`` (CPU threads per instance, optional).
Inputs: ``IMAGE`` (UINT8 ``[S, S, 3]``: pixels, fitted), ``IMAGE_FILE`` (UINT8 ``[-1]``: an
encoded image, decoded and fitted here) or ``TEXT`` (UINT8 ``[-1]``: UTF-8, zero-padded), all
optional, one of them per request; output ``EMBEDDING`` (FP32 ``[D]``), not normalised. A file
that does not decode fails its own request with INVALID_ARG, ``image: why``.

Tensors cross into and out of the backend through DLPack, not numpy: the backend stub of
Triton 2.51 is built against numpy 1, and under numpy 2 a ``pb_utils.Tensor`` made from an
array arrives with no data (the element size moved in numpy 2's ABI), and reading a BYTES
input crashes the stub: so texts travel as UTF-8 in UINT8 rows.

Requests of one ``execute`` call are run as one batch per input kind (Triton's
dynamic batcher hands them over together); a request that fails gets its own error.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch
from torch.utils.dlpack import from_dlpack, to_dlpack  # type: ignore[attr-defined]

from moviola.embed import media
from moviola.embed.encoders import Encoder, load_encoder
from moviola.embed.wire import decode_texts
from moviola.errors import InvalidRequest

#: Triton's Python-backend utilities; imported in initialize() because only the backend stub provides them.
pb_utils: Any = None


def _parameter(config: dict[str, Any], key: str, default: str | None = None) -> str:
    value = config.get("parameters", {}).get(key, {}).get("string_value", default)
    if value is None:
        raise ValueError(f"config.pbtxt needs the parameter {key!r}")
    return str(value)


def _array(tensor: Any) -> np.ndarray[Any, Any]:
    return from_dlpack(tensor.to_dlpack()).numpy()


class TritonPythonModel:
    encoder: Encoder

    def initialize(self, args: dict[str, str]) -> None:
        global pb_utils
        import triton_python_backend_utils  # type: ignore[import-not-found]

        pb_utils = triton_python_backend_utils
        config = json.loads(args["model_config"])
        threads = int(_parameter(config, "torch_threads", "0"))
        if threads > 0:
            torch.set_num_threads(threads)
        device = "cuda" if args.get("model_instance_kind") == "GPU" else "cpu"
        if device == "cuda":
            device = f"cuda:{args['model_instance_device_id']}"
        self.encoder = load_encoder(_parameter(config, "encoder"), _parameter(config, "weights"), device)
        declared = {i["name"]: [int(d) for d in i["dims"]] for i in config["input"]}
        if "IMAGE_FILE" in declared and self.encoder.image_size is None:
            raise ValueError("config.pbtxt declares IMAGE_FILE for a model that does not embed images")
        if "IMAGE" in declared and declared["IMAGE"][:2] != [self.encoder.image_size] * 2:
            raise ValueError(
                f"config.pbtxt declares IMAGE {declared['IMAGE']}, the model's processor makes "
                f"{self.encoder.image_size}x{self.encoder.image_size} frames"
            )

    def execute(self, requests: list[Any]) -> list[Any]:
        images: list[tuple[int, np.ndarray[Any, Any]]] = []
        texts: list[tuple[int, list[str]]] = []
        responses: list[Any] = [None] * len(requests)
        for n, request in enumerate(requests):
            image = pb_utils.get_input_tensor_by_name(request, "IMAGE")
            file = pb_utils.get_input_tensor_by_name(request, "IMAGE_FILE")
            text = pb_utils.get_input_tensor_by_name(request, "TEXT")
            if image is not None:
                images.append((n, _array(image)))
            elif file is not None:
                try:
                    images.append((n, self._decode(_array(file))))
                except InvalidRequest as exc:
                    responses[n] = self._error(str(exc), pb_utils.TritonError.INVALID_ARG)
            elif text is not None:
                texts.append((n, decode_texts(_array(text))))
            else:
                responses[n] = self._error(
                    "a request needs IMAGE, IMAGE_FILE or TEXT", pb_utils.TritonError.INVALID_ARG
                )
        self._run(images, self.encoder.embed_images, np.concatenate, responses)
        self._run(
            texts,
            self.encoder.embed_texts,
            lambda parts: [text for part in parts for text in part],
            responses,
        )
        return responses

    def _decode(self, files: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        size = self.encoder.image_size
        assert size is not None  # initialize() refuses IMAGE_FILE on a model without images
        # Trailing zero padding (files of one request in one array) is ignored by the image formats' decoders.
        return np.stack([media.load_image(row.tobytes(), size) for row in files])

    def _run(self, batch: list[tuple[int, Any]], embed: Any, join: Any, responses: list[Any]) -> None:
        if not batch:
            return
        try:
            vectors = embed(join([inputs for _, inputs in batch]))
        except Exception as exc:  # one error response per request; the model stays up
            for n, _ in batch:
                responses[n] = self._error(f"{type(exc).__name__}: {exc}", pb_utils.TritonError.INTERNAL)
            return
        start = 0
        for n, inputs in batch:
            rows = vectors[start : start + len(inputs)]
            start += len(inputs)
            rows = torch.from_numpy(np.array(rows, dtype=np.float32, order="C"))
            output = pb_utils.Tensor.from_dlpack("EMBEDDING", to_dlpack(rows))
            responses[n] = pb_utils.InferenceResponse(output_tensors=[output])

    @staticmethod
    def _error(message: str, code: Any) -> Any:
        return pb_utils.InferenceResponse(error=pb_utils.TritonError(message, code))
