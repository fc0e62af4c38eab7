"""Synthetic dictionaries for the embedded default: real on-disk formats, clearly labelled, deterministic.

No published SAE or transcoder for Gemma 3 270M is reachable offline, so the default run builds its
own from the model's activations on the default prompts:

- encoder directions are distinct centred activation samples (plus a little seeded noise), made
  orthogonal to the mean activation and unit-normalised;
- each feature's bias (and, for JumpReLU, its threshold) puts its cut in the widest gap between
  calibration values near the quantile that makes it fire on ``target_l0 / d_sae`` of them;
- the decoder (and a PltBundle's ``W_skip``) is a ridge least-squares fit of the target (the input
  for an SAE, the output hook for a transcoder) from the feature activations; each decoder row's
  norm is moved into the encoder and the decoder refitted on the activations of the encoder as
  stored (fp32 or bf16), then scaled to unit rows;
- a CLT's writes into later layers (``W_dec_l[:, 1:]``) are small seeded random directions.

They are not trained dictionaries: every provenance file and manifest says ``synthetic: true``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch
import yaml

from mi_oracle.atomic import atomic_directory, write_json_atomic
from mi_oracle.capture.hooks import HOOK_POINTS
from mi_oracle.capture.plan import PLAN_FILE
from mi_oracle.capture.run import collect_activations
from mi_oracle.dictionaries.locations import CURATION_FILE
from mi_oracle.dictionaries.resolve import SYNTHETIC_PROVENANCE
from mi_oracle.dictionaries.writers import write_npz, write_safetensors
from mi_oracle.environment import describe_environment
from mi_oracle.errors import DictionaryError
from mi_oracle.models.folder import read_json, summarize_config

log = logging.getLogger(__name__)

LABEL = "SYNTHETIC dictionary built by mi-oracle for testing pipelines: not trained, not for interpretation"
DEFAULT_KIND = {
    "GemmaScopeNpz": "transcoder_set",
    "PltBundle": "transcoder_set",
    "CltSplit": "cross_layer_transcoder",
    "CltSplitJumpReLU": "cross_layer_transcoder",
}
DEFAULT_HOOKS = {  # the hooks the published dictionaries of each format use
    ("GemmaScopeNpz", "transcoder_set"): ("ln2_normalized", "mlp_out"),
    ("PltBundle", "transcoder_set"): ("mlp_in", "mlp_out"),
    ("CltSplit", "cross_layer_transcoder"): ("resid_mid", "mlp_out"),
    ("CltSplitJumpReLU", "cross_layer_transcoder"): ("resid_mid", "mlp_out"),
}
CROSS_LAYER_NORM = 0.05
RIDGE = 1e-3


@dataclass(frozen=True)
class SyntheticSet:
    """One synthetic set to build."""

    name: str
    schema: str
    kind: str
    input_hook: str
    output_hook: str
    layers: tuple[int, ...]
    d_sae: int
    target_l0: float
    seed: int

    @property
    def activation(self) -> str:
        return "relu" if self.schema in ("PltBundle", "CltSplit") else "jumprelu"


def plan_set(name: str, spec: Mapping[str, Any], n_layers: int, sae_layers: Sequence[int]) -> SyntheticSet:
    """A SyntheticSet from its config entry: SAEs at ``sae_layers``, transcoders at every layer."""
    schema = spec["schema"]
    kind = spec.get("kind", DEFAULT_KIND[schema])
    if kind == "sae":
        if schema != "GemmaScopeNpz":
            raise DictionaryError(f"dictionaries[{name}].synthetic: SAEs are written as GemmaScopeNpz only")
        hooks = (spec.get("hook", "resid_post"),) * 2
        layers = tuple(sorted(set(sae_layers)))
        if "input_hook" in spec:
            raise DictionaryError(
                f"dictionaries[{name}].synthetic.input_hook: transcoders only; an SAE reads its hook"
            )
    elif (schema, kind) in DEFAULT_HOOKS:
        published_input, output_hook = DEFAULT_HOOKS[(schema, kind)]
        hooks = (spec.get("input_hook", published_input), output_hook)
        layers = tuple(range(n_layers))
    else:
        raise DictionaryError(f"dictionaries[{name}].synthetic: schema {schema} cannot be a {kind}")
    d_sae, target = int(spec.get("d_sae", 1024)), float(spec.get("target_l0", 64))
    if not 0 < target < d_sae:
        raise DictionaryError(f"dictionaries[{name}].synthetic.target_l0: {target} must lie in (0, d_sae)")
    return SyntheticSet(name, schema, kind, *hooks, layers, d_sae, target, int(spec.get("seed", 0)))


def calibration_rows(tokens_dir: Path, n_tokens: int) -> list[list[int]]:
    """The first ``n_tokens`` tokens of the capture plan, shard by shard, as whole prompts (last one cut)."""
    rows: list[list[int]] = []
    total = 0
    for part in sorted(Path(tokens_dir).glob("part-*.parquet")):
        for row in pq.read_table(part, columns=["token_ids"]).column("token_ids").to_pylist():
            take = row[: n_tokens - total]
            if take:
                rows.append(take)
                total += len(take)
            if total >= n_tokens:
                return rows
    return rows


def _activate(pre: np.ndarray, threshold: np.ndarray | None) -> np.ndarray:
    return pre * (pre > threshold) if threshold is not None else np.maximum(pre, 0.0)


def firing_cut(raw: np.ndarray, rate: float) -> np.ndarray:
    """Per column, a cut above which about ``rate`` of the rows lie, in the widest gap nearby.

    The cut sits midway in the widest gap between sorted samples whose rank is within a quarter
    of the target count of the exact quantile, so no calibration value lies near a threshold,
    where rounding the stored weights would flip it.
    """
    n = len(raw)
    target = max(1, round(rate * n))
    spread = max(1, target // 4)
    low, high = max(0, n - target - spread), min(n - 1, n - target + spread)
    window = np.sort(raw, axis=0)[low : high + 1]
    widest = np.argmax(np.diff(window, axis=0), axis=0)[None, :]
    below = np.take_along_axis(window, widest, axis=0)[0]
    above = np.take_along_axis(window, widest + 1, axis=0)[0]
    return (below + above) / 2


def _encoder(
    x: np.ndarray, d_sae: int, target_l0: float, rng: np.random.Generator, jump: bool
) -> dict[str, np.ndarray]:
    """Encoder directions from distinct centred rows, orthogonal to the mean; calibrated biases."""
    mean = x.mean(0)
    centred = x - mean
    # every prompt's BOS row is the same vector: calibrate on distinct rows, so no feature copies
    # it twice and no threshold is set by a block of identical values
    distinct = np.unique(centred, axis=0)
    picks = rng.choice(len(distinct), size=d_sae, replace=len(distinct) < d_sae)
    directions = distinct[picks] + 0.05 * centred.std() * rng.standard_normal((d_sae, x.shape[1]))
    # orthogonal to the mean (the residual stream's large constant part), so the biases stay small
    # and survive bf16 storage
    unit_mean = mean / max(np.linalg.norm(mean), 1e-12)
    directions -= np.outer(directions @ unit_mean, unit_mean)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    raw = distinct @ directions.T
    cut = firing_cut(raw, target_l0 / d_sae)
    margin = 0.5 * raw.std(0) if jump else np.zeros(d_sae)
    encoder = {"W_enc": directions.T.copy(), "b_enc": -(mean @ directions.T) - cut + margin}
    if jump:
        encoder["threshold"] = margin
    return encoder


def _ridge(features: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least squares with a penalty proportional to each column's own energy (scale-invariant)."""
    gram = features.T @ features
    penalty = RIDGE * np.diag(gram) + 1e-12
    return np.linalg.solve(gram + np.diag(penalty), features.T @ target)


