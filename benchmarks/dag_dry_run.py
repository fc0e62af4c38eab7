"""How long `snakemake -n` takes to build the DAG of config/gemma-2-2b.yaml at full scale.

Scale (issue target: under 20 s on a 2-core machine): all 26 layers, four hooks, two dictionary
sets (the Gemma Scope residual SAE at 26 layers and the transcoder set at 26 layers), 256
shards. A dry run can only see past the workflow's checkpoints once their outputs exist, so the
benchmark lays out what they would have written (the fetched model's config and provenance, a
capture plan with 256 shards, both resolved manifests) in a temporary working directory, and
then times the real `snakemake -n` there. It prints the job count and the seconds, best of
``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mi_oracle.dictionaries.manifest import LayerRecord, Manifest  # noqa: E402

N_LAYERS, N_SHARDS, D_MODEL = 26, 256, 2304
HOOKS = ["resid_mid", "ln2_normalized", "mlp_out", "resid_post"]


def write_json(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=1))


def manifest(name: str, kind: str, input_hook: str, output_hook: str) -> dict:
    layers = range(N_LAYERS)
    return Manifest(
        name=name,
        kind=kind,
        synthetic=False,
        model={"num_hidden_layers": N_LAYERS, "hidden_size": D_MODEL},
        input_hook=input_hook,
        output_hook=output_hook,
        activation={"kind": "jumprelu", "source": "weights"},
        layers=tuple(
            LayerRecord(layer, (), "GemmaScopeNpz", D_MODEL, 16384, input_hook, output_hook)
            for layer in layers
        ),
        encode_layers=tuple(layers),
        available_layers=tuple({"layer": layer, "source": f"layer_{layer}"} for layer in layers),
    ).to_json()


def lay_out(work: Path) -> Path:
    """The working directory a full-scale run would have after its checkpoints; returns the config."""
    shutil.copytree(ROOT / "config", work / "config")
    config = yaml.safe_load((ROOT / "config" / "gemma-2-2b.yaml").read_text())
    config["capture"].update(layers=list(range(N_LAYERS)), hooks=HOOKS)
    sae = config["dictionaries"][0]["sae"]
    sae["entries"] = [
        {"layer": layer, "filepath": f"hf://google/gemma-scope-2b-pt-res/layer_{layer}/width_16k/params.npz"}
        for layer in range(N_LAYERS)
    ]
    run = config["capture"]["run"]
    model = work / "resources" / "models" / config["model"]["name"]
    write_json(
        model / "config.json", {"model_type": "gemma2", "hidden_size": D_MODEL, "num_hidden_layers": N_LAYERS}
    )
    write_json(model / "provenance.json", {"name": config["model"]["name"], "repo": config["model"]["repo"]})
    shards = [
        {"shard": f"{i:05d}", "first_prompt": i, "n_prompts": 1, "n_tokens": 1} for i in range(N_SHARDS)
    ]
    write_json(work / "results" / "tokens" / run / "_plan.json", {"shards": shards})
    sets = {
        "gemma-scope-res": manifest("gemma-scope-res", "sae", "resid_post", "resid_post"),
        "gemma-scope-transcoders": manifest(
            "gemma-scope-transcoders", "transcoder_set", "ln2_normalized", "mlp_out"
        ),
    }
    for name, record in sets.items():
        write_json(work / "results" / "curation" / name / "manifest.json", record)
        (work / "resources" / "dictionaries" / name).mkdir(parents=True)
    configfile = work / "config" / "scale.yaml"
    configfile.write_text(yaml.safe_dump(config, sort_keys=False))
    return configfile


def dry_run(work: Path, configfile: Path) -> tuple[float, int]:
    command = [
        str(Path(sys.executable).parent / "snakemake"),
        "--snakefile", str(ROOT / "Snakefile"),
        "--directory", str(work),
        "--configfile", str(configfile),
        "--cores", "2",
        "-n", "--quiet", "rules",
    ]  # fmt: skip
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"snakemake -n failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    total = re.search(r"^total\s+(\d+)", result.stdout + result.stderr, re.MULTILINE)
    return seconds, int(total.group(1)) if total else -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        configfile = lay_out(work)
        runs = [dry_run(work, configfile) for _ in range(args.repeats)]
    best = min(seconds for seconds, _ in runs)
    report = {
        "jobs": runs[0][1],
        "best_seconds": round(best, 2),
        "all_seconds": [round(s, 2) for s, _ in runs],
    }
    report |= {"target_seconds": 20, "meets_target": best < 20}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
