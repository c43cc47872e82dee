"""``moviola eval models``'s outputs: per-cell CSV, per-model Markdown table, metric plots, contact sheet."""

from __future__ import annotations

import csv
import dataclasses
import statistics
from pathlib import Path

import numpy as np

from moviola.eval.models import Cell

METRICS = (
    ("seconds_per_step", "s/step"),
    ("total_seconds", "total s"),
    ("peak_memory_gib", "peak GiB"),
    ("text_video_similarity", "text-video sim."),
    ("temporal_consistency", "temporal consistency"),
    ("motion", "motion"),
)


def write(cells: list[Cell], out: Path) -> list[Path]:
    fields = [f.name for f in dataclasses.fields(Cell)]
    table = out / "models.csv"
    with table.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=fields)
        writer.writeheader()
        for cell in cells:
            writer.writerow(dataclasses.asdict(cell))
    models = list(dict.fromkeys(c.model for c in cells))
    means = {
        m: {k: statistics.mean(getattr(c, k) for c in cells if c.model == m) for k, _ in METRICS}
        for m in models
    }
    lines = [
        "| model | prompts | " + " | ".join(label for _, label in METRICS) + " |",
        "|---|---|" + "---|" * len(METRICS),
    ]
    for model in models:
        count = sum(1 for c in cells if c.model == model)
        values = " | ".join(f"{means[model][key]:.3f}" for key, _ in METRICS)
        lines.append(f"| {model} | {count} | {values} |")
    markdown = out / "models.md"
    markdown.write_text("\n".join(lines) + "\n")
    plots = out / "models.png"
    _plot(models, means, plots)
    sheet = out / "contact-sheet.png"
    _contact_sheet(cells, out, sheet)
    return [table, markdown, plots, sheet]


def _plot(models: list[str], means: dict[str, dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 3, figsize=(12, 6))
    for axis, (key, label) in zip(axes.flat, METRICS, strict=True):
        axis.bar(models, [means[m][key] for m in models])
        axis.set_title(label)
        axis.tick_params(axis="x", labelrotation=30, labelsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _first_frame(path: Path, size: int) -> np.ndarray:
    import av
    from PIL import Image

    with av.open(str(path)) as container:
        frame = Image.fromarray(next(container.decode(video=0)).to_ndarray(format="rgb24"))
    frame.thumbnail((size, size))
    tile = Image.new("RGB", (size, size))
    tile.paste(frame, ((size - frame.width) // 2, (size - frame.height) // 2))
    return np.asarray(tile)


def _contact_sheet(cells: list[Cell], out: Path, path: Path, size: int = 128) -> None:
    """First frames: a row per prompt, a column per model."""
    from PIL import Image

    models = list(dict.fromkeys(c.model for c in cells))
    prompts = list(dict.fromkeys(c.prompt_id for c in cells))
    by_cell = {(c.model, c.prompt_id): c for c in cells}
    sheet = np.zeros((len(prompts) * size, len(models) * size, 3), dtype=np.uint8)
    for row, prompt in enumerate(prompts):
        for column, model in enumerate(models):
            cell = by_cell.get((model, prompt))
            if cell is not None:
                sheet[row * size : (row + 1) * size, column * size : (column + 1) * size] = _first_frame(
                    out / cell.video, size
                )
    Image.fromarray(sheet).save(path)