def fit_layer(
    x: np.ndarray,
    y: np.ndarray,
    d_sae: int,
    target_l0: float,
    rng: np.random.Generator,
    jump: bool,
    skip: bool,
    dtype: torch.dtype = torch.float32,
) -> dict[str, np.ndarray]:
    """Canonical float64 weights, already rounded to the storage ``dtype``: W_enc [d_in, d_sae],
    b_enc, threshold, W_dec [d_sae, d_out] (unit rows), b_dec, and W_skip [d_out, d_in] when ``skip``.

    The decoder is fitted twice: once to find each feature's scale (moved into the encoder), then
    again on the activations of the rounded, scaled encoder, so it fits what the file will hold.
    """
    x, y = x.astype(np.float64), y.astype(np.float64)
    encoder = _encoder(x, d_sae, target_l0, rng, jump)
    b_dec = y.mean(0)
    for final in (False, True):
        stored = _stored(encoder, dtype)
        acts = _activate(x @ stored["W_enc"] + stored["b_enc"], stored.get("threshold"))
        features = np.concatenate([acts, x], axis=1) if skip else acts
        solution = _ridge(features, y - b_dec)
        w_dec = solution[:d_sae]
        norms = np.linalg.norm(w_dec, axis=1)
        alive = norms > 1e-10
        w_dec[alive] /= norms[alive, None]
        unit_directions = encoder["W_enc"].T / np.linalg.norm(encoder["W_enc"].T, axis=1, keepdims=True)
        w_dec[~alive] = unit_directions[~alive]
        if not final:  # move each row's scale into the encoder, then refit on its rounded form
            encoder = {name: value * np.where(alive, norms, 1.0) for name, value in encoder.items()}
    weights = {**stored, "W_dec": w_dec, "b_dec": b_dec}
    if skip:
        weights["W_skip"] = solution[d_sae:].T.copy()  # [d_out, d_in]: skip = W_skip @ x
    return _stored(weights, dtype)


