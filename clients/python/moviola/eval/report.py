"""Results as a CSV, a Markdown table and a PNG plot, side by side in one folder."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

from moviola.eval.retrieval import Row


def write(rows: list[Row], folder: Path, name: str = "retrieval") -> list[Path]:
    """``folder/NAME.csv``, ``NAME.md`` and ``NAME.png``; the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    fields = [f.name for f in dataclasses.fields(Row)]
    table = folder / f"{name}.csv"
    with table.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow(dataclasses.asdict(row))
    markdown = folder / f"{name}.md"
    lines = [
        "| model | pooling | direction | queries | R@1 | R@5 | R@10 | median rank |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.model} | {r.pooling} | {r.direction} | {r.queries} | {r.recall_at_1:.3f} | "
            f"{r.recall_at_5:.3f} | {r.recall_at_10:.3f} | {r.median_rank:g} |"
        )
    markdown.write_text("\n".join(lines) + "\n")
    plot = folder / f"{name}.png"
    _plot(rows, plot)
    return [table, markdown, plot]


def _plot(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directions = list(dict.fromkeys(r.direction for r in rows))
    figure, axes = plt.subplots(1, len(directions), figsize=(6 * len(directions), 4), squeeze=False)
    for axis, direction in zip(axes[0], directions, strict=True):
        mine = [r for r in rows if r.direction == direction]
        width = 0.8 / 3
        for offset, (label, values) in enumerate(
            [
                ("R@1", [r.recall_at_1 for r in mine]),
                ("R@5", [r.recall_at_5 for r in mine]),
                ("R@10", [r.recall_at_10 for r in mine]),
            ]
        ):
            axis.bar([i + offset * width for i in range(len(mine))], values, width, label=label)
        axis.set_xticks([i + width for i in range(len(mine))])
        axis.set_xticklabels([f"{r.model}\n{r.pooling}" for r in mine], fontsize=8)
        axis.set_ylim(0, 1.05)
        axis.set_title(direction)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
