"""One default per option: the commands leave an option unset unless given, and show the settings' defaults
and choices; only settings read the environment; importing settings imports no Redis client."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from moviola.runtime import commands
from moviola.runtime.options import Duration, SettingOption
from moviola.settings import CHOICES, Settings, StorageSettings, default_of

SERVING = [commands.serve, commands.worker, commands.simulated_worker]
#: Options of a setting whose command has a default of its own: a worker is named after its host and process.
OWN_DEFAULTS = {"worker_name"}


def setting_options(command: click.Command) -> list[click.Option]:
    """The command's options that set a setting (``Settings.of`` knows their name)."""
    found = []
    for param in command.params:
        try:
            default_of(str(param.name))
        except KeyError:
            continue
        assert isinstance(param, click.Option)
        found.append(param)
    return found


@pytest.mark.parametrize("command", SERVING, ids=lambda c: c.name)
def test_an_option_is_unset_unless_given_and_shows_the_settings_default(command: click.Command) -> None:
    ctx = click.Context(command, show_default=True)
    options = [o for o in setting_options(command) if o.name not in OWN_DEFAULTS]
    assert len(options) > 4
    for option in options:
        assert isinstance(option, SettingOption), option.name
        assert option.default is None, option.name
        expected = default_of(str(option.name))
        shown = option.get_help_extra(ctx).get("default")
        if expected is None or expected == () or (expected is False and not option.secondary_opts):
            assert shown is None, option.name
        elif isinstance(expected, bool):
            assert shown == (option.opts if expected else option.secondary_opts)[0].lstrip("-"), option.name
        else:
            assert shown is not None, option.name
            assert option.type.convert(shown, option, ctx) == expected, option.name


@pytest.mark.parametrize("command", [commands.serve, commands.worker], ids=lambda c: c.name)
def test_choices_are_the_settings_choices_and_each_is_accepted(command: click.Command) -> None:
    chosen = {
        str(o.name): tuple(o.type.choices)
        for o in setting_options(command)
        if isinstance(o.type, click.Choice)
    }
    assert chosen == CHOICES
    for name, choices in CHOICES.items():
        for value in choices:
            assert getattr(Settings.of(**{name: value}).models, name) == value
        with pytest.raises(ValueError, match=f"{name} must be"):
            Settings.of(**{name: "no-such-choice"})


def given(command: click.Command, args: list[str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings the command builds from ``args`` and the environment (logging left alone)."""
    monkeypatch.setattr(commands, "setup_logging", lambda *_: None)
    ctx = command.make_context(str(command.name), args)
    return commands._settings(dict(ctx.params))


def test_no_options_are_the_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    assert given(commands.serve, [], monkeypatch) == Settings()
    worker = given(commands.worker, ["--redis-url", "redis://r"], monkeypatch)
    assert worker.queue == Settings.of(redis_url="redis://r").queue
    assert (worker.models, worker.storage, worker.server) == (
        Settings().models,
        Settings().storage,
        Settings().server,
    )


def test_flags_and_the_environment_set_what_they_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOVIOLA_LEASE", "5")
    monkeypatch.setenv("MOVIOLA_ACCEPT_WITHOUT_WORKERS", "1")
    monkeypatch.setenv("MOVIOLA_VIDEO_RETENTION", "7d")
    monkeypatch.setenv("MOVIOLA_COMPILE", "true")
    settings = given(commands.serve, ["--no-compile", "--port", "0", "--quantize", "int8"], monkeypatch)
    assert settings.queue.accept_without_workers
    assert not settings.models.compile  # the flag over the environment
    assert (settings.server.port, settings.models.quantize) == (0, "int8")
    week = 7 * 86400.0
    assert settings.storage.video_retention == week
    assert settings.queue.record_retention == week  # a job's record outlives its files
    assert given(commands.worker, ["--redis-url", "redis://r"], monkeypatch).queue.lease == 5.0


def test_help_shows_the_defaults() -> None:
    text = CliRunner().invoke(commands.worker, ["--help"], terminal_width=200).output
    assert "[default: moviola:]" in text
    assert "[default: 1h]" in text  # --url-ttl, as a duration
    assert "[default: no-compile]" in text
    assert "[default: 30.0; x>=1]" in text  # --lease


def test_durations_are_shown_in_their_largest_whole_unit() -> None:
    assert [Duration.text(s) for s in (3600.0, 120.0, 90.0, 7 * 86400.0, 0.5)] == [
        "1h",
        "2m",
        "90s",
        "1w",
        "0.5s",
    ]
    for text in ("1h", "2m", "90s", "1w", "0.5s"):
        assert Duration.text(Duration().convert(text, None, None)) == text


def test_settings_read_the_s3_endpoint_and_region_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    assert (StorageSettings().s3_endpoint, StorageSettings().s3_region) == (None, None)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://any:9000")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert (StorageSettings().s3_endpoint, StorageSettings().s3_region) == ("http://any:9000", "eu-west-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://s3:9000")  # the S3 one first, as boto3 reads them
    monkeypatch.setenv("AWS_REGION", "")  # empty: unset
    assert Settings.of(s3_endpoint=None).storage.s3_endpoint is None
    assert (StorageSettings().s3_endpoint, StorageSettings().s3_region) == ("http://s3:9000", "eu-west-1")


def test_importing_settings_imports_no_redis_client() -> None:
    code = "import sys, moviola.settings; moviola.settings.Settings(); print('redis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
