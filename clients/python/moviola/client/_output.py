"""What the CLI prints of the server's answers: tables of models, embeddings as one line of JSON.

Server strings go into ``Text`` cells, never markup, so an id such as ``tiny-wan2.2-t2v`` is shown
as sent (rich would otherwise colour its "2.2").
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable

from rich.table import Table
from rich.text import Text

from moviola.v1 import embedding_pb2 as emb
from moviola.v1 import generation_pb2 as gen


def _table(*headers: str) -> Table:
    """A table whose first column (an id) never wraps; rows take ``Text``, so ids are shown as sent."""
    table = Table()
    table.add_column(headers[0], no_wrap=True)
    for header in headers[1:]:
        table.add_column(header)
    return table


def _sizes(presets: Iterable[gen.SizePreset]) -> str:
    """``tiny 128x128, 480p 832x480``: the names ``--resolution`` takes."""
    return ", ".join(f"{p.name} {p.width}x{p.height}" for p in presets)


def models_table(infos: list[gen.ModelInfo]) -> Table:
    table = _table(
        "model",
        "ready",
        "defaults",
        "sizes (--resolution)",
        "limits",
        "profiles",
        "adapters (--lora)",
        "notes",
    )
    for m in infos:
        d, lim = m.defaults, m.limits
        notes = [
            f"also named {', '.join(m.aliases)}" if m.aliases else "",
            "mixture of experts" if m.mixture_of_experts else "",
            "random weights (noise)" if m.random_weights else "",
        ]
        cells = (
            m.id,
            "yes" if m.ready else "no",
            f"{d.width}x{d.height}, {d.num_frames} frames @ {d.fps} fps, {d.num_inference_steps} steps",
            _sizes(m.presets),
            f"sizes {lim.min_size}..{lim.max_size} step {lim.size_multiple}, frames {lim.frame_multiple}k+1 "
            f"<= {lim.max_frames}, steps <= {lim.max_steps}",
            f"{m.turbo.steps} steps, no guidance" if m.HasField("turbo") else "-",
            ", ".join(a.name for a in m.adapters) or "-",
            ", ".join(n for n in notes if n),
        )
        table.add_row(*map(Text, cells))
    return table


def embedding_models_table(infos: list[emb.EmbeddingModelInfo]) -> Table:
    table = _table("model", "text", "images", "default for", "licence")
    for m in infos:
        defaults = [
            kind for kind, on in (("text", m.default_for_text), ("images", m.default_for_images)) if on
        ]
        images = f"yes ({m.image_size} px)" if m.accepts_images else "no"
        cells = (m.id, "yes" if m.accepts_text else "no", images, ", ".join(defaults), m.license)
        table.add_row(*map(Text, cells))
    return table


def _float32(value: float) -> float:
    """The shortest decimal that is still the same float32 (``0.134359``, not ``0.13435900211334229``)."""
    for digits in range(6, 10):
        short = float(f"{value:.{digits}g}")
        if struct.unpack("f", struct.pack("f", short))[0] == value:
            return short
    return value


def _floats(vector: Iterable[float]) -> list[float]:
    return [_float32(v) for v in vector]


def _compact(response: emb.EmbedResponse) -> dict[str, object]:
    out: dict[str, object] = {
        "model": response.model,
        "dimension": response.dimension,
        "embedding": _floats(response.vector),
    }
    if response.sampled_frames:
        out["pooling"] = emb.Pooling.Name(response.pooling).removeprefix("POOLING_").lower()
        out["sampled_frames"] = response.sampled_frames
    if response.frames:
        out["frames"] = [
            {"index": f.frame_index, "time_seconds": f.time_seconds, "embedding": _floats(f.vector)}
            for f in response.frames
        ]
    return out


def compact_embedding(response: emb.EmbedResponse) -> str:
    """``{"model":"tiny-siglip2","dimension":32,"embedding":[0.12,...]}`` on one line."""
    return json.dumps(_compact(response), separators=(",", ":"))
