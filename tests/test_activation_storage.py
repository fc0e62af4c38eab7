"""Activation storage dtypes: float16 and bfloat16 written, refused on overflow, and read back
by pyarrow, pandas, polars and DuckDB (natively, or with the README's one-line conversion)."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest
import torch

from mi_oracle.activation_storage import activation_matrix, to_float32, to_stored
from mi_oracle.capture.writer import ShardWriters, activation_schema
from mi_oracle.errors import DataFileError

# README, "Activations": bfloat16 bits (USMALLINT) to a float in DuckDB
BF16_MACRO = """CREATE MACRO bf16(b) AS
    (CASE WHEN b >= 32768 THEN -1 ELSE 1 END) *
    (CASE WHEN (b::INT >> 7) & 255 = 0 THEN (b::INT & 127) / 128.0 * pow(2, -126)
          ELSE (1 + (b::INT & 127) / 128.0) * pow(2, ((b::INT >> 7) & 255) - 127) END)"""


def residual_like(rows: int, width: int) -> torch.Tensor:
    return torch.randn(rows, width, generator=torch.Generator().manual_seed(0)) * torch.logspace(-6, 4, width)


@pytest.mark.parametrize("stored", ["float16", "bfloat16"])
def test_stored_values_round_like_torch(stored):
    x = residual_like(64, 32).clamp(-6e4, 6e4)
    ours = to_float32(to_stored(x.numpy(), stored))
    np.testing.assert_array_equal(ours, x.to(getattr(torch, stored)).float().numpy())


def write(path, values: torch.Tensor, stored: str) -> None:
    schemas = {"p": activation_schema(values.shape[-1], {"hook": "resid_post"}, stored)}
    with ShardWriters(
        {"p": path},
        schemas,
        64,
        "zstd",
        buffer_rows=len(values),
        n_buffers=1,
        float_encoding="byte_stream_split",
        stored_dtype=stored,
    ) as writers:
        n = len(values)
        writers.start_batch(np.arange(n), np.zeros(n), np.zeros(n), torch.arange(n))
        writers.put("p", values[None])


def test_a_float16_overflow_is_refused_naming_the_row_and_leaves_nothing(tmp_path):
    values = residual_like(8, 16)
    values[5, 3] = 88092.8  # a Gemma 3 residual entry: finite in float32 and bfloat16, not float16
    with pytest.raises(DataFileError, match=r"part-00000.parquet: row 5, column activation\[3\] is inf"):
        write(tmp_path / "part-00000.parquet", values, "float16")
    assert list(tmp_path.iterdir()) == []
    write(tmp_path / "part-00000.parquet", values, "bfloat16")
    assert (
        activation_matrix(pq.read_table(tmp_path / "part-00000.parquet")["activation"], 16)[5, 3] == 88064.0
    )


def test_every_reader_gets_the_values_back(tmp_path):
    values = residual_like(32, 16).clamp(-6e4, 6e4)
    for stored in ("float16", "bfloat16"):
        write(tmp_path / f"{stored}.parquet", values, stored)
    expected = {s: values.to(getattr(torch, s)).float().numpy() for s in ("float16", "bfloat16")}
    f16, bf16 = tmp_path / "float16.parquet", tmp_path / "bfloat16.parquet"

    # float16: every reader decodes Parquet's FLOAT16 natively
    np.testing.assert_array_equal(
        activation_matrix(pq.read_table(f16)["activation"], 16), expected["float16"]
    )
    np.testing.assert_array_equal(
        np.stack(pd.read_parquet(f16)["activation"]).astype(np.float32), expected["float16"]
    )
    np.testing.assert_array_equal(
        pl.read_parquet(f16)["activation"].to_numpy().astype(np.float32), expected["float16"]
    )
    got = duckdb.sql(f"SELECT activation FROM '{f16}' ORDER BY prompt_id").fetchall()
    np.testing.assert_array_equal(np.array([row[0] for row in got], np.float32), expected["float16"])

    # bfloat16: 16 bits as UINT16; float32 = bits << 16 (numpy, pandas, polars), a macro in DuckDB
    def from_bits(bits):
        return (np.asarray(bits).astype(np.uint32) << 16).view(np.float32)

    np.testing.assert_array_equal(
        activation_matrix(pq.read_table(bf16)["activation"], 16), expected["bfloat16"]
    )
    np.testing.assert_array_equal(
        from_bits(np.stack(pd.read_parquet(bf16)["activation"])), expected["bfloat16"]
    )
    np.testing.assert_array_equal(
        from_bits(pl.read_parquet(bf16)["activation"].to_numpy()), expected["bfloat16"]
    )
    connection = duckdb.connect()
    connection.execute(BF16_MACRO)
    got = connection.execute(
        f"SELECT list_transform(activation, lambda b: bf16(b)) FROM '{bf16}' ORDER BY prompt_id"
    ).fetchall()
    np.testing.assert_array_equal(np.array([row[0] for row in got], np.float32), expected["bfloat16"])
