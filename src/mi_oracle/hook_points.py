"""Hook points by the project's names, where each lives in Hugging Face models (no torch here).

Project name: TransformerLens name; Gemma 2/3 location; Llama/Qwen2/Qwen3/Mistral location
(all inside decoder layer l):

- resid_pre: blocks.l.hook_resid_pre; input of the layer; same
- attn_out: blocks.l.hook_attn_out; output of post_attention_layernorm; output of self_attn
- resid_mid: blocks.l.hook_resid_mid; input of pre_feedforward_layernorm; input of
  post_attention_layernorm
- ln2_normalized: blocks.l.ln2.hook_normalized; x / rms(x) of resid_mid, without the gain
- mlp_in: blocks.l.mlp.hook_in; output of pre_feedforward_layernorm; output of
  post_attention_layernorm
- mlp_out: blocks.l.hook_mlp_out; output of post_feedforward_layernorm; output of mlp
- resid_post: blocks.l.hook_resid_post; output of the layer; same

``mlp.hook_in`` is circuit-tracer's name (the norm's output, with its gain). resid_post is
read from the layer itself, never from ``output_hidden_states``, whose last entry has the
final norm applied.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mi_oracle.errors import MiOracleError


class UnsupportedModelError(MiOracleError):
    """The model family or the hook point is not one the capture knows."""


@dataclass(frozen=True)
class HookPoint:
    """A hook point: project name, TransformerLens name template and meaning."""

    name: str
    transformer_lens: str
    meaning: str

    @property
    def in_block(self) -> str:
        """The TransformerLens name inside a block (``mlp.hook_in``), as curation YAMLs write it."""
        return self.transformer_lens.removeprefix("blocks.{layer}.")


HOOK_POINTS = {
    point.name: point
    for point in (
        HookPoint("resid_pre", "blocks.{layer}.hook_resid_pre", "residual stream entering the layer"),
        HookPoint("attn_out", "blocks.{layer}.hook_attn_out", "attention output added to the residual"),
        HookPoint("resid_mid", "blocks.{layer}.hook_resid_mid", "residual stream between attention and MLP"),
        HookPoint(
            "ln2_normalized", "blocks.{layer}.ln2.hook_normalized", "resid_mid / rms(resid_mid), no gain"
        ),
        HookPoint("mlp_in", "blocks.{layer}.mlp.hook_in", "pre-MLP norm output, with its gain"),
        HookPoint("mlp_out", "blocks.{layer}.hook_mlp_out", "MLP output added to the residual"),
        HookPoint("resid_post", "blocks.{layer}.hook_resid_post", "residual stream leaving the layer"),
    )
}

# hook -> (submodule of the decoder layer, "" = the layer itself; what to read there)
_GEMMA = {
    "resid_pre": ("", "input"),
    "attn_out": ("post_attention_layernorm", "output"),
    "resid_mid": ("pre_feedforward_layernorm", "input"),
    "ln2_normalized": ("pre_feedforward_layernorm", "input_rms"),
    "mlp_in": ("pre_feedforward_layernorm", "output"),
    "mlp_out": ("post_feedforward_layernorm", "output"),
    "resid_post": ("", "output"),
}
_LLAMA = {
    "resid_pre": ("", "input"),
    "attn_out": ("self_attn", "output"),
    "resid_mid": ("post_attention_layernorm", "input"),
    "ln2_normalized": ("post_attention_layernorm", "input_rms"),
    "mlp_in": ("post_attention_layernorm", "output"),
    "mlp_out": ("mlp", "output"),
    "resid_post": ("", "output"),
}
FAMILY_OF_MODEL_TYPE = {
    "gemma2": "gemma",
    "gemma3_text": "gemma",
    "llama": "llama",
    "mistral": "llama",
    "qwen2": "llama",
    "qwen3": "llama",
}
LOCATIONS = {"gemma": _GEMMA, "llama": _LLAMA}


def locate(model_type: str, hook: str) -> tuple[str, str]:
    """(submodule, side) of ``hook`` for ``model_type``; a clear error when either is unknown."""
    family = FAMILY_OF_MODEL_TYPE.get(model_type)
    if family is None:
        raise UnsupportedModelError(
            f"model_type {model_type!r} is not supported by the capture; supported: "
            f"{', '.join(sorted(FAMILY_OF_MODEL_TYPE))}"
        )
    if hook not in HOOK_POINTS:
        raise UnsupportedModelError(f"hook {hook!r} is unknown; expected one of {', '.join(HOOK_POINTS)}")
    return LOCATIONS[family][hook]


def hf_module_name(model_type: str, hook: str, layer: int) -> str:
    """The Hugging Face module path a hook reads, e.g. ``model.layers.3.pre_feedforward_layernorm:input``."""
    submodule, side = locate(model_type, hook)
    path = f"model.layers.{layer}" + (f".{submodule}" if submodule else "")
    return f"{path}:{side}"


# TransformerLens / circuit-tracer hook names (without ``blocks.{l}.``) and what they read.
# ``hook_mlp_in`` is TransformerLens's copy of resid_mid, *before* the norm (a known trap:
# SAELens metadata of Gemma 3 transcoders uses it for what is really resid_mid).
TRANSFORMER_LENS_HOOKS = {
    "hook_resid_pre": "resid_pre",
    "hook_attn_out": "attn_out",
    "hook_resid_mid": "resid_mid",
    "hook_mlp_in": "resid_mid",
    "ln2.hook_normalized": "ln2_normalized",
    "mlp.hook_in": "mlp_in",
    "hook_mlp_out": "mlp_out",
    "mlp.hook_out": "mlp_out",
    "hook_resid_post": "resid_post",
}
_BLOCK_PREFIX = re.compile(r"^blocks\.(\d+|\{layer\})\.")


def project_hook(name: str, where: str) -> str:
    """The project's hook name for a TransformerLens/circuit-tracer name (or a project name)."""
    if name in HOOK_POINTS:
        return name
    bare = _BLOCK_PREFIX.sub("", name)
    if bare in TRANSFORMER_LENS_HOOKS:
        return TRANSFORMER_LENS_HOOKS[bare]
    known = ", ".join([*TRANSFORMER_LENS_HOOKS, *HOOK_POINTS])
    raise UnsupportedModelError(f"{where}: hook {name!r} is unknown; expected one of {known}")
