"""Encoding benchmark: mi-oracle's encoder against the GEMM roofline and SAELens, and memory.

Run from the repository root after `make run` (it needs the default run's synthetic SAE and
captured activations):

    .venv/bin/python benchmarks/encode_throughput.py [--device cpu|cuda] [--repeats 3]

One dictionary (the synthetic GemmaScope NPZ SAE at layer 9: d_model 640, d_sae 2048), the same
rows (every captured resid_post token at layer 9, tiled to ``--rows``), the same threads and the
same batches, in one process, alternating batch by batch: each candidate's time is the sum over
the batches of its best of ``--repeats`` on that batch (the machine's speed drifts within
seconds; the candidates see the same drift, and a slow moment costs one batch's repeat, not the
whole sweep):

Each candidate writes into output buffers it reuses batch after batch, as ``encode_features`` does.

1. roofline: ``torch.addmm(b_enc, x, W_enc)`` alone, the GEMM every encoder must do;
2. mi-oracle encode: JumpReLU activations and the active mask (``encoding.compute.encode``: on CPU
   in float32, one GEMM and the fused activation kernel);
3. mi-oracle encode + sparse rows: the above plus the sorted index/value lists;
4. end to end: the above appended, batch after batch, to one features Parquet held in memory by
   ``encode_features``'s own writer (``encoding.features_file.FeaturesWriter``: its schema and
   options, one row group per batch, each batch written on a background thread while the next
   batch's sparse rows are found, torch on one thread meanwhile);
5. SAELens: ``JumpReLUSAE.encode`` of the same dictionary loaded with ``SAE.load_from_disk``.

Then peak memory of ``encode_shard`` (Parquet in, Parquet out) at 1x and 10x ``--rows``, each in
a fresh process.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mi_oracle.devices import cpu_threads  # noqa: E402
from mi_oracle.dictionaries.manifest import read_manifest  # noqa: E402
from mi_oracle.encoding.compute import encode, feature_lists, sparse_rows  # noqa: E402
from mi_oracle.encoding.features_file import FeaturesWriter  # noqa: E402
from mi_oracle.encoding.loaders import load_layer  # noqa: E402
from mi_oracle.parquet_files import record_sha256  # noqa: E402

SET, LAYER, HOOK = "synthetic-sae", 9, "resid_post"
MANIFEST = ROOT / "results" / "curation" / SET / "manifest.json"
ACTIVATIONS = ROOT / "results" / "activations" / "default" / f"hook={HOOK}" / f"layer={LAYER}"
SETTINGS = {"dtype": "float32", "batch_rows": 4096, "compression": "zstd", "row_group_rows": 4096}


def captured_rows() -> np.ndarray:
    parts = sorted(ACTIVATIONS.glob("part-*.parquet"))
    table = pa.concat_tables(pq.read_table(p) for p in parts)
    return np.stack(table.column("activation").to_numpy(zero_copy_only=False)).astype(np.float32)


def best_times(candidates: dict, batches: list[torch.Tensor], repeats: int) -> dict[str, float]:
    """Seconds per candidate: over the batches, the sum of each batch's best of ``repeats``."""
    best = {name: [float("inf")] * len(batches) for name in candidates}
    for _ in range(repeats):
        for index, batch in enumerate(batches):
            for name, function in candidates.items():
                start = time.perf_counter()
                function(batch)
                if batch.is_cuda:
                    torch.cuda.synchronize()
                best[name][index] = min(best[name][index], time.perf_counter() - start)
    return {name: sum(times) for name, times in best.items()}


