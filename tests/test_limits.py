"""Limits in the auth file, ``moviola auth set-limits``, the token bucket and the fair-share rule, as units."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from moviola.auth import keys
from moviola.quota import Limits, TokenBucket
from moviola.scheduler.fair import FairClock


def order(clock: FairClock, submits: list[tuple[str, float]]) -> list[str]:
    """The tenants of ``submits`` (tenant, weight) in the order their jobs would start."""
    tagged = sorted((clock.enter(tenant, weight), i, tenant) for i, (tenant, weight) in enumerate(submits))
    for tag, _, tenant in tagged:
        clock.leave(tenant, tag, started=True)
    return [tenant for _, _, tenant in tagged]


def test_fair_share_interleaves_backlogs_and_keeps_each_tenants_order() -> None:
    started = order(FairClock(), [("a", 1.0)] * 100 + [("b", 1.0)] * 3)
    assert started.index("b") <= 1
    assert started[:6].count("b") == 3  # b's three go within the first six, not after a's hundred
    alone = order(FairClock(), [("a", 1.0)] * 5)
    assert alone == ["a"] * 5


def test_weights_divide_the_starts() -> None:
    started = order(FairClock(), [("heavy", 3.0), ("light", 1.0)] * 40)
    assert started[:40].count("heavy") == 30


def test_a_tenant_whose_jobs_all_left_is_forgotten() -> None:
    clock = FairClock()
    backlog = [clock.enter("a") for _ in range(50)]
    for tag in backlog:
        clock.leave("a", tag, started=False)  # cancelled, all of them
    assert clock.enter("a") == clock.enter("b")  # no longer behind its cancelled backlog


def test_the_token_bucket_refills_at_its_rate() -> None:
    bucket = TokenBucket(rate=2.0, bucket=3, now=0.0)
    for _ in range(3):
        assert bucket.wait(0.0) == 0
        bucket.take()
    assert bucket.wait(0.0) == pytest.approx(0.5)
    assert bucket.wait(0.5) == 0  # one token back after half a second
    assert Limits(rate=0.5).bucket == 1
    assert Limits(rate=2.5).bucket == 3


@pytest.mark.parametrize(
    ("limits", "wrong"),
    [
        ({"in_flight": -1}, "at least 0"),
        ({"rate": "fast"}, "must be a number"),
        ({"weight": 0}, "weight must be between"),
        ({"burst": 2.5}, "whole numbers"),
        ({"speed": 1}, "unknown limits"),
    ],
)
def test_bad_limits_in_the_auth_file_are_refused_with_where(
    tmp_path: Path, limits: dict[str, object], wrong: str
) -> None:
    path = tmp_path / "auth.json"
    keys.create_key(path, "acme")
    data = json.loads(path.read_text())
    data["tenants"]["acme"]["limits"] = limits
    path.write_text(json.dumps(data))
    with pytest.raises(keys.AuthFileError, match=wrong) as refused:
        keys.load(path)
    assert "'acme'" in str(refused.value)


def test_top_level_limits_apply_to_tenants_without_their_own(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    plain, own = keys.create_key(path, "plain"), keys.create_key(path, "own")
    keys.set_limits(path, "own", {"rate": 5})
    data = json.loads(path.read_text())
    data["limits"] = {"in_flight": 7}
    path.write_text(json.dumps(data))
    keyring = keys.load(path)
    plain_caller, own_caller = keyring.verify(plain), keyring.verify(own)
    assert plain_caller is not None and plain_caller.limits == Limits(in_flight=7)  # noqa: PT018
    assert own_caller is not None and own_caller.limits == Limits(rate=5)  # noqa: PT018


def test_set_limits_changes_only_what_it_is_given(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    key = keys.create_key(path, "acme")
    run = [sys.executable, "-m", "moviola.runtime", "auth", "set-limits", "--auth-file", str(path)]
    first = subprocess.run([*run, "--tenant", "acme", "--in-flight", "4"], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert "4 in flight" in first.stderr
    subprocess.run([*run, "--tenant", "acme", "--rate", "1.5"], check=True, capture_output=True)
    caller = keys.load(path).verify(key)
    assert caller is not None
    assert caller.limits == Limits(in_flight=4, rate=1.5)
    refused = subprocess.run([*run, "--tenant", "acme", "--weight", "0"], capture_output=True, text=True)
    assert refused.returncode == 2
    assert "weight" in refused.stderr
