"""Every path and file name under ``resources/`` and ``results/``: the rule files and the package
build paths here and nowhere else (no torch: the Snakefile imports it).

Activations, tokens and features are hive-partitioned Parquet datasets: ``hook=<H>/layer=<L>/
part-<S>.parquet`` per shard ``S`` of the capture plan; a shard's features are one folder,
``shard=<S>/``, holding ``layer=<L>/features.parquet`` per layer and ``_sums.json`` (the metric
sums), so a set's folder reads as one dataset with columns ``shard`` and ``layer`` (files starting
with ``_`` or ``.`` are not data).
"""

from __future__ import annotations

from pathlib import Path

PROVENANCE_FILE = "provenance.json"  # beside a fetched model's files, and a synthetic set's
PLAN_FILE = "_plan.json"  # in the tokens folder: Parquet readers skip it
SUMS_FILE = "_sums.json"  # in a shard's features folder
CURATION_FILE = "config.yaml"  # a curation YAML, as circuit-tracer names it


def shard_name(index: int) -> str:
    """The name of the ``index``-th shard of a capture plan: ``00000``, ``00001``, ..."""
    return f"{index:05d}"


def part_file(shard: str) -> str:
    """The file name of one shard's part of a dataset."""
    return f"part-{shard}.parquet"


def model_dir(name: str) -> str:
    """The fetched model folder every stage reads."""
    return f"resources/models/{name}"


def tokens_dir(run: str) -> str:
    """The capture plan: one tokens table per shard and ``_plan.json``."""
    return f"results/tokens/{run}"


def tokens_file(tokens_folder: str | Path, shard: str) -> Path:
    """One shard's tokens table inside the plan folder."""
    return Path(tokens_folder) / part_file(shard)


def activations_dir(run: str) -> str:
    """The root of a run's activation dataset."""
    return f"results/activations/{run}"


def activation_file(root: str | Path, hook: str, layer: int, shard: str) -> Path:
    """One (hook, layer) file of one shard inside an activation dataset rooted at ``root``."""
    return Path(root) / f"hook={hook}" / f"layer={layer}" / part_file(shard)


def activation_path(run: str, hook: str, layer: int, shard: str) -> str:
    """One (hook, layer) file of one shard of run ``run``, relative to the workdir."""
    return str(activation_file(activations_dir(run), hook, layer, shard))


def calibration_dir() -> str:
    """The synthetic sets' calibration activations (temporary: removed once every set is built)."""
    return "results/synthetic/.calibration"


SYNTHETIC_ROOT = "results/synthetic"


def synthetic_dir(name: str) -> str:
    """The folder the workflow writes a synthetic set into (its config.yaml and weights)."""
    return f"{SYNTHETIC_ROOT}/{name}"


def manifest_path(name: str) -> str:
    """The resolved manifest of one dictionary set."""
    return f"results/curation/{name}/manifest.json"


def dictionary_files_dir(name: str) -> str:
    """Where resolution stages a set's hub files (``<repo>/<path>``)."""
    return f"resources/dictionaries/{name}"


def features_dir(run: str, name: str, shard: str) -> str:
    """One shard's features of one set: a file per encoded layer and the metric sums."""
    return f"results/features/{run}/{name}/shard={shard}"


def features_file(shard_dir: str | Path, layer: int) -> Path:
    """The features of one layer inside a shard's folder."""
    return Path(shard_dir) / f"layer={layer}" / "features.parquet"


def metrics_path(run: str, name: str, table: bool = False) -> str:
    """A set's metrics over every shard: ``metrics.json``, or ``metrics.tsv`` with ``table``."""
    return f"results/features/{run}/{name}/metrics.{'tsv' if table else 'json'}"


NUMERICS_MODES = ("portable", "native")  # the folders references are generated into


def references_dir(model: str, numerics: str = "portable") -> str:
    """The references made from one model, in a numerics mode's folder (``portable``: the ones to
    commit): ``<name>.json`` each, and ``provenance/<name>.json`` beside them."""
    return f"results/references/{numerics}/{model}"


def reference_file(folder: str | Path, name: str) -> Path:
    """A reference in its model's folder."""
    return Path(folder) / f"{name}.json"


def reference_provenance_file(folder: str | Path, name: str) -> Path:
    """A reference's provenance: the machine it ran on and the reference's sha256, or (a reference
    this machine cannot make) what the machine lacks."""
    return Path(folder) / "provenance" / f"{name}.json"


def log_path(rule: str, *parts: str) -> str:
    """A rule's log: ``results/logs/<rule>[/<part>...].log`` (parts may hold wildcards)."""
    return "/".join(["results/logs", rule, *parts]) + ".log"


def benchmark_path(rule: str, *parts: str) -> str:
    """A rule's benchmark table: ``results/benchmarks/<rule>[/<part>...].tsv``."""
    return "/".join(["results/benchmarks", rule, *parts]) + ".tsv"


REFERENCE_CHECK = "results/reports/reference_check.json"
# What a run's cross-validation reads and writes: keyed by run, so configurations with other runs
# in one folder never make each other's outputs outdated.


def report_path(run: str, suffix: str = "html") -> str:
    """A run's cross-validation report: ``crossval.html``, or ``crossval.json`` with ``suffix="json"``."""
    return f"results/reports/{run}/crossval.{suffix}"


def capture_check_path(run: str) -> str:
    """A run's capture cross-check (the report's input)."""
    return f"results/reports/{run}/crossval/capture.json"


def encoder_check_path(run: str, name: str) -> str:
    """The cross-checks of one set's encoders on a run's first shard (the report's input)."""
    return f"results/reports/{run}/crossval/encoders/{name}.json"


def peer_dir(run: str, peer: str) -> str:
    """The folder a peer (``circuit-tracer``, ``nnsight``) writes what it computed on a run to."""
    return f"results/peers/{run}/{peer}"


RESURRECTION_JSON = "results/reports/resurrection.json"
RESURRECTION_HTML = "results/reports/resurrection.html"
RESURRECTION_MD = "results/reports/RESURRECTION.md"
