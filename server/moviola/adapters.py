"""LoRA adapters: operators register them, callers only name them.

A caller never sends a path or a URL (an adapter is code-adjacent: loading one from wherever a
caller points is how model servers get owned). The operator's registry, one ``AdapterCatalog``,
is built at start-up from any of:

- ``--lora-catalog FILE``: a TOML file of ``[[adapter]]`` entries (every field below);
- ``--lora NAME=SOURCE`` (repeatable): one adapter of the served model's family;
- ``--lora-dir DIR`` (or ``s3://BUCKET/PREFIX/``): every ``*.safetensors`` file (named by its stem)
  and every folder (named by itself) in it, for the served model's family; a folder holding ``high_noise_model.safetensors``
  and ``low_noise_model.safetensors`` gives each Wan2.2 expert its own file.

A source is a ``.safetensors`` file, a folder, ``s3://BUCKET/KEY`` (fetched by the worker into its
cache), a hub id (``owner/repo``, from the local Hugging Face cache or the hub), or ``builtin:NAME``
(a tiny adapter built in code for the tiny models). The gateway only reads names and bases from
here; the worker resolves sources and checks the files (``moviola.pipelines.lora``).

    [[adapter]]
    name = "ink-wash"
    source = "/adapters/ink-wash"
    base = ["wan2.2-t2v"]                 # model ids or families it applies to
    description = "Ink-wash painting style"
    license = "Apache-2.0"
    trigger_words = ["ink wash"]
    high_noise = "high_noise_model.safetensors"   # Wan2.2: each expert's file within the source
    low_noise = "low_noise_model.safetensors"

The catalogue shipped beside this module (``adapters.toml``) registers the turbo profiles'
distillation adapters (``callers = false``: not listed, not nameable, used by ``turbo`` alone).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from moviola.catalog import ModelSpec, catalog_of
from moviola.errors import FailedPrecondition
from moviola.settings import Settings

ADAPTERS_PATH = Path(__file__).with_name("adapters.toml")
#: Adapter names: what a caller types, also safe in metrics labels and file names.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: The files of a Wan2.2 adapter that ships one per expert (lightx2v's and most community layouts).
HIGH_NOISE_FILE = "high_noise_model.safetensors"
LOW_NOISE_FILE = "low_noise_model.safetensors"
#: Adapters one request may name, and the bounds of a scale.
MAX_LORAS = 8
MAX_SCALE = 4.0


@dataclass(frozen=True)
class AdapterSpec:
    name: str
    #: A file, a folder, ``s3://BUCKET/KEY``, a hub id, or ``builtin:NAME``.
    source: str
    #: Model ids or families it applies to.
    base: tuple[str, ...]
    description: str = ""
    license: str = ""
    trigger_words: tuple[str, ...] = ()
    #: The file within a folder or hub repo (a single file for every transformer).
    weight_name: str = ""
    #: Wan2.2 mixture-of-experts: the high-noise and low-noise experts' files within the source.
    high_noise: str = ""
    low_noise: str = ""
    #: False: only a turbo profile uses it (not listed, not nameable by callers).
    callers: bool = True

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise ValueError(
                f"adapter name {self.name!r}: letters, digits, '_', '.', '-' (at most 64, not first)"
            )
        if not self.source:
            raise ValueError(f"adapter {self.name!r}: source is empty")
        if not self.base:
            raise ValueError(f"adapter {self.name!r}: base (the models or families it applies to) is empty")
        if bool(self.high_noise) != bool(self.low_noise):
            raise ValueError(f"adapter {self.name!r}: high_noise and low_noise go together")

    def applies_to(self, spec: ModelSpec) -> bool:
        return spec.id in self.base or spec.family in self.base

    @property
    def per_expert(self) -> bool:
        """Whether each Wan2.2 expert has its own file."""
        return bool(self.high_noise)


@dataclass(frozen=True)
class AdapterCatalog:
    adapters: dict[str, AdapterSpec] = field(default_factory=dict)

    def get(self, name: str) -> AdapterSpec | None:
        return self.adapters.get(name)

    def for_model(self, spec: ModelSpec, *, callers_only: bool = True) -> list[AdapterSpec]:
        """The adapters of ``spec``, by name; by default only those callers may name."""
        return sorted(
            (a for a in self.adapters.values() if a.applies_to(spec) and (a.callers or not callers_only)),
            key=lambda a: a.name,
        )

    def merged(self, other: AdapterCatalog) -> AdapterCatalog:
        """This catalogue with ``other``'s entries added; ``ValueError`` on a name registered twice."""
        twice = sorted(set(self.adapters) & set(other.adapters))
        if twice:
            raise ValueError(f"adapter {twice[0]!r} is registered twice")
        return AdapterCatalog(self.adapters | other.adapters)


