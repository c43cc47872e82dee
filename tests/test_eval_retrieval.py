"""``moviola eval retrieval``: metrics with a known answer, and the harness end to end on a real server."""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import mp4, scene
from PIL import Image

from moviola.client.cli import main
from moviola.eval import clips, retrieval
from moviola.eval.retrieval import Model, Vectors
from moviola.testing import ServerProcess


class Oracle:
    """Embeds by the label it knows: a caption and its clips share one axis (``shuffled``: clips get others')."""

    def __init__(self, clip_set: Sequence[clips.Clip], shuffled: bool = False) -> None:
        captions = list(dict.fromkeys(c.caption for c in clip_set))
        self._axis = {caption: i for i, caption in enumerate(captions)}
        labels = [c.caption for c in clip_set]
        if shuffled:
            random.Random(1).shuffle(labels)
        self._video_label = {c.video: label for c, label in zip(clip_set, labels, strict=True)}

    def _vector(self, caption: str) -> Vectors:
        vector = np.zeros(len(self._axis), dtype=np.float32)
        vector[self._axis[caption]] = 1.0
        return vector

    def models(self) -> list[Model]:
        return [Model("oracle", accepts_text=True, accepts_images=True)]

    def texts(self, model: str, texts: Sequence[str]) -> Vectors:
        return np.stack([self._vector(t) for t in texts])

    def videos(self, model: str, videos: Sequence[bytes], pooling: str) -> Vectors:
        return np.stack([self._vector(self._video_label[v]) for v in videos])


@pytest.fixture(scope="module")
def clip_set() -> list[clips.Clip]:
    return clips.procedural(labels=12, renderings=2, seed=3)


def test_the_procedural_set_is_labelled_and_its_clips_differ(clip_set: list[clips.Clip]) -> None:
    assert len(clip_set) == 24
    assert len({c.caption for c in clip_set}) == 12
    assert len({c.video for c in clip_set}) == 24  # twins are rendered differently
    assert all(c.caption.startswith("a ") and c.group == c.caption for c in clip_set)


def test_an_oracle_embedding_scores_perfect_recall(clip_set: list[clips.Clip]) -> None:
    rows = retrieval.evaluate(Oracle(clip_set), clip_set, poolings=("mean",))
    assert [r.direction for r in rows] == ["text→video", "video→video"]
    for row in rows:
        assert (row.recall_at_1, row.recall_at_5, row.recall_at_10, row.median_rank) == (1.0, 1.0, 1.0, 1.0)
    assert [r.queries for r in rows] == [12, 24]


def test_shuffled_labels_score_near_chance(clip_set: list[clips.Clip]) -> None:
    rows = retrieval.evaluate(Oracle(clip_set, shuffled=True), clip_set, poolings=("mean",))
    text = rows[0]
    assert text.recall_at_1 <= 0.25  # chance: 2 relevant of 24
    assert text.median_rank > 2


def test_ranks_count_the_irrelevant_items_above_the_best_relevant_one() -> None:
    scores = np.array([[0.9, 0.8, 0.1], [0.1, 0.2, 0.3]], dtype=np.float32)
    relevant = np.array([[False, True, True], [True, False, False]])
    assert retrieval.ranks(scores, relevant).tolist() == [2, 3]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as file:
        return list(csv.DictReader(file))


@pytest.mark.timeout(180)
def test_the_harness_runs_against_a_real_server_and_writes_its_outputs(
    server: ServerProcess, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = [
        "eval",
        "retrieval",
        "--server",
        server.address,
        "--out",
        str(out),
        "--labels",
        "4",
        "--frames",
        "4",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    rows = _rows(out / "retrieval.csv")
    assert {(r["model"], r["pooling"], r["direction"]) for r in rows} == {
        ("tiny-siglip2", "mean", "text→video"),
        ("tiny-siglip2", "mean", "video→video"),
        ("tiny-siglip2", "temporal", "video→video"),
        ("tiny-dinov2", "mean", "video→video"),
        ("tiny-dinov2", "temporal", "video→video"),
    }
    for row in rows:
        assert int(row["queries"]) == (4 if row["direction"] == "text→video" else 8)
        assert (
            0.0 <= float(row["recall_at_1"]) <= float(row["recall_at_5"]) <= float(row["recall_at_10"]) <= 1.0
        )
    assert (out / "retrieval.md").read_text().count("\n| tiny-") == 5
    with Image.open(out / "retrieval.png") as plot:
        assert plot.width > 100
    assert "tiny-siglip2" in result.output  # the table, printed


def test_a_folder_of_clips_with_a_captions_file_is_evaluated(server: ServerProcess, tmp_path: Path) -> None:
    folder = tmp_path / "clips"
    folder.mkdir()
    lines = ["file,caption,group"]
    for i in range(4):
        (folder / f"{i}.mp4").write_bytes(mp4(scene(9, seed=i)))
        lines.append(f"{i}.mp4,clip number {i},g{i // 2}")
    (tmp_path / "captions.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    args = ["eval", "retrieval", "--server", server.address, "--out", str(out), "--model", "tiny-siglip2"]
    args += ["--pooling", "mean", "--clips", str(folder), "--captions", str(tmp_path / "captions.csv")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert [(r["direction"], r["queries"]) for r in _rows(out / "retrieval.csv")] == [
        ("text→video", "4"),
        ("video→video", "4"),
    ]


def test_a_captions_file_that_does_not_fit_says_which_line(server: ServerProcess, tmp_path: Path) -> None:
    (tmp_path / "captions.csv").write_text("file,caption\nmissing.mp4,a fox\n")
    args = ["eval", "retrieval", "--server", server.address, "--clips", str(tmp_path)]
    result = CliRunner().invoke(main, [*args, "--captions", str(tmp_path / "captions.csv")])
    assert result.exit_code == 1
    assert "captions.csv:2: no video" in result.output
    result = CliRunner().invoke(main, ["eval", "retrieval", "--server", server.address, "--model", "nope"])
    assert result.exit_code == 1
    assert "not served, or not for videos: nope" in result.output
