"""Unit tests of the adapter registry and of how a request's profile and adapters are checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from moviola.adapters import AdapterCatalog, AdapterSpec, build, load_file, parse_flag, scan_dir
from moviola.catalog import BUILTIN_MODELS
from moviola.errors import InvalidRequest
from moviola.jobs import JobRequest, LoraChoice
from moviola.validation import RequestDraft, validate

MODELS = {m: BUILTIN_MODELS[m] for m in ("tiny-wan2.2-t2v", "tiny-wan2.1-t2v", "tiny-ltx-video")}
ADAPTERS = AdapterCatalog(
    {
        "ink": AdapterSpec("ink", "/a/ink.safetensors", ("tiny-wan2.2-t2v",), trigger_words=("ink wash",)),
        "hidden": AdapterSpec("hidden", "/a/h", ("tiny-wan2.2-t2v",), callers=False),
        "small": AdapterSpec("small", "/a/s", ("tiny-wan2.1-t2v",)),
    }
)


def _validate(**fields: Any) -> JobRequest:
    return validate(RequestDraft(prompt="a fox", **fields), MODELS, "tiny-wan2.2-t2v", ADAPTERS)


def test_adapters_are_validated_by_name_family_scale_and_count() -> None:
    request = _validate(loras=(("ink", 0.5), ("small", None))[:1])
    assert request.loras == (LoraChoice("ink", 0.5),)
    assert _validate(loras=(("ink", 0.0),)).loras == ()  # scale 0: as if unnamed
    cases = [
        ((("nope", None),), "loras[0].name", "serves: ink"),
        ((("hidden", None),), "loras[0].name", "unknown adapter 'hidden'"),  # the turbo kind: not nameable
        ((("small", None),), "loras[0].name", "is for tiny-wan2.1-t2v"),
        ((("ink", None), ("ink", 1.0)), "loras[1].name", "named twice"),
        ((("ink", float("nan")),), "loras[0].scale", "within -4..4"),
        ((("ink", 4.5),), "loras[0].scale", "within -4..4"),
        (tuple(("ink", 1.0) for _ in range(9)), "loras", "at most 8"),
        ((("x" * 200, None),), "loras[0].name", "at most 128 characters"),
    ]
    for loras, field, message in cases:
        with pytest.raises(InvalidRequest, match=message) as caught:
            _validate(loras=loras)
        assert caught.value.field == field


def test_turbo_fills_its_steps_turns_guidance_off_and_refuses_the_rest() -> None:
    turbo = _validate(speed_profile="turbo")
    assert (turbo.num_inference_steps, turbo.guidance_scale, turbo.guidance_scale_2) == (4, 1.0, 1.0)
    assert _validate(speed_profile="turbo", num_inference_steps=6).num_inference_steps == 6
    assert _validate(speed_profile="turbo", guidance_scale=1.0).guidance_scale == 1.0
    for fields, field in (
        ({"guidance_scale": 3.0}, "guidance_scale"),
        ({"guidance_scale_2": 0.0}, "guidance_scale_2"),
        ({"num_inference_steps": 9}, "num_inference_steps"),
        ({"model": "tiny-ltx-video"}, "speed_profile"),  # no turbo profile
    ):
        with pytest.raises(InvalidRequest) as caught:
            _validate(speed_profile="turbo", **fields)
        assert caught.value.field == field


def test_the_batch_key_separates_adapter_sets_and_scales() -> None:
    plain, ink, half = _validate(), _validate(loras=(("ink", None),)), _validate(loras=(("ink", 0.5),))
    keys = {r.batch_key() for r in (plain, ink, half)}
    assert len(keys) == 3


def test_the_registry_reads_files_flags_and_folders_and_says_what_is_wrong(tmp_path: Path) -> None:
    shipped = build(None, (), (), "tiny-wan2.2-t2v")
    assert shipped.get("tiny-wan2.2-t2v-turbo") is not None
    assert shipped.for_model(BUILTIN_MODELS["tiny-wan2.2-t2v"]) == []  # turbo adapters are not callers'
    (tmp_path / "dir" / "pair").mkdir(parents=True)
    for name in ("high_noise_model.safetensors", "low_noise_model.safetensors"):
        (tmp_path / "dir" / "pair" / name).write_bytes(b"")
    (tmp_path / "dir" / "one.safetensors").write_bytes(b"")
    found = scan_dir(str(tmp_path / "dir"), "fam")
    assert found.adapters["pair"].per_expert and not found.adapters["one"].per_expert  # noqa: PT018
    assert parse_flag("ink=/x/ink.safetensors", "fam") == AdapterSpec("ink", "/x/ink.safetensors", ("fam",))
    with pytest.raises(ValueError, match="expected NAME=SOURCE"):
        parse_flag("ink", "fam")
    with pytest.raises(ValueError, match="registered twice"):
        build(None, ("one=/y",), (str(tmp_path / "dir"),), "fam")
    bad = tmp_path / "bad.toml"
    for text, message in (
        ('[[adapter]]\nname = "a"\nsource = "s"\nbase = "m"\ncolour = "red"\n', "unknown adapter fields"),
        ('[[adapter]]\nname = "a b"\nsource = "s"\nbase = "m"\n', "adapter name 'a b'"),
        ('[[adapter]]\nname = "a"\nsource = "s"\nbase = "m"\nhigh_noise = "h"\n', "go together"),
        ('[[adapter]]\nname = "a"\nsource = "s"\n', "base .* is empty"),
        ("[[adapter]\n", "cannot read the adapter catalogue"),
    ):
        bad.write_text(text)
        with pytest.raises(ValueError, match=message):
            load_file(bad)


def test_allow_lists_are_set_and_dropped_in_the_auth_file(tmp_path: Path) -> None:
    from moviola.auth import keys

    path = tmp_path / "auth.json"
    key = keys.create_key(path, "acme")
    keys.set_allowed(path, "acme", "adapters", ["ink", "ink", "style"])
    caller = keys.load(path).verify(key)
    assert caller is not None
    assert caller.adapters == frozenset({"ink", "style"}) and caller.models is None  # noqa: PT018
    assert caller.may_apply("ink") and not caller.may_apply("other")  # noqa: PT018
    keys.set_allowed(path, "acme", "adapters", None)
    again = keys.load(path).verify(key)
    assert again is not None and again.adapters is None  # noqa: PT018
    with pytest.raises(keys.AuthFileError, match="no allow-list"):
        keys.set_allowed(path, "acme", "colours", [])
