"""The capture's write path alone: ``ShardWriters`` fed as a forward would feed it, against memcpy.

    .venv/bin/python benchmarks/capture_writers.py [--d-model 2304] [--points 8] [--batches 16]

Each batch puts ``--points`` points of ``--rows`` real rows (float32, normal values with a
log-normal scale per column) into the writers, with 1 and 2 writer threads, for the default
storage (zstd, byte_stream_split) and uncompressed plain; the time runs from the first ``put`` to
the files published (content hash included). Rates are raw float32 MB/s; each is divided by
``np.copyto`` of one batch's points in the same run and by the writer threads (per core). Best of
``--repeats``, the candidates alternating. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mi_oracle.capture.writer import ShardWriters, activation_schema  # noqa: E402

STORAGE = {
    "zstd, byte_stream_split (default)": ("zstd", "byte_stream_split"),
    "none, plain": ("none", "plain"),
}


def write_once(
    folder: Path, values: torch.Tensor, args: argparse.Namespace, storage: str, threads: int
) -> float:
    """Seconds from the first put to every file published."""
    compression, encoding = STORAGE[storage]
    keys = [("resid_post", layer) for layer in range(args.points)]
    outputs = {key: folder / f"layer={key[1]}" / "part-00000.parquet" for key in keys}
    schemas = {key: activation_schema(args.d_model, {"hook": key[0]}) for key in keys}
    writers = ShardWriters(
        outputs,
        schemas,
        1024,
        compression,
        buffer_rows=args.rows,
        n_buffers=2 + threads,
        float_encoding=encoding,
        writer_threads=threads,
    )
    index = torch.arange(args.rows)
    ids = np.arange(args.rows)
    start = time.perf_counter()
    with writers:
        for batch in range(args.batches):
            writers.start_batch(ids + batch * args.rows, ids % 128, ids, index)
            for key in keys:
                writers.put(key, values)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--d-model", type=int, default=2304)
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--points", type=int, default=8)
    parser.add_argument("--batches", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    scale = np.exp(rng.normal(0.0, 1.0, args.d_model)).astype(np.float32)
    values = torch.from_numpy(rng.standard_normal((1, args.rows, args.d_model), dtype=np.float32) * scale)
    raw = values.numel() * 4 * args.points * args.batches
    points = np.repeat(values.numpy()[0][None], args.points, axis=0)
    copy = np.empty_like(points)
    times: dict[str, list[float]] = {"memcpy": []}
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            start = time.perf_counter()
            for _ in range(args.batches):
                np.copyto(copy, points)
            times["memcpy"].append(time.perf_counter() - start)
            for storage in STORAGE:
                for threads in (1, 2):
                    name = f"{storage}, {threads} writer thread{'s' if threads > 1 else ''}"
                    where = Path(folder) / f"{repeat}-{len(times)}"
                    times.setdefault(name, []).append(write_once(where, values, args, storage, threads))
    memcpy = raw / min(times.pop("memcpy")) / 1e6
    rows = {}
    for name, seconds in times.items():
        rate = raw / min(seconds) / 1e6
        threads = 2 if "2 writer" in name else 1
        rows[name] = {"MBps": round(rate), "per_core_over_memcpy": round(rate / threads / memcpy, 3)}
    print(json.dumps({"raw_MB": round(raw / 1e6), "memcpy_MBps": round(memcpy), "writers": rows}, indent=1))


if __name__ == "__main__":
    main()
