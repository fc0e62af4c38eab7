"""The arithmetic of a synthetic dictionary layer, in float64 torch (pinned kernels in portable mode).

- encoder directions are distinct centred activation samples, taken in corpus order (never in
  an order that depends on their values), plus a little seeded noise, made orthogonal to the
  mean activation and unit-normalised;
- each direction is scaled by ``ENCODER_GAIN / rms(input)``, so a feature's activation on
  inputs of the calibration's size is in the tens, as the published sets' are on candle-mi's
  unit Gaussian test residuals (for unit-RMS inputs such as ``ln2_normalized``);
- each feature's bias (and, for JumpReLU, its threshold) puts its cut in the widest gap between
  calibration values near the quantile that makes it fire on ``target_l0 / d_sae`` of them;
- the decoder (and a PltBundle's ``W_skip``) is a ridge least-squares fit of the target (the
  input for an SAE, the output hook for a transcoder) from the activations of the encoder as it
  will be stored (fp32 or bf16).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

ENCODER_GAIN = 10.0
RIDGE = 1e-3
F64 = torch.float64


def distinct_rows(x: torch.Tensor) -> torch.Tensor:
    """The rows of ``x`` without repeats, each at its first position in the corpus.

    Every prompt's BOS row is the same vector: calibrating on distinct rows keeps any feature from
    copying it twice and any threshold from being set by a block of identical values.
    """
    seen: set[bytes] = set()
    keep = []
    for index, row in enumerate(x.numpy()):
        key = row.tobytes()
        if key not in seen:
            seen.add(key)
            keep.append(index)
    return x[keep]


def firing_cut(raw: torch.Tensor, rate: float) -> torch.Tensor:
    """Per column, a cut above which about ``rate`` of the rows lie, in the widest gap nearby.

    The cut sits midway in the widest gap between sorted samples whose rank is within a quarter
    of the target count of the exact quantile, so no calibration value lies near a threshold,
    where rounding the stored weights would flip it.
    """
    n = raw.shape[0]
    target = max(1, round(rate * n))
    spread = max(1, target // 4)
    low, high = max(0, n - target - spread), min(n - 1, n - target + spread)
    # ascending ranks low..high: the largest n - low values, ascending (exact, no full sort)
    window = torch.flip(torch.topk(raw, n - low, dim=0).values, [0])[: high - low + 1]
    widest = torch.argmax(torch.diff(window, dim=0), dim=0)[None, :]
    below = torch.take_along_dim(window, widest, dim=0)[0]
    above = torch.take_along_dim(window, widest + 1, dim=0)[0]
    return (below + above) / 2


def activate(pre: torch.Tensor, threshold: torch.Tensor | None) -> torch.Tensor:
    """JumpReLU ``pre * (pre > threshold)`` with a threshold, else ReLU."""
    return pre * (pre > threshold) if threshold is not None else torch.clamp(pre, min=0.0)


def encoder(
    x: torch.Tensor, d_sae: int, target_l0: float, rng: np.random.Generator, jump: bool
) -> dict[str, torch.Tensor]:
    """W_enc [d_in, d_sae], b_enc and (JumpReLU) threshold, in float64, from inputs ``x``."""
    mean = x.mean(0)
    centred = x - mean
    distinct = distinct_rows(centred)
    picks = torch.from_numpy(rng.choice(len(distinct), size=d_sae, replace=len(distinct) < d_sae))
    noise = torch.from_numpy(rng.standard_normal((d_sae, x.shape[1])))
    directions = distinct[picks] + 0.05 * centred.std() * noise
    # orthogonal to the mean (the residual stream's large constant part), so the biases stay small
    # and survive bf16 storage
    unit_mean = mean / torch.clamp(torch.linalg.vector_norm(mean), min=1e-12)
    directions -= torch.outer(directions @ unit_mean, unit_mean)
    directions /= torch.linalg.vector_norm(directions, dim=1, keepdim=True)
    raw = distinct @ directions.T
    cut = firing_cut(raw, target_l0 / d_sae)
    margin = 0.5 * raw.std(0) if jump else torch.zeros(d_sae, dtype=F64)
    scale = ENCODER_GAIN / torch.sqrt(torch.mean(x * x))
    weights = {
        "W_enc": (directions.T * scale).contiguous(),
        "b_enc": scale * (margin - cut - directions @ mean),
    }
    if jump:
        weights["threshold"] = scale * margin
    return weights


def ridge(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Least squares with a penalty proportional to each column's own energy (scale-invariant)."""
    gram = features.T @ features
    penalty = RIDGE * torch.diagonal(gram) + 1e-12
    return torch.linalg.solve(gram + torch.diag(penalty), features.T @ target)


def stored(weights: Mapping[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The weights as the file will hold them (rounded to ``dtype``), back in float64."""
    return {name: value.to(dtype).to(F64) for name, value in weights.items()}


def fit_layer(
    x: torch.Tensor,
    y: torch.Tensor,
    d_sae: int,
    target_l0: float,
    rng: np.random.Generator,
    jump: bool,
    skip: bool,
    dtype: torch.dtype = torch.float32,
) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Float64 weights already rounded to the storage ``dtype`` (W_enc [d_in, d_sae], b_enc,
    threshold for JumpReLU, W_dec [d_sae, d_out], b_dec, and W_skip [d_out, d_in] when ``skip``),
    and their quality on the calibration (:func:`evaluate`).
    """
    x, y = x.to(F64), y.to(F64)
    weights = stored(encoder(x, d_sae, target_l0, rng, jump), dtype)
    acts = activate(x @ weights["W_enc"] + weights["b_enc"], weights.get("threshold"))
    b_dec = y.mean(0)
    features = torch.cat([acts, x], dim=1) if skip else acts
    solution = ridge(features, y - b_dec)
    w_dec = solution[:d_sae].clone()
    # a feature that never fired in calibration writes along its own (unit) encoder direction
    dead = torch.linalg.vector_norm(w_dec, dim=1) <= 1e-10
    unit = weights["W_enc"].T / torch.linalg.vector_norm(weights["W_enc"].T, dim=1, keepdim=True)
    w_dec[dead] = unit[dead]
    weights |= {"W_dec": w_dec, "b_dec": b_dec}
    if skip:
        weights["W_skip"] = solution[d_sae:].T.contiguous()  # [d_out, d_in]: skip = W_skip @ x
    weights = stored(weights, dtype)
    return weights, evaluate(weights, x, y, acts)


def evaluate(
    weights: Mapping[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, acts: torch.Tensor | None = None
) -> dict[str, float]:
    """Mean L0, MSE, zero-baseline MSE and fraction of variance unexplained of stored weights
    (``acts``: their activations on ``x``, when already computed)."""
    x, y = x.to(F64), y.to(F64)
    if acts is None:
        acts = activate(x @ weights["W_enc"] + weights["b_enc"], weights.get("threshold"))
    out = acts @ weights["W_dec"] + weights["b_dec"]
    if "W_skip" in weights:
        out += x @ weights["W_skip"].T
    mse = float(torch.mean((out - y) ** 2))
    return {
        "mean_l0": float((acts > 0).sum(1).to(F64).mean()),
        "mse": mse,
        "zero_baseline_mse": float(torch.mean(y**2)),
        "fvu": mse / float(torch.mean((y - y.mean(0)) ** 2)),
    }
