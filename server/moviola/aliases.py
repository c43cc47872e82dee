"""More names for served models: the operator's, the catalogue's, and Sora's out of the box.

Code written for the hosted Sora API names ``sora-2`` and ``sora-2-pro``. Unless the operator
(``--model-alias ALIAS=MODEL``) or the catalogue (``aliases``) says otherwise:

- ``sora-2`` is the served default model when it takes text, else the first served model that does;
- ``sora-2-pro`` is the served text-taking model with the largest size it offers (its largest
  preset, else its default size), a mixture of experts first on a tie, then catalogue order.

    names = Aliases.of(models, default_model, ("sora-2=wan2.2-t2v-a14b",))
    names.resolve("sora-2")   # "wan2.2-t2v-a14b"
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from moviola.catalog import ImageInput, ModelSpec

SORA = "sora-2"
SORA_PRO = "sora-2-pro"


def _takes_text(spec: ModelSpec) -> bool:
    return spec.image_input is not ImageInput.REQUIRED


def _largest(spec: ModelSpec) -> tuple[int, bool]:
    sizes = [*spec.presets.values(), (spec.defaults.width, spec.defaults.height)]
    return max(w * h for w, h in sizes), spec.mixture_of_experts


def _defaults(models: Mapping[str, ModelSpec], default_model: str) -> dict[str, str]:
    text = [spec for spec in models.values() if _takes_text(spec)]
    if not text:
        return {}
    default = models.get(default_model)
    first = default if default is not None and _takes_text(default) else text[0]
    best = max(text, key=_largest)  # max keeps the first of equals: catalogue order
    return {SORA: first.id, SORA_PRO: best.id}


def parse(given: Iterable[str], models: Mapping[str, ModelSpec]) -> dict[str, str]:
    """``ALIAS=MODEL`` pairs (``--model-alias``); ValueError naming the one at fault."""
    out: dict[str, str] = {}
    for pair in given:
        alias, sep, target = (part.strip() for part in pair.partition("="))
        if not sep or not alias or not target:
            raise ValueError(f"--model-alias takes ALIAS=MODEL, got {pair!r}")
        spec = models.get(target) or next((s for s in models.values() if s.family == target), None)
        if spec is None:
            raise ValueError(f"--model-alias {pair}: {target!r} is not a served model ({', '.join(models)})")
        if alias in models:
            raise ValueError(f"--model-alias {pair}: {alias!r} is already a model id")
        out[alias] = spec.id
    return out


@dataclass(frozen=True)
class Aliases:
    """Each alias and the served model id it names."""

    names: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, models: Mapping[str, ModelSpec], default_model: str, given: Iterable[str] = ()) -> Aliases:
        """The operator's (``given``) first, then the catalogue's, then Sora's defaults."""
        names = _defaults(models, default_model)
        for spec in models.values():
            names.update(dict.fromkeys(spec.aliases, spec.id))
        names.update(parse(given, models))
        return cls({alias: model for alias, model in names.items() if alias not in models})

    def resolve(self, name: str) -> str | None:
        return self.names.get(name)

    def of_model(self, model_id: str) -> tuple[str, ...]:
        """The aliases that name ``model_id``, sorted."""
        return tuple(sorted(alias for alias, target in self.names.items() if target == model_id))
