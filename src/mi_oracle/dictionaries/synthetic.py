"""Synthetic dictionaries for the embedded default: real on-disk formats, clearly labelled, deterministic.

No published SAE or transcoder for Gemma 3 270M is reachable offline, so the default run builds its
own from the model's activations on the default prompts (the arithmetic: ``synthetic_fit``). The
calibration forward and the fit run in portable numerics by default, so the same config writes the
same bytes on any x86-64 machine. A CLT's writes into later layers (``W_dec_l[:, 1:]``) are small
seeded random directions.

They are not trained dictionaries: every provenance file and manifest says ``synthetic: true``.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mi_oracle.atomic import atomic_directory, write_json_atomic
from mi_oracle.capture.plan import make_plan, read_plan
from mi_oracle.capture.run import collect_activations
from mi_oracle.config import calibration_settings
from mi_oracle.dictionaries.synthetic_plan import calibration_rows, plan_set
from mi_oracle.dictionaries.synthetic_writer import build_set
from mi_oracle.json_files import read_json
from mi_oracle.models.folder import summarize_config
from mi_oracle.models.provenance import model_identity
from mi_oracle.numerics.mode import PORTABLE, Numerics

log = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration.json"
ONE_SHARD = 2**62  # the calibration's own plan: every prompt in one shard


def calibrate(
    model_dir: Path,
    tokens_dir: Path,
    definitions: Mapping[str, Mapping[str, Any]],
    target: Path,
    capture_settings: Mapping[str, Any],
    calibration_tokens: int,
    numerics: Numerics | Mapping[str, Any] = PORTABLE,
) -> dict[str, Any]:
    """Run the calibration forward once for every set in ``definitions`` and save it in ``target``.

    ``target`` holds one float32 ``.npy`` per (hook, layer) the sets read and ``calibration.json``
    (the tokens taken, the model, the numerics), what :func:`build_one` fits a set from. In
    portable numerics (the default) the forward runs in float32 on the CPU in a pinned child
    interpreter, so the arrays are the same on any x86-64 machine.
    """
    numerics = Numerics.of(numerics)
    return numerics.run(
        _calibrate,
        model_dir=Path(model_dir),
        tokens_dir=Path(tokens_dir),
        definitions=dict(definitions),
        target=Path(target),
        capture_settings=dict(calibration_settings(capture_settings, numerics.mode)),
        calibration_tokens=calibration_tokens,
        numerics=numerics.record(),
    )


def calibrate_from_prompts(
    model_dir: Path,
    prompts_path: Path,
    plan_settings: Mapping[str, Any],
    text_field: str,
    definitions: Mapping[str, Mapping[str, Any]],
    target: Path,
    capture_settings: Mapping[str, Any],
    calibration_tokens: int,
    numerics: Numerics | Mapping[str, Any] = PORTABLE,
) -> dict[str, Any]:
    """:func:`calibrate` on the prompts tokenized here as the capture plan tokenizes them, not on
    a run's plan: the synthetic sets are the same for every run of the same prompts and model, so
    configurations with other runs in one folder share them (their inputs and params are equal)."""
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".tokens-", dir=Path(target).parent) as scratch:
        tokens_dir = Path(scratch) / "tokens"
        one_shard = {**plan_settings, "shard_tokens": ONE_SHARD}
        make_plan(Path(model_dir), Path(prompts_path), one_shard, text_field, tokens_dir)
        return calibrate(
            model_dir, tokens_dir, definitions, target, capture_settings, calibration_tokens, numerics
        )


def build_one(
    name: str,
    definition: Mapping[str, Any],
    calibration_dir: Path,
    target: Path,
    numerics: Numerics | Mapping[str, Any] = PORTABLE,
) -> dict[str, Any]:
    """Fit and write synthetic set ``name`` (its ``synthetic`` entry) from a :func:`calibrate` folder."""
    numerics = Numerics.of(numerics)
    return numerics.run(
        _build_one,
        name=name,
        definition=dict(definition),
        calibration_dir=Path(calibration_dir),
        target=Path(target),
    )


def build_synthetic_sets(
    model_dir: Path,
    tokens_dir: Path,
    definitions: Mapping[str, Mapping[str, Any]],
    targets: Mapping[str, Path],
    capture_settings: Mapping[str, Any],
    calibration_tokens: int,
    numerics: Numerics | Mapping[str, Any] = PORTABLE,
) -> dict[str, dict[str, Any]]:
    """Every set in ``definitions``: one calibration (in a scratch folder beside the first
    target), then each set's fit; the workflow runs the same steps as separate jobs."""
    parent = Path(next(iter(targets.values()))).parent
    parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".calibration-", dir=parent) as scratch:
        calibration = Path(scratch) / "calibration"
        calibrate(
            model_dir, tokens_dir, definitions, calibration, capture_settings, calibration_tokens, numerics
        )
        return {
            name: build_one(name, definition, calibration, Path(targets[name]), numerics)
            for name, definition in definitions.items()
        }