def evaluate(weights: Mapping[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Mean L0, MSE, zero-baseline MSE and fraction of variance unexplained of stored weights."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    acts = _activate(x @ weights["W_enc"] + weights["b_enc"], weights.get("threshold"))
    out = acts @ weights["W_dec"] + weights["b_dec"]
    if "W_skip" in weights:
        out += x @ weights["W_skip"].T
    mse = float(((out - y) ** 2).mean())
    return {
        "mean_l0": float((acts > 0).sum(1).mean()),
        "mse": mse,
        "zero_baseline_mse": float((y**2).mean()),
        "fvu": mse / float(((y - y.mean(0)) ** 2).mean()),
    }


def _stored(weights: Mapping[str, np.ndarray], dtype: torch.dtype) -> dict[str, np.ndarray]:
    """The weights as the file will hold them (rounded to ``dtype``), back in float64."""
    return {k: torch.from_numpy(v).to(dtype).to(torch.float64).numpy() for k, v in weights.items()}


def _width_label(d_sae: int) -> str:
    return f"{d_sae // 1024}k" if d_sae % 1024 == 0 else str(d_sae)


def _tensor(array: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).to(dtype)


class _Writer:
    """Writes one set's files in its schema's layout and collects the YAML's entries."""

    def __init__(self, spec: SyntheticSet, folder: Path, n_layers: int, seed_rng: np.random.Generator):
        self.spec, self.folder, self.n_layers, self.rng = spec, folder, n_layers, seed_rng
        self.entries: list[Any] = []
        self.metadata = {"format": spec.schema, "synthetic": "true", "label": LABEL}

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32 if self.spec.schema == "GemmaScopeNpz" else torch.bfloat16

    def write(self, layer: int, weights: dict[str, np.ndarray], mean_l0: float) -> None:
        spec = self.spec
        if spec.schema == "GemmaScopeNpz":
            relative = (
                f"layer_{layer}/width_{_width_label(spec.d_sae)}/average_l0_{round(mean_l0)}/params.npz"
            )
            write_npz(self.folder / relative, {k: v.astype(np.float32) for k, v in weights.items()})
            self.entries.append({"id": f"{spec.name}-{layer}", "layer": layer, "filepath": relative})
        elif spec.schema == "PltBundle":
            tensors = {k: _tensor(v.T if k == "W_enc" else v, self.dtype) for k, v in weights.items()}
            write_safetensors(self.folder / f"layer_{layer}.safetensors", tensors, self.metadata)
        else:
            encoder = {
                f"W_enc_{layer}": _tensor(weights["W_enc"].T, self.dtype),
                f"b_enc_{layer}": _tensor(weights["b_enc"], self.dtype),
                f"b_dec_{layer}": _tensor(weights["b_dec"], self.dtype),
            }
            if "threshold" in weights:
                encoder[f"threshold_{layer}"] = _tensor(weights["threshold"], self.dtype)
            write_safetensors(self.folder / f"W_enc_{layer}.safetensors", encoder, self.metadata)
            decoder = self.rng.standard_normal((spec.d_sae, self.n_layers - layer, weights["W_dec"].shape[1]))
            decoder *= CROSS_LAYER_NORM / np.linalg.norm(decoder, axis=2, keepdims=True)
            decoder[:, 0] = weights["W_dec"]
            write_safetensors(
                self.folder / f"W_dec_{layer}.safetensors",
                {f"W_dec_{layer}": _tensor(decoder, self.dtype)},
                self.metadata,
            )

    def curation(self, model_repo: str | None) -> dict[str, Any]:
        spec = self.spec
        document: dict[str, Any] = {
            "model_name": model_repo,
            "model_kind": spec.kind,
            "feature_input_hook": HOOK_POINTS[spec.input_hook].transformer_lens.split("}.", 1)[1],
            "feature_output_hook": HOOK_POINTS[spec.output_hook].transformer_lens.split("}.", 1)[1],
        }
        if spec.activation == "relu":
            document["activation"] = "relu"
        if self.entries:
            document["transcoders"] = (
                self.entries if spec.kind == "sae" else [e["filepath"] for e in self.entries]
            )
        return document


def build_set(
    spec: SyntheticSet,
    activations: Mapping[tuple[str, int], np.ndarray],
    target: Path,
    n_layers: int,
    model: Mapping[str, Any],
    calibration: Mapping[str, Any],
) -> dict[str, Any]:
    """Fit, write and describe one synthetic set in ``target`` (atomically)."""
    quality = {}
    with atomic_directory(Path(target)) as staging:
        writer = _Writer(spec, staging, n_layers, np.random.default_rng([spec.seed, n_layers]))
        for layer in spec.layers:
            x, y = activations[(spec.input_hook, layer)], activations[(spec.output_hook, layer)]
            rng = np.random.default_rng([spec.seed, layer])
            stored = fit_layer(
                x,
                y,
                spec.d_sae,
                spec.target_l0,
                rng,
                spec.activation == "jumprelu",
                skip=spec.schema == "PltBundle",
                dtype=writer.dtype,
            )
            quality[str(layer)] = evaluate(stored, x, y)
            writer.write(layer, stored, quality[str(layer)]["mean_l0"])
            log.info("%s layer %d: %s", spec.name, layer, quality[str(layer)])
        header = f"# {LABEL}\n# Set {spec.name}: {spec.schema}, built by rule build_synthetic_dictionaries.\n"
        body = yaml.safe_dump(writer.curation(model.get("repo")), sort_keys=False)
        (staging / CURATION_FILE).write_text(header + body, encoding="utf-8")
        provenance = {
            "synthetic": True,
            "label": LABEL,
            "set": spec.name,
            "schema": spec.schema,
            "kind": spec.kind,
            "input_hook": spec.input_hook,
            "output_hook": spec.output_hook,
            "activation": spec.activation,
            "d_sae": spec.d_sae,
            "target_l0": spec.target_l0,
            "seed": spec.seed,
            "method": __doc__.split("\n\n", 2)[1],
            "calibration": dict(calibration),
            "model": dict(model),
            "layers": quality,
            "environment": describe_environment(),
        }
        write_json_atomic(staging / SYNTHETIC_PROVENANCE, provenance)
    return provenance


def build_synthetic_sets(
    model_dir: Path,
    tokens_dir: Path,
    definitions: Mapping[str, Mapping[str, Any]],
    targets: Mapping[str, Path],
    capture_settings: Mapping[str, Any],
    calibration_tokens: int,
    threads: int = 1,
) -> dict[str, dict[str, Any]]:
    """Build every synthetic set in ``definitions`` (name -> its ``synthetic`` entry) from one forward."""
    summary = summarize_config(model_dir)
    n_layers = int(summary["num_hidden_layers"])
    provenance = read_json(Path(model_dir) / "provenance.json")
    model = {
        "name": provenance.get("name"),
        "repo": provenance.get("repo"),
        "resolved_revision": provenance.get("resolved_revision"),
        "hidden_size": summary["hidden_size"],
        "num_hidden_layers": n_layers,
    }
    specs = [plan_set(name, spec, n_layers, capture_settings["layers"]) for name, spec in definitions.items()]
    points = sorted(
        {(hook, layer) for s in specs for layer in s.layers for hook in (s.input_hook, s.output_hook)}
    )
    rows = calibration_rows(tokens_dir, calibration_tokens)
    n_tokens = sum(len(row) for row in rows)
    plan = read_json(Path(tokens_dir) / PLAN_FILE)
    calibration = {
        "n_tokens": n_tokens,
        "n_prompts": len(rows),
        "prompt_set": plan["prompt_set"],
        "tokenization": plan["tokenization"],
    }
    log.info(
        "calibrating %d synthetic sets on %d tokens at %d hook points", len(specs), n_tokens, len(points)
    )
    activations = collect_activations(model_dir, rows, points, capture_settings, threads)
    return {
        spec.name: build_set(spec, activations, targets[spec.name], n_layers, model, calibration)
        for spec in specs
    }
