"""Activation-table layouts against memory speed: write, read to float32, bytes, and who reads them.

    .venv/bin/python benchmarks/storage_layouts.py [--rows 16384] [--d-model 2304] [--repeats 3]

One [rows, d_model] float32 matrix (normal values, a per-column scale drawn log-normally, as a
residual stream's columns differ) is written once per layout, with the activation file's key
columns beside it, and read back to float32 ndarrays batch by batch (1,024 rows, as the encoder
streams), the whole file's BLAKE3 included (over a memory map, as ``parquet_files`` checks it)
and without Parquet's page CRC32 (the whole-file hash covers every byte). Reads on 1 and 2
threads (2: BLAKE3 on 2 threads, then the row groups split over 2 threads). Every rate is raw
float32 MB/s; each ratio divides by ``np.copyto`` of the same matrix in the same run (best of
``--repeats`` each, candidates alternating). The project's own reader (``parquet_files``, as the
encoder streams) on today's layout, before and after BLAKE3 (and on 2 threads), beside them.
Also: which installed readers (pyarrow, pandas, polars, DuckDB) see the column as a vector of
floats. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import mmap
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import blake3
import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mi_oracle.activation_storage import activation_matrix  # noqa: E402
from mi_oracle.hashing import sha256_file  # noqa: E402
from mi_oracle.parquet_files import iter_batches, open_parquet, record_sha256  # noqa: E402

BATCH = 1024
KEYS = [("prompt_id", pa.int64()), ("position", pa.int32()), ("token_id", pa.int32())]
NOT_NULL = pa.field("element", pa.float32(), nullable=False)


@dataclass(frozen=True)
class Layout:
    """One way to store the activation column."""

    name: str
    kind: str  # fsl, fsb, flat, bf16, f16, ipc
    compression: str | None = None
    split: bool = False


LAYOUTS = [
    Layout("fsl<float> zstd+bss (today)", "fsl", "zstd", True),
    Layout("fsl<float> zstd plain", "fsl", "zstd"),
    Layout("fsl<float> uncompressed", "fsl"),
    Layout("fsl<float not null> uncompressed", "fsl_notnull"),
    Layout("fixed_size_binary zstd", "fsb", "zstd"),
    Layout("fixed_size_binary uncompressed", "fsb"),
    Layout("flat float, width in metadata, uncompressed", "flat"),
    Layout("bfloat16 bits fsl<uint16> zstd+bss", "bf16", "zstd", True),
    Layout("float16 fsl<halffloat> zstd", "f16", "zstd"),
    Layout("Arrow IPC (Feather v2) uncompressed", "ipc"),
]


def activation_array(layout: Layout, x: np.ndarray) -> pa.Array:
    d = x.shape[1]
    if layout.kind in ("fsb",):
        return pa.FixedSizeBinaryArray.from_buffers(pa.binary(4 * d), len(x), [None, pa.py_buffer(x)])
    if layout.kind == "flat":
        return pa.array(x.reshape(-1))
    if layout.kind == "bf16":
        bits = np.ascontiguousarray(x).view(np.uint32)
        values = pa.array(((bits + ((bits >> 16) & 1) + 0x7FFF) >> 16).astype(np.uint16).reshape(-1))
        return pa.FixedSizeListArray.from_arrays(values, d)
    if layout.kind == "f16":
        return pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1).astype(np.float16)), d)
    if layout.kind in ("fsl_notnull", "ipc"):
        return pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), type=pa.list_(NOT_NULL, d))
    return pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), d)


def write(layout: Layout, x: np.ndarray, keys: list[np.ndarray], path: Path) -> None:
    """The table as the capture writes it: keys (dictionary-encoded) and the activation column."""
    d = x.shape[1]
    column = activation_array(layout, x)
    if layout.kind == "flat":  # keys and values have different lengths: keys in a second file
        pq.write_table(
            pa.Table.from_arrays(
                [column],
                schema=pa.schema([pa.field("activation", column.type, nullable=False)], {b"width": str(d)}),
            ),
            path,
            row_group_size=BATCH * d,
            compression=layout.compression,
            use_dictionary=False,
            write_page_checksum=True,
        )
        pq.write_table(pa.table(dict(zip([k for k, _ in KEYS], keys, strict=True))), f"{path}.keys")
        return
    required = layout.kind in ("fsb", "fsl_notnull", "ipc")  # no definition levels to decode
    table = pa.Table.from_arrays(
        [*[pa.array(k, t) for k, t in zip(keys, [t for _, t in KEYS], strict=True)], column],
        schema=pa.schema([*KEYS, pa.field("activation", column.type, nullable=not required)]),
    )
    if layout.kind == "ipc":
        feather.write_feather(table, path, compression="uncompressed", chunksize=BATCH)
        return
    values = "activation" if layout.kind == "fsb" else "activation.list.element"
    pq.write_table(
        table,
        path,
        row_group_size=BATCH,
        compression=layout.compression,
        use_dictionary=[k for k, _ in KEYS],
        use_byte_stream_split=[values] if layout.split else False,
        write_page_checksum=True,
    )


def to_float32(column: pa.Array, kind: str, d: int) -> np.ndarray:
    """One batch's activation column as [rows, d] float32 (a view where the layout allows)."""
    if kind == "fsb":
        count = len(column) * d
        return np.frombuffer(column.buffers()[1], np.float32, count, column.offset * 4 * d).reshape(-1, d)
    if kind == "flat":
        return column.to_numpy().reshape(-1, d)
    values = column.values.to_numpy(zero_copy_only=False)
    if kind == "bf16":
        return (values.astype(np.uint32) << 16).view(np.float32).reshape(-1, d)
    return values.astype(np.float32, copy=False).reshape(-1, d)


