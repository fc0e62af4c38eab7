"""How far a bf16/fp16 capture lies from a forward of each prompt alone: the data behind the
per-dtype bars of the capture cross-check (mi_oracle.crossval.capture.BARS).

Run from the repository root after `make run` (it needs resources/models/gemma-3-270m):

    .venv/bin/python benchmarks/capture_dtype_drift.py [--prompts 16]

The first ``--prompts`` prompts of the default set are captured with capture_shard in each
dtype (length-grouped, padded batches), then compared at resid_pre and resid_post of the
captured layers with Hugging Face ``output_hidden_states`` of each prompt run alone, in the
same dtype and in float32. Prints the largest difference relative to the row norm.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import capture_throughput  # noqa: E402  (this folder: the capture benchmark's model, prompts and settings)
from capture_throughput import MODEL, PROMPTS  # noqa: E402

from mi_oracle.capture.plan import make_plan  # noqa: E402
from mi_oracle.capture.run import capture_shard  # noqa: E402
from mi_oracle.crossval.capture import captured_rows, diff_stats  # noqa: E402
from mi_oracle.devices import DTYPES  # noqa: E402
from mi_oracle.parquet_files import record_sha256  # noqa: E402

LAYERS = [0, 9, 16]  # resid_post of 16 is hidden_states[17]; the last layer's carries the final norm
SETTINGS = {**capture_throughput.SETTINGS, "device": "cpu"}


def hidden_alone(rows: list[list[int]], dtype: torch.dtype) -> list[list[np.ndarray]]:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(MODEL, dtype=dtype).eval()
    states = []
    with torch.no_grad():
        for ids in rows:
            hidden = model(torch.tensor([ids]), output_hidden_states=True).hidden_states
            states.append([h[0].float().numpy() for h in hidden])
    return states


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prompts", type=int, default=16)
    args = parser.parse_args()
    if not (MODEL / "provenance.json").exists():
        sys.exit(f"{MODEL} is missing: run `make run` (or `.venv/bin/snakemake`) first")
    report: dict = {"model": "google/gemma-3-270m", "prompts": args.prompts, "layers": LAYERS}
    with tempfile.TemporaryDirectory(prefix="mi-oracle-drift-") as scratch:
        work = Path(scratch)
        plan = make_plan(MODEL, PROMPTS, SETTINGS, "text", work / "all")
        table = pq.read_table(work / "all" / "part-00000.parquet").slice(0, args.prompts)
        pq.write_table(table, work / "part-00000.parquet")
        record_sha256(work / "part-00000.parquet")
        rows, ids = table["token_ids"].to_pylist(), table["prompt_id"].to_pylist()
        report["tokens"] = sum(len(r) for r in rows)
        references = {name: hidden_alone(rows, DTYPES[name]) for name in ("float32", "bfloat16", "float16")}
        for name in ("float32", "bfloat16", "float16"):
            out = work / name
            outputs = {
                (hook, layer): out / f"hook={hook}" / f"layer={layer}" / "part-00000.parquet"
                for hook in ("resid_pre", "resid_post")
                for layer in LAYERS
            }
            capture_shard(
                MODEL, work / "part-00000.parquet", outputs, {**SETTINGS, "dtype": name}, plan, "00000"
            )
            worst = {}
            for against in {name, "float32"}:
                diffs = []
                for hook, layer in outputs:
                    ours = captured_rows(out, hook, layer, "00000", ids)
                    index = layer if hook == "resid_pre" else layer + 1
                    theirs = np.concatenate([states[index] for states in references[against]])
                    diffs.append(diff_stats(ours, theirs)["max_rel_diff"])
                worst[f"vs {against} alone"] = float(f"{max(diffs):.3g}")
            report[f"{name} capture"] = worst
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
