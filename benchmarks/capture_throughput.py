"""Capture benchmark: Parquet capture against a plain forward, a TransformerLens peer, and memory.

Run from the repository root after `make run` (it needs resources/models/gemma-3-270m):

    .venv/bin/python benchmarks/capture_throughput.py [--device cpu|cuda] [--repeats 2]

All measurements use the same model, the same tokens (the default prompt set) and the same
length-grouped batches, in one process, alternating, best of ``--repeats``:

1. plain: the decoder's forward, stopped after the deepest captured layer, nothing kept;
2. capture: mi-oracle's capture_shard writing every (hook, layer) to Parquet;
3. peer: TransformerLens 3.9+ (TransformerBridge.run_with_cache, same hook names) keeping the
   unpadded activations and saving them with torch.save, as an ad-hoc script would.

4. storage (``--storage``): the capture once per Parquet storage choice (compression x float
   encoding), alternating within each repeat: tokens/s and bytes per (token, hook point) of the
   files written.

Then peak memory of capture_shard at 1x and 10x the tokens, each in a fresh process, alternating,
``--memory-samples`` times each (the median is the result: a process's peak RSS varies by
about +-50 MB from run to run with how the allocator's heap happens to fragment).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mi_oracle.capture.plan import make_plan  # noqa: E402
from mi_oracle.capture.recorder import StopForward  # noqa: E402
from mi_oracle.capture.run import capture_shard, length_grouped_batches, right_padded  # noqa: E402
from mi_oracle.errors import DataFileError  # noqa: E402
from mi_oracle.hook_points import HOOK_POINTS  # noqa: E402
from mi_oracle.parquet_files import record_sha256  # noqa: E402

MODEL = ROOT / "resources" / "models" / "gemma-3-270m"
PROMPTS = ROOT / "config" / "prompts" / "default.jsonl"
HOOKS = list(HOOK_POINTS)
LAYERS = [0, 9, 17]
SETTINGS = {
    "max_length": 1024,
    "add_special_tokens": True,
    "shard_tokens": 10**9,
    "batch_tokens": 4096,
    "max_padding": 0.2,
    "row_group_rows": 1024,
    "compression": "zstd",
    "float_encoding": "byte_stream_split",
    "storage_dtype": "float32",
    "dtype": "float32",
}


def plain_forward(model, rows, device, settings) -> float:
    """Seconds for the forward passes alone, stopped after the deepest layer."""
    handle = model.model.layers[max(LAYERS)].register_forward_hook(
        lambda *_: (_ for _ in ()).throw(StopForward)
    )
    start = time.perf_counter()
    lengths = [len(r) for r in rows]
    batches = length_grouped_batches(lengths, settings["batch_tokens"], settings["max_padding"])
    for batch in batches:
        ids, mask = right_padded([rows[i] for i in batch], 0)
        with torch.inference_mode(), contextlib.suppress(StopForward):
            model.model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    handle.remove()
    return time.perf_counter() - start


STORAGE = [  # (storage_dtype, compression, float_encoding)
    ("float32", "none", "plain"),
    ("float32", "zstd", "plain"),
    ("float32", "lz4", "byte_stream_split"),
    ("float32", "zstd", "byte_stream_split"),
    ("bfloat16", "none", "plain"),
    ("bfloat16", "zstd", "byte_stream_split"),
    ("float16", "zstd", "plain"),
]


def mi_oracle_capture(tokens_path, out_dir, plan, device, **storage) -> float:
    outputs = {
        (h, layer): out_dir / f"hook={h}" / f"layer={layer}" / "part-00000.parquet"
        for h in HOOKS
        for layer in LAYERS
    }
    start = time.perf_counter()
    capture_shard(
        MODEL,
        tokens_path,
        outputs,
        {**SETTINGS, **storage, "device": device.type},
        plan,
        "00000",
        threads=torch.get_num_threads(),
    )
    return time.perf_counter() - start


def transformer_lens_capture(bridge, rows, device, out_dir, settings) -> float:
    names = {
        f"blocks.{layer}.{HOOK_POINTS[h].transformer_lens.split('.', 2)[2]}"
        for h in HOOKS
        for layer in LAYERS
    }
    start = time.perf_counter()
    lengths = [len(r) for r in rows]
    batches = length_grouped_batches(lengths, settings["batch_tokens"], settings["max_padding"])
    for n, batch in enumerate(batches):
        ids, mask = right_padded([rows[i] for i in batch], 0)
        with torch.inference_mode():
            _, cache = bridge.run_with_cache(ids.to(device), names_filter=lambda name: name in names)
        real = mask.bool().to(device)
        torch.save({name: cache[name][real].cpu() for name in names}, out_dir / f"batch-{n}.pt")
    return time.perf_counter() - start


def peak_memory_mb(tokens_path: Path, plan_path: Path, device: str) -> float:
    """Peak RSS of a fresh process that captures ``tokens_path``."""
    code = (
        "import json, shutil, sys, tempfile; from pathlib import Path; "
        f"sys.path.insert(0, {str(ROOT / 'src')!r}); sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); "
        "import capture_throughput as b, torch; "
        "out = Path(tempfile.mkdtemp()); "
        f"plan = json.loads(Path({str(plan_path)!r}).read_text()); "
        f"b.mi_oracle_capture(Path({str(tokens_path)!r}), out, plan, torch.device({device!r})); "
        "shutil.rmtree(out); "
        "print(next(line for line in open('/proc/self/status') if line.startswith('VmHWM')).split()[1])"
    )
    # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child would report this process's peak.
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return int(result.stdout.strip().splitlines()[-1]) / 1024


def repeated_tokens(tokens_path: Path, factor: int, target: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(tokens_path)
    copies = []
    for k in range(factor):
        ids = pa.array([p + k * table.num_rows for p in table["prompt_id"].to_pylist()], pa.int64())
        copies.append(table.set_column(0, "prompt_id", ids))
    pq.write_table(pa.concat_tables(copies), target)
    record_sha256(target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--storage", action="store_true", help="also compare the Parquet storage choices")
    parser.add_argument(
        "--memory-samples", type=int, default=3, help="fresh processes per corpus; the median is reported"
    )
    args = parser.parse_args()
    if not (MODEL / "provenance.json").exists():
        sys.exit(f"{MODEL} is missing: run `make run` (or `.venv/bin/snakemake`) first")
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory(prefix="mi-oracle-bench-") as scratch:
        report = run(Path(scratch), device, args)
    print(json.dumps(report, indent=2))


def run(work: Path, device: torch.device, args: argparse.Namespace) -> dict:
    """Every measurement, with scratch files under ``work``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    plan = make_plan(MODEL, PROMPTS, SETTINGS, "text", work / "tokens")
    tokens_path = work / "tokens" / "part-00000.parquet"
    import pyarrow.parquet as pq

    rows = pq.read_table(tokens_path)["token_ids"].to_pylist()
    n_tokens = sum(len(r) for r in rows)
    model = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32).to(device).eval()
    bridge = None
    if not args.skip_peer:
        from transformer_lens.model_bridge import TransformerBridge

        bridge = TransformerBridge.boot_transformers(
            "google/gemma-3-270m",
            hf_model=AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32).to(device).eval(),
            tokenizer=AutoTokenizer.from_pretrained(MODEL),
            device=device.type,
        )
    best: dict[str, float] = {}
    bytes_per_point: dict[str, float] = {}
    refused: dict[str, str] = {}
    for repeat in range(args.repeats):
        timings = {"plain forward": plain_forward(model, rows, device, SETTINGS)}
        timings["mi-oracle capture"] = mi_oracle_capture(
            tokens_path, work / f"capture-{repeat}", plan, device
        )
        if bridge is not None:
            peer_dir = work / f"peer-{repeat}"
            peer_dir.mkdir()
            timings["TransformerLens"] = transformer_lens_capture(bridge, rows, device, peer_dir, SETTINGS)
        for stored, compression, encoding in STORAGE if args.storage else []:
            name = f"{stored} {compression} {encoding}"
            folder = work / f"storage-{repeat}-{name.replace(' ', '-')}"
            try:
                timings[f"storage {name}"] = mi_oracle_capture(
                    tokens_path,
                    folder,
                    plan,
                    device,
                    storage_dtype=stored,
                    compression=compression,
                    float_encoding=encoding,
                )
            except DataFileError as error:  # float16 overflows Gemma's residual stream
                refused[name] = str(error).split(";")[0]
                continue
            finally:
                size = sum(f.stat().st_size for f in folder.rglob("*.parquet"))
                shutil.rmtree(folder, ignore_errors=True)
            bytes_per_point[name] = size / (n_tokens * len(HOOKS) * len(LAYERS))
        for name, seconds in timings.items():
            best[name] = min(best.get(name, float("inf")), seconds)
    report = {
        "device": device.type,
        "threads": torch.get_num_threads(),
        "tokens": n_tokens,
        "hook_points": len(HOOKS) * len(LAYERS),
        "tokens_per_s": {name: round(n_tokens / s, 1) for name, s in best.items()},
        "capture_over_plain": round(best["plain forward"] / best["mi-oracle capture"], 3),
    }
    if bytes_per_point:
        report["storage"] = {
            name: {
                "bytes_per_token_point": round(size, 1),
                "tokens_per_s": round(n_tokens / best[f"storage {name}"], 1),
                "bytes_over_plain_float32": round(size / (4 * model.config.hidden_size), 3),
            }
            for name, size in bytes_per_point.items()
        }
        report["storage_refused"] = refused
    if "TransformerLens" in best:
        report["capture_speedup_over_transformer_lens"] = round(
            best["TransformerLens"] / best["mi-oracle capture"], 2
        )
    if not args.skip_memory:
        plan_path = work / "tokens" / "_plan.json"
        corpora = {f"{k}x": repeated_tokens(tokens_path, k, work / f"x{k}.parquet") for k in (1, 10)}
        peaks: dict[str, list[float]] = {name: [] for name in corpora}
        for _sample in range(args.memory_samples):  # alternating, each in a fresh process
            for name, path in corpora.items():
                peaks[name].append(peak_memory_mb(path, plan_path, device.type))
        report["peak_rss_mb_samples"] = {name: [round(mb) for mb in mbs] for name, mbs in peaks.items()}
        report["peak_rss_mb"] = {name: round(statistics.median(mbs)) for name, mbs in peaks.items()}
        report["peak_memory_10x_over_1x"] = round(
            statistics.median(peaks["10x"]) / statistics.median(peaks["1x"]), 3
        )
    return report


if __name__ == "__main__":
    main()
