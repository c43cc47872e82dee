"""Triton model repositories (``triton/``): read them, and copy models with other weights.

The in-process backend reads the same ``config.pbtxt`` files Triton does, so one
repository describes the models in both deployments; the tests copy the shipped
configurations with their tiny weights swapped in.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

#: Triton's model configuration message (tritonclient ships no type stubs for it).
ModelConfig: Any = model_config_pb2.ModelConfig


@dataclass(frozen=True)
class RepositoryModel:
    name: str
    #: A kind from ``moviola.embed.encoders.ENCODERS``.
    encoder: str
    #: Local folder or hub id.
    weights: str
    folder: Path
    #: The ``license`` parameter ("" when the config states none).
    license: str = ""


def read_config(folder: Path) -> Any:
    config = ModelConfig()
    text_format.Parse((folder / "config.pbtxt").read_text(), config)
    return config


def _model(folder: Path) -> RepositoryModel:
    config = read_config(folder)
    params = config.parameters
    for key in ("encoder", "weights"):
        if key not in params:
            raise ValueError(f"{folder / 'config.pbtxt'}: the parameter {key!r} is missing")
    name = config.name or folder.name
    license = params["license"].string_value if "license" in params else ""
    return RepositoryModel(
        name, params["encoder"].string_value, params["weights"].string_value, folder, license
    )


def read_repository(root: Path) -> list[RepositoryModel]:
    """The models directly under ``root`` (folders with a ``config.pbtxt``), by name."""
    if not root.is_dir():
        raise FileNotFoundError(f"no model repository at {root}")
    return [_model(folder) for folder in sorted(root.iterdir()) if (folder / "config.pbtxt").is_file()]


def copy_model(source: Path, repository: Path, *, weights: str, torch_threads: int | None = None) -> Path:
    """Copy the model folder ``source`` into ``repository`` with its ``weights`` parameter replaced."""
    config = read_config(source)
    config.parameters["weights"].string_value = weights
    if torch_threads is not None:
        config.parameters["torch_threads"].string_value = str(torch_threads)
    target = repository / source.name
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    (target / "config.pbtxt").write_text(text_format.MessageToString(config))
    return target
