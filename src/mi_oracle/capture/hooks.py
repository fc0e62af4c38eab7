"""Hook points by the project's names, where each lives in Hugging Face models, and a recorder.

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

import contextlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch

from mi_oracle.errors import MiOracleError


class UnsupportedModelError(MiOracleError):
    """The model family or the hook point is not one the capture knows."""


@dataclass(frozen=True)
class HookPoint:
    """A hook point: project name, TransformerLens name template and meaning."""

    name: str
    transformer_lens: str
    meaning: str


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


class StopForward(Exception):
    """Raised inside the deepest needed layer to skip the rest of the forward pass."""


def rms_normalize(x: torch.Tensor, eps: float) -> torch.Tensor:
    """x / sqrt(mean(x^2) + eps) in fp32, as the models' RMSNorms compute it before the gain."""
    x = x.float()
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def _norm_eps(module: torch.nn.Module) -> float:
    for attribute in ("eps", "variance_epsilon"):
        if hasattr(module, attribute):
            return float(getattr(module, attribute))
    raise UnsupportedModelError(f"{type(module).__name__} has no eps; cannot compute ln2_normalized")


def _first_tensor(value: Any) -> torch.Tensor:
    return value[0] if isinstance(value, tuple) else value


class ActivationRecorder:
    """Register hooks that record each requested (hook, layer) and stop after the deepest layer."""

    def __init__(self, layers: torch.nn.ModuleList, model_type: str, points: Iterable[tuple[str, int]]):
        self.points = sorted(set(points), key=lambda p: (p[1], list(HOOK_POINTS).index(p[0])))
        if not self.points:
            raise UnsupportedModelError("no hook points requested")
        n_layers = len(layers)
        for hook, layer in self.points:
            locate(model_type, hook)
            if not 0 <= layer < n_layers:
                raise UnsupportedModelError(
                    f"layer {layer} does not exist: the model has layers 0..{n_layers - 1}"
                )
        self._sink: Callable[[tuple[str, int], torch.Tensor], None] | None = None
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        for hook, layer in self.points:
            submodule, side = locate(model_type, hook)
            module = layers[layer].get_submodule(submodule) if submodule else layers[layer]
            self._handles.append(self._register(module, side, (hook, layer)))
        self.deepest = max(layer for _, layer in self.points)
        self._handles.append(layers[self.deepest].register_forward_hook(self._stop))

    def _register(self, module: torch.nn.Module, side: str, key: tuple[str, int]):
        if side == "output":

            def on_output(_module, _args, output):
                self._record(key, _first_tensor(output))

            return module.register_forward_hook(on_output)
        eps = _norm_eps(module) if side == "input_rms" else None

        def on_input(_module, args, kwargs):
            x = args[0] if args else kwargs["hidden_states"]
            self._record(key, rms_normalize(x, eps) if eps is not None else x)

        return module.register_forward_pre_hook(on_input, with_kwargs=True)

    def _record(self, key: tuple[str, int], value: torch.Tensor) -> None:
        if self._sink is not None:
            self._sink(key, value.detach())

    @staticmethod
    def _stop(_module, _args, _output):
        raise StopForward

    def run(
        self, base_model: torch.nn.Module, keep: torch.Tensor | None = None, **inputs: torch.Tensor
    ) -> dict[tuple[str, int], torch.Tensor]:
        """Run ``base_model`` (the decoder without its LM head) until the deepest layer; return the values.

        ``keep``: a [batch, seq] bool mask; each value is then only its rows where ``keep`` is
        true ([n_kept, d_model]), else the whole [batch, seq, d_model] tensor.
        """
        values: dict[tuple[str, int], torch.Tensor] = {}

        def store(key: tuple[str, int], value: torch.Tensor) -> None:
            # Keeping only the real positions copies them out at once, so the padded activation
            # is freed as soon as the forward is done with it.
            values[key] = value if keep is None else value[keep]

        self.stream(base_model, store, **inputs)
        return values

    def stream(
        self,
        base_model: torch.nn.Module,
        sink: Callable[[tuple[str, int], torch.Tensor], None],
        **inputs: torch.Tensor,
    ) -> None:
        """Run ``base_model`` until the deepest layer, handing ``sink`` each (point, value) as it fires.

        The value is the padded [batch, seq, d_model] tensor; a sink that copies out the rows it
        keeps lets the forward free the value as soon as it is done with it.
        """
        fired: set[tuple[str, int]] = set()

        def record(key: tuple[str, int], value: torch.Tensor) -> None:
            fired.add(key)
            sink(key, value)

        self._sink = record
        try:
            with contextlib.suppress(StopForward):
                base_model(**inputs, use_cache=False)
        finally:
            self._sink = None
        missing = [key for key in self.points if key not in fired]
        if missing:
            raise RuntimeError(f"hooks did not fire for {missing}")

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


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