def read(path: Path, layout: Layout, d: int, threads: int) -> int:
    """Every row as float32, the whole file's BLAKE3 first (over a map of the file)."""
    with path.open("rb") as handle:
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    blake3.blake3(mapped, max_threads=threads).digest()
    buffer = pa.py_buffer(mapped)
    if layout.kind == "ipc":
        table = pa.ipc.open_file(pa.BufferReader(buffer)).read_all()
        return sum(to_float32(c, "fsl", d).shape[0] for c in table.column("activation").chunks)
    meta = pq.ParquetFile(pa.BufferReader(buffer)).metadata
    groups = list(range(meta.num_row_groups))

    def part(chunk: list[int]) -> int:
        source = pq.ParquetFile(pa.BufferReader(buffer), pre_buffer=False)
        size = BATCH * d if layout.kind == "flat" else BATCH
        batches = source.iter_batches(size, row_groups=chunk, columns=["activation"], use_threads=False)
        return sum(to_float32(b.column(0), layout.kind, d).shape[0] for b in batches)

    if threads == 1:
        return part(groups)
    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(part, [groups[i::threads] for i in range(threads)]))


def project_read(path: Path, d: int, before: bool, threads: int = 1) -> int:
    """The encoder's read path: ``open_parquet``, ``iter_batches``, ``activation_matrix``; ``before``:
    as it was before BLAKE3 (the file's sha256 in one pass, then read again, page CRC32s verified)."""
    if before:
        sha256_file(path)
        source = pq.ParquetFile(path, pre_buffer=False, page_checksum_verification=True)
    else:
        source = open_parquet(path, "activation file", threads)
    batches = iter_batches(source, path, "activation file", BATCH, ["activation"], threads)
    return sum(activation_matrix(b.column(0), d).shape[0] for b in batches)


def readers(path: Path, layout: Layout) -> dict[str, str]:
    """How each installed reader sees the activation column (or why it could not)."""
    found: dict[str, str] = {}
    probes: dict[str, Callable[[], str]] = {
        "pyarrow": lambda: str(
            (feather.read_table(path) if layout.kind == "ipc" else pq.read_table(path))
            .schema.field("activation")
            .type
        )
    }
    try:
        import pandas as pd

        reader = pd.read_feather if layout.kind == "ipc" else pd.read_parquet
        probes["pandas"] = lambda: type(reader(path)["activation"].iloc[0]).__name__
    except ImportError:
        found["pandas"] = "not installed"
    try:
        import polars as pl

        reader_pl = pl.read_ipc if layout.kind == "ipc" else pl.read_parquet
        probes["polars"] = lambda: str(reader_pl(path).schema["activation"])
    except ImportError:
        found["polars"] = "not installed"
    try:
        import duckdb

        probes["duckdb"] = lambda: str(
            duckdb.sql(f"DESCRIBE SELECT activation FROM read_parquet('{path}')").fetchall()[0][1]
        )
    except ImportError:
        found["duckdb"] = "not installed"
    for name, probe in probes.items():
        try:
            found[name] = probe()
        except Exception as error:  # a reader refusing the file is a result, recorded
            found[name] = f"fails: {type(error).__name__}: {str(error).splitlines()[0][:100]}"
    return found


