"""Features Parquet written on a second thread: the same bytes as in turn, and write errors surface."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mi_oracle.encoding.features_file import FEATURES_WRITE_OPTIONS, FeaturesFile
from mi_oracle.encoding.run import features_schema

SCHEMA = features_schema({"test": True})


def batch(seed: int, rows: int = 300) -> pa.Table:
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 9, rows)
    offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
    ids = pa.array(rng.integers(0, 512, counts.sum()).astype(np.int32))
    values = pa.array(rng.standard_normal(counts.sum()).astype(np.float32))
    columns = [
        pa.array(np.full(rows, seed), pa.int64()),
        pa.array(np.arange(rows, dtype=np.int32)),
        pa.array(rng.integers(0, 1000, rows).astype(np.int32)),
        pa.ListArray.from_arrays(offsets, ids),
        pa.ListArray.from_arrays(offsets, values),
    ]
    return pa.Table.from_arrays(columns, schema=SCHEMA)


def test_the_file_holds_every_batch_in_order_byte_for_byte_as_written_in_turn(tmp_path):
    tables = [batch(seed) for seed in range(5)]
    with FeaturesFile(tmp_path / "threaded.parquet", SCHEMA, "zstd", 256) as out:
        for table in tables:
            out.append(table)
    with pq.ParquetWriter(
        tmp_path / "in_turn.parquet", SCHEMA, compression="zstd", **FEATURES_WRITE_OPTIONS
    ) as out:
        for table in tables:
            out.write_table(table, row_group_size=256)
    assert (tmp_path / "threaded.parquet").read_bytes() == (tmp_path / "in_turn.parquet").read_bytes()
    assert pq.read_table(tmp_path / "threaded.parquet").equals(pa.concat_tables(tables))
    column = pq.ParquetFile(tmp_path / "threaded.parquet").metadata.row_group(0).column(4)
    assert "RLE_DICTIONARY" not in column.encodings and column.compression == "ZSTD"


def test_a_failed_write_is_raised_by_the_next_append_or_when_the_block_ends(tmp_path):
    wrong = batch(0).drop_columns(["token_id"])  # not the file's schema: the write itself fails
    with (
        pytest.raises(ValueError, match="schema"),
        FeaturesFile(tmp_path / "a.parquet", SCHEMA, "zstd", 256) as out,
    ):
        out.append(wrong)
        out.append(batch(1))
    with (
        pytest.raises(ValueError, match="schema"),
        FeaturesFile(tmp_path / "b.parquet", SCHEMA, "zstd", 256) as out,
    ):
        out.append(wrong)


def test_an_error_in_the_block_is_the_one_raised(tmp_path):
    with (
        pytest.raises(KeyError, match="encode failed"),
        FeaturesFile(tmp_path / "c.parquet", SCHEMA, "zstd", 256) as out,
    ):
        out.append(batch(0).drop_columns(["token_id"]))
        raise KeyError("encode failed")
