"""How activation values are stored in Parquet, and read back as float32.

* ``float32``: Parquet FLOAT, 4 bytes a value;
* ``float16``: Parquet's FLOAT16 logical type (2 bytes; Arrow ``halffloat``); finite only up to
  65504, so a residual stream with larger entries (Gemma's) overflows and is refused at capture;
* ``bfloat16``: Parquet has no bfloat16, so its 16 bits are stored as UINT16 (2 bytes; the range
  of float32, 8 significant bits); ``float32 = bits << 16`` reads it back (``to_float32``).

The element type of the ``activation`` list says which one a file holds; the file's metadata
says it too (``stored_dtype``).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

STORAGE_DTYPES = ("float32", "float16", "bfloat16")
ARROW_TYPES = {"float32": pa.float32(), "float16": pa.float16(), "bfloat16": pa.uint16()}


def arrow_type(stored: str) -> pa.DataType:
    """The Arrow element type of a stored dtype."""
    if stored not in ARROW_TYPES:
        raise ValueError(f"stored dtype {stored!r}: expected one of {', '.join(STORAGE_DTYPES)}")
    return ARROW_TYPES[stored]


def to_stored(values: np.ndarray, stored: str) -> np.ndarray:
    """float32 ``values`` in the stored dtype: rounded to nearest, ties to even."""
    if stored == "float32":
        return values
    if stored == "float16":
        with np.errstate(over="ignore"):  # an overflow becomes inf, refused by the caller's check
            return values.astype(np.float16)
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounding = ((bits >> 16) & 1) + np.uint32(0x7FFF)
    return ((bits + rounding) >> 16).astype(np.uint16)


def to_float32(values: np.ndarray) -> np.ndarray:
    """Stored values (float32, float16, or bfloat16 bits as uint16) as float32."""
    if values.dtype == np.uint16:
        return (values.astype(np.uint32) << 16).view(np.float32)
    return values.astype(np.float32, copy=False)


def activation_matrix(column: pa.Array | pa.ChunkedArray, d_model: int) -> np.ndarray:
    """A fixed-size-list ``activation`` column as [rows, d_model] float32, whatever it stores."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    values = column.flatten().to_numpy(zero_copy_only=False)
    return to_float32(values).reshape(-1, d_model)
