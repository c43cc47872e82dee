"""``storage.durable.write_files``: whole files or none, in order, with one flush or one per file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from moviola.storage import durable
from moviola.storage.local import LocalStorage


def _flushes(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count the syncfs and fsync calls (each still made)."""
    counts = {"syncfs": 0, "fsync": 0}
    real_fsync, real_syncfs = os.fsync, durable._SYNCFS

    def fsync(fd: int) -> None:
        counts["fsync"] += 1
        real_fsync(fd)

    def syncfs(fd: int) -> int:
        counts["syncfs"] += 1
        assert real_syncfs is not None
        return real_syncfs(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    if real_syncfs is not None:
        monkeypatch.setattr(durable, "_SYNCFS", syncfs)
    return counts


def test_a_stored_video_is_three_whole_files_flushed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counts = _flushes(monkeypatch)
    stored = LocalStorage(tmp_path).put("job1", b"video" * 1000, b"poster", b"sheet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job1.jpg", "job1.mp4", "job1.spritesheet.jpg"]
    assert (tmp_path / "job1.mp4").read_bytes() == b"video" * 1000
    assert stored.size_bytes == 5000
    # Linux: one syncfs for the three; elsewhere one fsync each.
    assert counts == ({"syncfs": 1, "fsync": 0} if durable._SYNCFS is not None else {"syncfs": 0, "fsync": 3})


def test_without_syncfs_each_file_is_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(durable, "_SYNCFS", None)
    counts = _flushes(monkeypatch)
    durable.write_files(tmp_path, [(tmp_path / "a", b"1"), (tmp_path / "b", b"22")])
    assert counts["fsync"] == 2
    assert [(tmp_path / name).read_bytes() for name in "ab"] == [b"1", b"22"]


def test_a_failed_write_leaves_no_file_and_nothing_staged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(durable, "_SYNCFS", full)
    monkeypatch.setattr(os, "fsync", lambda fd: full(fd))
    with pytest.raises(OSError, match="No space"):
        LocalStorage(tmp_path).put("job2", b"video", b"poster", b"sheet")
    assert list(tmp_path.iterdir()) == []  # no video without its images, no stray .part files


def test_files_are_renamed_in_the_order_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The poster is in place before the video: a video that exists always has its images."""
    renamed: list[str] = []
    real = os.replace

    def replace(source: str, target: Path) -> None:
        renamed.append(Path(target).name)
        real(source, target)

    monkeypatch.setattr(os, "replace", replace)
    LocalStorage(tmp_path).put("job3", b"video", b"poster", b"sheet")
    assert renamed == ["job3.jpg", "job3.spritesheet.jpg", "job3.mp4"]