def _entry(data: dict[str, Any], where: str) -> AdapterSpec:
    known = {f.name for f in fields(AdapterSpec)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{where}: unknown adapter fields {unknown} (known: {', '.join(sorted(known))})")
    data = dict(data)
    base = data.get("base", ())
    data["base"] = (base,) if isinstance(base, str) else tuple(base)
    data["trigger_words"] = tuple(data.get("trigger_words", ()))
    try:
        return AdapterSpec(**data)
    except TypeError as exc:
        raise ValueError(f"{where}: {exc}") from exc


def load_file(path: Path) -> AdapterCatalog:
    """The ``[[adapter]]`` entries of a TOML file; ``ValueError`` naming the file and the entry at fault."""
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"cannot read the adapter catalogue {path}: {exc}") from exc
    catalog = AdapterCatalog()
    for i, entry in enumerate(data.get("adapter", [])):
        spec = _entry(entry, f"{path}: adapter {entry.get('name', i)!r}")
        catalog = catalog.merged(AdapterCatalog({spec.name: spec}))
    return catalog


def parse_flag(text: str, base: str) -> AdapterSpec:
    """``--lora NAME=SOURCE``: an adapter of the family ``base``."""
    name, sep, source = text.partition("=")
    if not sep or not name or not source:
        raise ValueError(
            f"--lora {text!r}: expected NAME=SOURCE (a file, a folder, s3://BUCKET/KEY or a hub id)"
        )
    return AdapterSpec(name=name.strip(), source=source.strip(), base=(base,))


def scan_dir(where: str, base: str, s3_endpoint: str | None = None) -> AdapterCatalog:
    """``--lora-dir``: each ``*.safetensors`` file and each folder, for the family ``base``; a local
    folder or an ``s3://BUCKET/PREFIX/``, whose objects are listed (the worker fetches them at first use)."""
    if where.startswith("s3://"):
        return scan_s3(where, base, s3_endpoint)
    folder = Path(where)
    if not folder.is_dir():
        raise ValueError(f"--lora-dir {folder}: not a folder")
    found: dict[str, AdapterSpec] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_file() and path.suffix == ".safetensors":
            found[path.stem] = AdapterSpec(name=path.stem, source=str(path), base=(base,))
        elif path.is_dir():
            found[path.name] = _adapter(path.name, str(path), {p.name for p in path.iterdir()}, base)
    return AdapterCatalog(found)


def _adapter(name: str, source: str, files: set[str], base: str) -> AdapterSpec:
    split = HIGH_NOISE_FILE in files and LOW_NOISE_FILE in files
    return AdapterSpec(
        name=name,
        source=source,
        base=(base,),
        high_noise=HIGH_NOISE_FILE if split else "",
        low_noise=LOW_NOISE_FILE if split else "",
    )


def scan_s3(url: str, base: str, endpoint: str | None) -> AdapterCatalog:
    """``--lora-dir s3://BUCKET/PREFIX/``: each ``.safetensors`` object and each sub-prefix under it."""
    from botocore.exceptions import BotoCoreError, ClientError

    from moviola.storage.s3 import standard_client

    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
    folders: dict[str, set[str]] = {}
    files: list[str] = []
    try:
        pages = (
            standard_client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        )
        for page in pages:
            for item in page.get("Contents", []):
                rest = str(item["Key"]).removeprefix(prefix)
                head, sep, tail = rest.partition("/")
                if sep and tail:
                    folders.setdefault(head, set()).add(tail)
                elif not sep and rest.endswith(".safetensors"):
                    files.append(rest)
    except (BotoCoreError, ClientError) as exc:
        raise ValueError(f"--lora-dir {url}: cannot list it ({exc})") from exc
    found = {Path(f).stem: AdapterSpec(Path(f).stem, f"s3://{bucket}/{prefix}{f}", (base,)) for f in files}
    for name, inside in folders.items():
        found[name] = _adapter(name, f"s3://{bucket}/{prefix}{name}/", inside, base)
    return AdapterCatalog(found)


def build(
    catalog_file: Path | None,
    flags: tuple[str, ...],
    dirs: tuple[str, ...],
    base: str,
    s3_endpoint: str | None = None,
) -> AdapterCatalog:
    """The registry of a process: the shipped catalogue, then the operator's file, flags and folders.

    ``base``: the family of the served model, for adapters registered without one (flags, folders);
    ``s3_endpoint``: where ``s3://`` folders are listed (``storage.s3_endpoint``).
    Raises ``ValueError`` saying which entry is wrong.
    """
    catalog = load_file(ADAPTERS_PATH)
    if catalog_file is not None:
        catalog = catalog.merged(load_file(catalog_file))
    for folder in dirs:
        catalog = catalog.merged(scan_dir(folder, base, s3_endpoint))
    for flag in flags:
        spec = parse_flag(flag, base)
        catalog = catalog.merged(AdapterCatalog({spec.name: spec}))
    return catalog


def registered(settings: Settings) -> AdapterCatalog:
    """The adapters a process registers; ``--lora``/``--lora-dir`` ones are for the family of its own model
    (``--model``), in the gateway that validates them as in the worker that loads them. A wrong entry is a
    ``FailedPrecondition`` (the start fails with its message)."""
    spec = catalog_of(settings.models.catalog).get(settings.models.model)
    base = spec.family if spec is not None else settings.models.model
    chosen = settings.adapters
    try:
        return build(chosen.catalog, chosen.loras, chosen.dirs, base, settings.storage.s3_endpoint)
    except ValueError as exc:
        raise FailedPrecondition(str(exc)) from exc
