"""Deterministic numbers for reference JSON: fp32 values as Python floats, stable top-k order."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from mi_oracle.devices import torch_threads

TOP_K = 10


def f32(value: float | np.floating | torch.Tensor) -> float:
    """``value`` rounded to float32 and returned as the Python float (double) of that float32.

    JSON then holds the shortest decimal that reads back to the same double, as candle-mi's
    references do (``-1.1258398294448853``), and two runs write the same characters.
    """
    if isinstance(value, torch.Tensor):
        value = value.item()
    return float(np.float32(value))


def f32_list(values: np.ndarray | torch.Tensor) -> list[float]:
    """A vector as a list of :func:`f32` values."""
    if isinstance(values, torch.Tensor):
        values = values.detach().to(torch.float32).cpu().numpy()
    return [float(v) for v in np.asarray(values, dtype=np.float32)]


def top_indices(values: np.ndarray, k: int, keep: np.ndarray | None = None) -> np.ndarray:
    """Indices of the ``k`` largest of ``values`` (among ``keep`` when given), largest first.

    Ties go to the lower index, so the order never depends on a sort's internal choices.
    """
    values = np.asarray(values)
    candidates = np.arange(values.shape[0]) if keep is None else np.flatnonzero(keep)
    order = np.lexsort((candidates, -values[candidates].astype(np.float64)))
    return candidates[order[:k]]


@contextmanager
def deterministic_torch(threads: int = 1) -> Iterator[None]:
    """Deterministic algorithms on a fixed number of threads for the block; restored afterwards."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    _use_deterministic_algorithms(True)
    try:
        with torch_threads(threads):
            yield
    finally:
        _use_deterministic_algorithms(was_deterministic)


def _use_deterministic_algorithms(mode: bool) -> None:
    """``torch.use_deterministic_algorithms(mode)`` without importing ``torch._inductor`` for it.

    The public call imports the inductor (about 2 s a process here) only to set the same switch
    for compiled graphs; references compile none, so while no one has imported the inductor, the
    ATen switch alone is the whole effect.
    """
    if "torch._inductor" in sys.modules:
        torch.use_deterministic_algorithms(mode)
    else:
        torch._C._set_deterministic_algorithms(mode)


def seeded_residual(seed: int, d_model: int) -> torch.Tensor:
    """candle-mi's residual recipe, ``torch.manual_seed(seed); torch.randn(d_model)``, fp32, on any CPU.

    torch.randn's Box-Muller (16 values from 8 pairs of seeded uniforms, the last 16 drawn anew
    when ``d_model`` is no multiple of 16) with float32 arithmetic as its AVX2 kernel does it, and
    log, cos and sin correctly rounded from the ``math`` module instead of the kernel's (which
    change with the CPU: without AVX2 torch gives values 1.8e-6 from candle-mi's). The result lies
    within 2.4e-7 of torch.randn on AVX2 and AVX-512 CPUs and of candle-mi's fixtures.
    """
    if d_model < 16:  # torch draws each value from a float64 normal below 16 values
        return torch.randn(d_model, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
    extra = 16 if d_model % 16 else 0
    uniforms = torch.rand(d_model + extra, generator=torch.Generator().manual_seed(seed)).numpy()
    values = uniforms[:d_model].copy()
    for start in range(0, d_model - 15, 16):
        values[start : start + 16] = _box_muller_16(uniforms[start : start + 16])
    if extra:
        values[-16:] = _box_muller_16(uniforms[d_model:])
    return torch.from_numpy(values)


def _box_muller_16(uniforms: np.ndarray) -> np.ndarray:
    u1, u2 = np.float32(1) - uniforms[:8], uniforms[8:]
    log = np.array([math.log(float(u)) for u in u1], dtype=np.float32)
    radius = np.sqrt(np.float32(-2) * log)
    theta = np.float32(2 * math.pi) * u2
    cos = np.array([math.cos(float(t)) for t in theta], dtype=np.float32)
    sin = np.array([math.sin(float(t)) for t in theta], dtype=np.float32)
    return np.concatenate([radius * cos, radius * sin])


def case_seeds(layer: int, n_seeds: int) -> list[int]:
    """The seeds of one layer's cases: ``seed_idx * 100 + layer`` for each ``seed_idx``."""
    return [seed_idx * 100 + layer for seed_idx in range(n_seeds)]


def encoder_case(layer: int, seed: int, residual: torch.Tensor, values: np.ndarray) -> dict:
    """One plt/clt case: the residual, how many features fire (> 0) and the top ten of them."""
    positive = values > 0
    n_active = int(positive.sum())
    top = top_indices(values, min(TOP_K, n_active), keep=positive)
    return {
        "layer": layer,
        "seed": seed,
        "residual": f32_list(residual),
        "n_active": n_active,
        "top_10": [{"index": int(i), "activation": f32(values[i])} for i in top],
    }
