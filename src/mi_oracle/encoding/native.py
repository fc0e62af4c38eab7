"""The fused float32 CPU kernels (``_sparse_kernels.c``, built with the package), through ctypes.

They compute what compute.py's torch path computes, bit for bit, in fewer passes over memory:
the activation and its mask in one pass (torch needs three), and the sparse rows' keys straight
from the mask (torch finds the positions, gathers and shifts in separate passes). ctypes releases
the GIL during a call, so the activation's rows are split over threads.

``AVAILABLE`` is false where the package runs from a source tree that was never built (``src/``
on the import path, as ``--sdm conda`` jobs do): compute.py then keeps the torch path, which
writes the same bits, more slowly.
"""

from __future__ import annotations

import ctypes
import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import NamedTuple

import numpy as np
import torch

try:
    from mi_oracle.encoding import _sparse_kernels
except ImportError:  # not built: see AVAILABLE
    _sparse_kernels = None

KEY_BITS = 63  # the bits of a sort key (non-negative int64): row, value order, feature index
VALUE_BITS = 32  # of a sort key, the value's (its float32 bits, order-preserving)
_MIN_ROWS_PER_THREAD = 256  # below this, a thread's start costs more than it saves


class SparseRows(NamedTuple):
    """A batch's active features, per row by value descending (ties: lower index).

    ``offsets`` [rows + 1] int32 (row ``i`` is ``offsets[i]:offsets[i + 1]``), ``ids`` int32,
    ``values`` float32: numpy arrays, the layout of an Arrow list column.
    """

    offsets: np.ndarray
    ids: np.ndarray
    values: np.ndarray


def _library() -> ctypes.CDLL:
    library = ctypes.CDLL(_sparse_kernels.__file__)
    pointer, size = ctypes.c_void_p, ctypes.c_int64
    library.mio_threshold_activate.argtypes = [pointer, size, size, pointer, pointer]
    library.mio_row_counts.argtypes = [pointer, size, size, pointer]
    library.mio_sort_keys.argtypes = [pointer, pointer, size, size, size, size, pointer]
    library.mio_decode_keys.argtypes = [pointer, pointer, size, size, size, pointer, pointer, pointer]
    for function in ("mio_threshold_activate", "mio_row_counts", "mio_sort_keys", "mio_decode_keys"):
        getattr(library, function).restype = None
    return library


AVAILABLE = _sparse_kernels is not None
_KERNELS = _library() if AVAILABLE else None
NOT_BUILT = (
    "the fused encoding kernels (mi_oracle.encoding._sparse_kernels) are not built here: encoding "
    "takes the torch path (the same results, more slowly); `make install` (pip install -e .) builds them"
)


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="mi-oracle-activate")


def _check(tensor: torch.Tensor, dtype: torch.dtype, name: str) -> None:
    if tensor.device.type != "cpu" or tensor.dtype != dtype or not tensor.is_contiguous():
        raise ValueError(
            f"{name}: expected a contiguous {dtype} CPU tensor, got {tensor.dtype} on {tensor.device}"
            f"{'' if tensor.is_contiguous() else ' (not contiguous)'}"
        )


def threshold_activate(pre: torch.Tensor, threshold: torch.Tensor, active: torch.Tensor) -> None:
    """In place: ``pre * (pre > threshold)`` ([rows, d] float32; ``threshold`` [d]), the mask into
    ``active`` ([rows, d] bool), the rows split over torch's intra-op thread count."""
    _check(pre, torch.float32, "pre-activations")
    _check(threshold, torch.float32, "threshold")
    _check(active, torch.bool, "active mask")
    rows, d = pre.shape
    if threshold.shape != (d,) or active.shape != pre.shape:
        raise ValueError(
            f"threshold {tuple(threshold.shape)} and mask {tuple(active.shape)}: expected ({d},) "
            f"and {tuple(pre.shape)}, as the pre-activations"
        )
    threads = max(1, min(torch.get_num_threads(), rows // _MIN_ROWS_PER_THREAD))
    bounds = [rows * k // threads for k in range(threads + 1)]
    parts = [
        (pre[start].data_ptr(), stop - start, d, threshold.data_ptr(), active[start].data_ptr())
        for start, stop in itertools.pairwise(bounds)
        if stop > start
    ]
    running = [_pool().submit(_KERNELS.mio_threshold_activate, *part) for part in parts[1:]]
    if parts:
        _KERNELS.mio_threshold_activate(*parts[0])
    for future in running:
        future.result()


def sparse_rows(acts: torch.Tensor, active: torch.Tensor) -> SparseRows:
    """The active features of ``acts`` ([rows, d] float32) where ``active`` is true, sorted per row.

    Each active value becomes one unique key, (row, value descending, index) from the high bits
    to the low, and numpy sorts them (a block of rows at a time where the three exceed
    ``KEY_BITS``); the values are read back from ``acts``, so a zero keeps its sign.
    """
    _check(acts, torch.float32, "activations")
    _check(active, torch.bool, "active mask")
    rows, d = acts.shape
    index_bits = max(1, (d - 1).bit_length())
    row_shift = VALUE_BITS + index_bits
    if row_shift >= KEY_BITS:
        raise ValueError(f"{d} features do not fit a {KEY_BITS}-bit sort key")
    counts = np.empty(rows, np.int64)
    _KERNELS.mio_row_counts(active.data_ptr(), rows, d, counts.ctypes.data)
    offsets = np.zeros(rows + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    keys = np.empty(offsets[-1], np.int64)
    ids, values = np.empty(len(keys), np.int32), np.empty(len(keys), np.float32)
    block = 2 ** (KEY_BITS - row_shift)  # rows whose keys fit in one sort
    for start in range(0, rows, block):
        stop = min(rows, start + block)
        first, last = offsets[start], offsets[stop]
        part = keys[first:last]
        rows_at, mask_at = acts[start].data_ptr(), active[start].data_ptr()
        _KERNELS.mio_sort_keys(rows_at, mask_at, stop - start, d, index_bits, row_shift, part.ctypes.data)
        part.sort()
        _KERNELS.mio_decode_keys(
            part.ctypes.data,
            rows_at,
            stop - start,
            d,
            index_bits,
            offsets[start:].ctypes.data,
            ids[first:].ctypes.data,
            values[first:].ctypes.data,
        )
    return SparseRows(offsets.astype(np.int32), ids, values)