def best(function: Callable[[], object], times: list[float]) -> None:
    start = time.perf_counter()
    function()
    times.append(time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=16384)
    parser.add_argument("--d-model", type=int, default=2304)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    scale = np.exp(rng.normal(0.0, 1.0, args.d_model)).astype(np.float32)
    x = rng.standard_normal((args.rows, args.d_model), dtype=np.float32) * scale
    raw = x.nbytes
    keys = [
        np.repeat(np.arange(args.rows // 64), 64),
        np.tile(np.arange(64), args.rows // 64),
        rng.integers(0, 262144, args.rows),
    ]
    copy = np.empty_like(x)
    times: dict[str, dict[str, list[float]]] = {"memcpy": {"copy": []}}
    with tempfile.TemporaryDirectory() as folder:
        paths = {
            layout.name: Path(folder) / f"{i}.{'arrow' if layout.kind == 'ipc' else 'parquet'}"
            for i, layout in enumerate(LAYOUTS)
        }
        for _ in range(args.repeats):
            best(lambda: np.copyto(copy, x), times["memcpy"]["copy"])
            for layout in LAYOUTS:
                entry = times.setdefault(layout.name, {"write": [], "read1": [], "read2": []})
                path = paths[layout.name]
                best(lambda layout=layout, path=path: write(layout, x, keys, path), entry["write"])
                if layout is LAYOUTS[0]:
                    record_sha256(path)
                    for name, before, threads in (
                        ("before", True, 1),
                        ("now", False, 1),
                        ("now_2", False, 2),
                    ):
                        best(
                            lambda path=path, b=before, t=threads: project_read(path, args.d_model, b, t),
                            times.setdefault(f"project_{name}", {"read": []})["read"],
                        )
                for threads in (1, 2):
                    best(
                        lambda layout=layout, path=path, t=threads: read(path, layout, args.d_model, t),
                        entry[f"read{threads}"],
                    )
        memcpy = raw / min(times["memcpy"]["copy"]) / 1e6
        rows = []
        for layout in LAYOUTS:
            path, entry = paths[layout.name], times[layout.name]
            size = path.stat().st_size
            rates = {k: raw / min(v) / 1e6 for k, v in entry.items()}
            rows.append(
                {
                    "layout": layout.name,
                    "bytes_per_token": round(size / args.rows, 1),
                    "bytes_per_raw": round(size / raw, 3),
                    "write_MBps": round(rates["write"]),
                    "read_1_thread_MBps": round(rates["read1"]),
                    "read_2_threads_MBps": round(rates["read2"]),
                    "read_1_thread_per_memcpy": round(rates["read1"] / memcpy, 3),
                    "read_2_threads_per_1": round(rates["read2"] / rates["read1"], 2),
                    "write_per_memcpy": round(rates["write"] / memcpy, 3),
                    "readers": readers(path, layout),
                }
            )
    project = {
        f"{name}_MBps_per_memcpy": round(raw / min(times[f"project_{name}"]["read"]) / 1e6 / memcpy, 3)
        for name in ("before", "now", "now_2")
    }
    project["now_2_threads_over_1"] = round(
        project["now_2_MBps_per_memcpy"] / project["now_MBps_per_memcpy"], 2
    )
    print(
        json.dumps(
            {
                "project_reader_today_layout": project,
                "rows": args.rows,
                "d_model": args.d_model,
                "repeats": args.repeats,
                "memcpy_MBps": round(memcpy),
                "layouts": rows,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