def tiled_file(rows: int, target: Path) -> Path:
    """``rows`` captured layer-9 rows (every shard's, repeated with shifted prompt ids) in one file."""
    parts = sorted(ACTIVATIONS.glob("part-*.parquet"))
    table = pa.concat_tables(pq.read_table(p) for p in parts)
    schema = table.schema.with_metadata(pq.read_schema(parts[0]).metadata)
    with pq.ParquetWriter(target, schema) as writer:
        for k in range(rows // table.num_rows + 1):
            ids = pa.array(np.asarray(table["prompt_id"]) + k * 10**6, pa.int64())
            copy = table.set_column(0, "prompt_id", ids).slice(0, rows - k * table.num_rows)
            if copy.num_rows:
                writer.write_table(copy, row_group_size=4096)
    record_sha256(target)
    return target


def peak_memory_mb(source: Path, device: str) -> float:
    """Peak RSS (VmHWM) of a fresh process that encodes ``source`` to Parquet."""
    code = (
        "import json, sys, tempfile; from pathlib import Path; "
        "sys.path.insert(0, sys.argv[1]); from mi_oracle.encoding.run import encode_shard; "
        "from mi_oracle.dictionaries.manifest import read_manifest; "
        "manifest_path, source = Path(sys.argv[2]), Path(sys.argv[3]); out = Path(tempfile.mkdtemp()); "
        "encode_shard(read_manifest(manifest_path), manifest_path, [(int(sys.argv[4]), source, "
        "source)], out / 'shard', json.loads(sys.argv[5]), base=Path(sys.argv[6])); "
        "print(next(line for line in open('/proc/self/status') if line.startswith('VmHWM')).split()[1])"
    )
    settings = json.dumps({**SETTINGS, "device": device})
    command = [
        sys.executable,
        "-c",
        code,
        str(ROOT / "src"),
        str(MANIFEST),
        str(source),
        str(LAYER),
        settings,
    ]
    result = subprocess.run([*command, str(ROOT)], check=True, capture_output=True, text=True)
    return int(result.stdout.strip().splitlines()[-1]) / 1024


class Encoder:
    """``encode`` into buffers reused batch after batch, as ``encode_features`` does; optionally the
    sparse rows, optionally appended to one features Parquet held in memory (``features=True``)
    with ``encode_features``'s writer, each batch's write overlapping the next one's sparse rows."""

    def __init__(self, dictionary, batch_rows: int, sparse: bool = False, features: bool = False) -> None:
        self.dictionary, self.sparse, self.writer = dictionary, sparse or features, None
        device = dictionary.W_enc.device
        self.buffers = (
            torch.empty((batch_rows, dictionary.d_sae), device=device),
            torch.empty((batch_rows, dictionary.d_sae), dtype=torch.bool, device=device),
        )
        if features:
            self.writer = FeaturesWriter(pa.BufferOutputStream(), {"benchmark": True}, "zstd", 4096)

    def __call__(self, x: torch.Tensor) -> None:
        acts, active = encode(self.dictionary, x, out=self.buffers)
        if not self.sparse:
            return
        if self.writer is None:
            feature_lists(sparse_rows(acts, active))
            return
        self.writer.start()
        with cpu_threads(x.device, 1):
            ids, values = feature_lists(sparse_rows(acts, active))
        self.writer.wait()
        n = len(x)
        keys = [pa.array(np.arange(n), pa.int64()), pa.array(np.arange(n, dtype=np.int32))]
        self.writer.add([*keys, pa.array(np.zeros(n, np.int32)), ids, values])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rows", type=int, default=32768)
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    if not MANIFEST.exists():
        sys.exit(f"{MANIFEST} is missing: run `make run` (or `.venv/bin/snakemake`) first")
    device = torch.device(args.device)
    manifest = read_manifest(MANIFEST)
    dictionary = load_layer(manifest, LAYER, ROOT).to(device)
    rows = captured_rows()
    rows = np.concatenate([rows] * (args.rows // len(rows) + 1))[: args.rows]
    batches = [torch.from_numpy(b).to(device) for b in np.array_split(rows, max(1, len(rows) // 4096))]
    batch_rows = max(len(b) for b in batches)
    product = torch.empty((batch_rows, dictionary.d_sae), device=device)
    candidates = {
        "roofline addmm": lambda x: torch.addmm(dictionary.b_enc, x, dictionary.W_enc, out=product[: len(x)]),
        "mi-oracle encode": Encoder(dictionary, batch_rows),
        "mi-oracle encode + sparse rows": Encoder(dictionary, batch_rows, sparse=True),
        "end to end: encode, sparse rows, features Parquet": Encoder(dictionary, batch_rows, features=True),
    }
    if not args.skip_peer:
        from mi_oracle.peers.saelens import load_gemma_scope_npz

        sae = load_gemma_scope_npz(
            ROOT / manifest.layer(LAYER).files[0].local_path,
            f"blocks.{LAYER}.hook_{HOOK}",
            manifest.model["repo"],
            device=device.type,
        )
        candidates["SAELens encode"] = sae.encode
    with torch.inference_mode():
        for function in candidates.values():  # warm-up
            function(batches[0])
        best = best_times(candidates, batches, args.repeats)
    report = {
        "device": device.type,
        "threads": torch.get_num_threads(),
        "rows": len(rows),
        "shape": {"d_model": int(dictionary.W_enc.shape[0]), "d_sae": dictionary.d_sae, "batch_rows": 4096},
        "rows_per_s": {name: round(len(rows) / seconds) for name, seconds in best.items()},
        "encode_over_roofline": round(best["roofline addmm"] / best["mi-oracle encode"], 3),
        "encode_with_sparse_rows_over_roofline": round(
            best["roofline addmm"] / best["mi-oracle encode + sparse rows"], 3
        ),
        "end_to_end_over_roofline": round(
            best["roofline addmm"] / best["end to end: encode, sparse rows, features Parquet"], 3
        ),
    }
    if "SAELens encode" in best:
        report["encode_speedup_over_saelens"] = round(best["SAELens encode"] / best["mi-oracle encode"], 2)
    if not args.skip_memory:
        with tempfile.TemporaryDirectory(prefix="mi-oracle-bench-") as scratch:
            one = peak_memory_mb(tiled_file(args.rows, Path(scratch) / "x1.parquet"), device.type)
            ten = peak_memory_mb(tiled_file(10 * args.rows, Path(scratch) / "x10.parquet"), device.type)
        report["peak_rss_mb"] = {"1x": round(one), "10x": round(ten)}
        report["peak_memory_10x_over_1x"] = round(ten / one, 3)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