def _point_file(hook: str, layer: int) -> str:
    return f"{hook}.{layer}.npy"


def _calibrate(
    model_dir: str | Path,
    tokens_dir: str | Path,
    definitions: Mapping[str, Mapping[str, Any]],
    target: str | Path,
    capture_settings: Mapping[str, Any],
    calibration_tokens: int,
    numerics: Mapping[str, Any],
) -> dict[str, Any]:
    model_dir, tokens_dir = Path(model_dir), Path(tokens_dir)
    summary = summarize_config(model_dir)
    n_layers = int(summary["num_hidden_layers"])
    model = {
        **model_identity(model_dir),
        "hidden_size": summary["hidden_size"],
        "num_hidden_layers": n_layers,
    }
    specs = [plan_set(name, spec, n_layers, capture_settings["layers"]) for name, spec in definitions.items()]
    points = sorted(
        {(hook, layer) for s in specs for layer in s.layers for hook in (s.input_hook, s.output_hook)}
    )
    taken = calibration_rows(tokens_dir, calibration_tokens)
    rows = [tokens for _, tokens in taken]
    n_tokens = sum(len(row) for row in rows)
    plan = read_plan(Path(tokens_dir))
    calibration = {
        "n_tokens": n_tokens,
        "n_prompts": len(rows),
        "prompts": [[prompt_id, len(tokens)] for prompt_id, tokens in taken],
        "prompt_set": plan["prompt_set"],
        "tokenization": plan["tokenization"],
    }
    log.info(
        "calibrating %d synthetic sets on %d tokens at %d hook points", len(specs), n_tokens, len(points)
    )
    activations = collect_activations(model_dir, rows, points, capture_settings, numerics["threads"])
    record = {
        "calibration": calibration,
        "model": model,
        "sae_layers": list(capture_settings["layers"]),
        "numerics": dict(numerics),
        "points": [[hook, layer] for hook, layer in points],
    }
    with atomic_directory(Path(target)) as staging:
        for (hook, layer), array in activations.items():
            np.save(staging / _point_file(hook, layer), array, allow_pickle=False)
        write_json_atomic(staging / CALIBRATION_FILE, record)
    return record


def _build_one(
    name: str, definition: Mapping[str, Any], calibration_dir: str | Path, target: str | Path
) -> dict[str, Any]:
    calibration_dir = Path(calibration_dir)
    record = read_json(calibration_dir / CALIBRATION_FILE)
    n_layers = int(record["model"]["num_hidden_layers"])
    spec = plan_set(name, definition, n_layers, record["sae_layers"])
    activations = {
        (hook, layer): np.load(calibration_dir / _point_file(hook, layer), allow_pickle=False)
        for layer in spec.layers
        for hook in {spec.input_hook, spec.output_hook}
    }
    return build_set(
        spec, activations, Path(target), n_layers, record["model"], record["calibration"], record["numerics"]
    )
