"""Record hook points during a Hugging Face forward, and stop after the deepest one needed.

Where each hook point lives is ``mi_oracle.hook_points``; this module holds the torch side.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any

import torch

from mi_oracle.hook_points import HOOK_POINTS, UnsupportedModelError, locate


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
