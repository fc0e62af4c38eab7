"""What portable numerics costs: the synthetic build and the default references, portable against
native, side by side in one run on the same machine and threads.

Run from the repository root after `make run` (it reads the default run's model, tokens and
dictionary manifests):

    .venv/bin/python benchmarks/numerics_cost.py [--threads 1] [--skip-synthetic]

Each step writes into a scratch folder (the run's own outputs are left alone) and is timed as a
whole, the portable child interpreter's start included. Prints seconds per step and the
portable / native ratio, and checks that the portable outputs equal the run's own.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mi_oracle.config import load_schema, validate_config  # noqa: E402
from mi_oracle.dictionaries.synthetic import build_synthetic_sets  # noqa: E402
from mi_oracle.numerics.mode import Numerics  # noqa: E402
from mi_oracle.references.generate import write_reference  # noqa: E402
from mi_oracle.references.plan import reference_items  # noqa: E402

MODEL = ROOT / "resources" / "models" / "gemma-3-270m"
TOKENS = ROOT / "results" / "tokens" / "default"


def default_config() -> dict:
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    return validate_config(config, load_schema(ROOT / "workflow" / "schemas" / "config.schema.yaml"))


def timed(step, *args, **kwargs) -> float:
    start = time.perf_counter()
    step(*args, **kwargs)
    return time.perf_counter() - start


def synthetic(config: dict, numerics: Numerics, scratch: Path) -> float:
    definitions = {d["name"]: d["synthetic"] for d in config["dictionaries"] if "synthetic" in d}
    targets = {name: scratch / numerics.mode / name for name in definitions}
    return timed(
        build_synthetic_sets,
        MODEL,
        TOKENS,
        definitions,
        targets,
        config["capture"],
        config["synthetic_calibration_tokens"],
        numerics,
    )


def references(config: dict, numerics: Numerics, scratch: Path) -> dict[str, float]:
    options = {key: config["references"][key] for key in ("device", "dtype", "seeds_per_layer")}
    seconds = {}
    for name, item in reference_items(config).items():
        manifest = ROOT / "results" / "curation" / item.set / "manifest.json" if item.set else None
        output = scratch / numerics.mode / name
        seconds[name] = timed(write_reference, item.to_json(), options, MODEL, manifest, output, numerics)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-synthetic", action="store_true")
    args = parser.parse_args()
    if not (MODEL / "provenance.json").exists() or not TOKENS.exists():
        sys.exit("the default run's outputs are missing: run `make run` first")
    config = default_config()
    report: dict = {"threads": args.threads}
    with tempfile.TemporaryDirectory(prefix="numerics-cost-") as scratch:
        scratch = Path(scratch)
        if not args.skip_synthetic:
            report["synthetic"] = {
                mode: synthetic(config, Numerics(mode, args.threads), scratch / "synthetic")
                for mode in ("native", "portable")
            }
        report["references"] = {
            mode: references(config, Numerics(mode, args.threads), scratch / "references")
            for mode in ("native", "portable")
        }
        same = [
            name
            for name in report["references"]["portable"]
            if (scratch / "references" / "portable" / name / f"{name}.json").read_bytes()
            == (ROOT / "results" / "references" / "portable" / "gemma-3-270m" / f"{name}.json").read_bytes()
        ]
    report["portable_equal_to_the_run"] = same
    for mode in ("native", "portable"):
        report["references"][f"{mode}_total"] = sum(report["references"][mode].values())
    totals = {"references": (report["references"]["native_total"], report["references"]["portable_total"])}
    if "synthetic" in report:
        totals["synthetic"] = (report["synthetic"]["native"], report["synthetic"]["portable"])
    for step, (native, portable) in totals.items():
        print(f"{step}: native {native:.1f} s, portable {portable:.1f} s, ratio {portable / native:.2f}")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
