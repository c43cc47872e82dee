"""Tiny LoRA adapters for the tiny models, made with peft in code (nothing is downloaded).

The tiny models' turbo profiles name ``builtin:`` adapters built here on first use, in the same
layouts real adapters ship in, so that ``turbo`` runs end to end through the real loading path
(``load_lora_weights``). Their weights are random: a tiny turbo adapter makes a different video in
fewer steps, not a better one. The same builder makes the tests' style adapters, in both layouts
users bring: diffusers/peft (``transformer.blocks.0.attn1.to_q.lora_A.weight``) and the original
Wan layout of ComfyUI and lightx2v (``diffusion_model.blocks.0.self_attn.q.lora_down.weight`` with
an ``alpha``), which diffusers converts when it loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from moviola.adapters import HIGH_NOISE_FILE, LOW_NOISE_FILE
from moviola.pipelines.tiny import _wan_transformer, build_once, torch_seed

SINGLE_FILE = "pytorch_lora_weights.safetensors"
RANK = 4
TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
#: What Wan2.2-Lightning adapts: every linear layer of the blocks' attention and FFN.
LIGHTNING_TARGETS = [*TARGETS, "ffn.net.0.proj", "ffn.net.2"]
#: The tiny models' transformers: (input channels, latent channels) of each expert.
EXPERTS: dict[str, list[tuple[int, int]]] = {
    "tiny-wan2.2-t2v": [(16, 16), (16, 16)],
    "tiny-wan2.2-i2v": [(36, 16), (36, 16)],
    "tiny-wan2.2-ti2v": [(48, 48)],
    "tiny-wan2.1-t2v": [(16, 16)],
}
_ORIGINAL = {"attn1": "self_attn", "attn2": "cross_attn"}
_PROJECTIONS = {"to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "o"}


def _state(model: str, expert: int, seed: int) -> dict[str, Any]:
    """A random LoRA of one of ``model``'s transformers."""
    channels, latent = EXPERTS[model][expert]
    transformer = _wan_transformer(channels, latent)
    torch_seed(seed * 2 + expert)
    return random_lora(transformer)


def random_lora(transformer: Any, rank: int = RANK, targets: list[str] = TARGETS) -> dict[str, Any]:
    """A random LoRA of ``transformer`` as diffusers saves one (peft's keys under ``transformer.``), made with
    peft; the transformer is left without it."""
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    config = LoraConfig(r=rank, lora_alpha=rank, target_modules=targets, init_lora_weights=False)
    transformer.add_adapter(config, adapter_name="random")
    state: dict[str, Any] = get_peft_model_state_dict(transformer, adapter_name="random")
    transformer.delete_adapters(["random"])
    return {f"transformer.{key}": value.contiguous() for key, value in state.items()}


def original_layout(state: dict[str, Any]) -> dict[str, Any]:
    """A diffusers LoRA state dict in the original Wan (ComfyUI, lightx2v) layout, with alphas."""
    import torch

    out: dict[str, Any] = {}
    for key, value in state.items():
        name = key.removeprefix("transformer.")
        module, _, kind = name.rpartition(".lora_")
        blocks, index, attention, projection = module.split(".", 3)
        target = f"diffusion_model.{blocks}.{index}.{_ORIGINAL[attention]}.{_PROJECTIONS[projection]}"
        out[f"{target}.{'lora_down' if kind.startswith('A') else 'lora_up'}.weight"] = value
        out[f"{target}.alpha"] = torch.tensor(float(RANK))
    return out


def build_tiny_lora(target: Path, model: str, *, seed: int = 0, layout: str = "diffusers") -> None:
    """Save a random adapter for ``model`` into the folder ``target``: one file per Wan2.2 expert
    (``high_noise_model``/``low_noise_model``) or one file, in the ``diffusers`` or ``original`` layout."""
    from safetensors.torch import save_file

    target.mkdir(parents=True, exist_ok=True)
    experts = len(EXPERTS[model])
    names = [HIGH_NOISE_FILE, LOW_NOISE_FILE] if experts == 2 else [SINGLE_FILE]
    for expert, name in enumerate(names):
        state = _state(model, expert, seed)
        save_file(original_layout(state) if layout == "original" else state, str(target / name))


#: ``builtin:NAME`` adapters: the tiny models' turbo adapters.
BUILTIN = {f"{model}-turbo": model for model in EXPERTS}


def ensure_built(cache_dir: Path, name: str) -> Path:
    """The folder of the builtin adapter ``name``, built on first use."""
    if name not in BUILTIN:
        raise ValueError(f"no builtin adapter {name!r} (known: {', '.join(sorted(BUILTIN))})")
    model = BUILTIN[name]
    marker = HIGH_NOISE_FILE if len(EXPERTS[model]) == 2 else SINGLE_FILE
    return build_once(
        cache_dir / "adapters" / name, marker, lambda folder: build_tiny_lora(folder, model, seed=7)
    )
