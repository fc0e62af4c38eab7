"""Encoder and decoder arithmetic on canonical dictionaries (see ``loaders``).

JumpReLU is ``pre * (pre > threshold)`` (circuit-tracer and candle-mi; SAELens's
``relu(pre) * (pre > threshold)`` differs only for negative thresholds), ReLU is
``max(pre, 0)``, TopK keeps the ``k`` largest pre-activations (then ReLU).

Torch computes everything on any device and dtype. On CPU in float32, JumpReLU and ReLU
activations and the sparse rows go to the fused kernels of ``native`` instead: the same bits,
fewer passes over memory (``fused=False`` keeps the torch path, which the tests compare against).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pyarrow as pa
import torch

from mi_oracle.encoding import native
from mi_oracle.encoding.loaders import Dictionary
from mi_oracle.encoding.native import SparseRows

CHUNK_ROWS = 1024  # rows per GEMM + activation step: the chunk's pre-activations stay in cache
# The features' list types: elements never null (the Parquet writer then skips their levels)
ID_LIST = pa.list_(pa.field("element", pa.int32(), nullable=False))
VALUE_LIST = pa.list_(pa.field("element", pa.float32(), nullable=False))


def encode(
    dictionary: Dictionary,
    x: torch.Tensor,
    out: tuple[torch.Tensor, torch.Tensor] | None = None,
    fused: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(activations [n, d_sae], active mask) of inputs ``x [n, d_in]``.

    ``out``: buffers of at least ``n`` rows to write into (a streaming caller reuses them per batch).
    The fused path does one GEMM and one activation pass; torch's does a chunk of rows at a time,
    so that a chunk's pre-activations stay in cache through its three passes.
    """
    x = x.to(dictionary.W_enc.dtype)
    if out is None:
        acts = torch.empty((x.shape[0], dictionary.d_sae), dtype=x.dtype, device=x.device)
        active = torch.empty(acts.shape, dtype=torch.bool, device=x.device)
    else:
        acts, active = out[0][: x.shape[0]], out[1][: x.shape[0]]
    inputs = x - dictionary.b_dec if dictionary.apply_b_dec_to_input else x
    if fused and fused_activation(dictionary, x.device, x.dtype):
        torch.addmm(dictionary.b_enc, inputs, dictionary.W_enc, out=acts)
        native.threshold_activate(acts, _threshold(dictionary), active)
        return acts, active
    mask = torch.empty((min(CHUNK_ROWS, x.shape[0]), dictionary.d_sae), dtype=x.dtype, device=x.device)
    for start in range(0, x.shape[0], CHUNK_ROWS):
        rows = slice(start, start + CHUNK_ROWS)
        pre = torch.addmm(dictionary.b_enc, inputs[rows], dictionary.W_enc, out=acts[rows])
        _activate(dictionary, pre, active[rows], mask[: pre.shape[0]])
    return acts, active


def fused_activation(dictionary: Dictionary, device: torch.device, dtype: torch.dtype) -> bool:
    """Whether ``encode`` takes the fused kernel: float32 JumpReLU or ReLU on CPU, kernels built."""
    return fused_sparse_rows(device, dtype) and dictionary.activation != "topk"


def fused_sparse_rows(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether ``sparse_rows`` takes the fused kernels: float32 on CPU, kernels built."""
    return native.AVAILABLE and device.type == "cpu" and dtype == torch.float32


def _threshold(dictionary: Dictionary) -> torch.Tensor:
    """Per feature, the value a pre-activation must exceed (zeros for a ReLU)."""
    if dictionary.activation == "relu":
        return torch.zeros(dictionary.d_sae)
    return dictionary.threshold.to(torch.float32).expand(dictionary.d_sae).contiguous()


def _activate(dictionary: Dictionary, pre: torch.Tensor, active: torch.Tensor, mask: torch.Tensor) -> None:
    """Apply the activation to ``pre`` in place and write which features are active into ``active``.

    The mask is built in ``pre``'s dtype (``mask``, a scratch buffer), multiplied in, then copied
    (cast) into ``active``: torch's float kernels are vectorized where comparing into, or
    multiplying by, a bool tensor converts element by element (a 4,096 x 2,048 batch on CPU: 5 ms
    against 30). The values are the same: ``pre * 0.0`` keeps the sign of ``pre`` (``-0.0`` for an
    inactive negative pre-activation), as ``pre * False`` does.
    """
    if dictionary.activation == "jumprelu":
        torch.gt(pre, dictionary.threshold, out=mask)
    elif dictionary.activation == "relu":
        torch.gt(pre, 0, out=mask)
    else:
        mask.zero_().scatter_(1, pre.topk(dictionary.k, dim=1).indices, 1.0)
        mask.masked_fill_(pre <= 0, 0.0)
    pre.mul_(mask)
    active.copy_(mask)


def decode(dictionary: Dictionary, acts: torch.Tensor, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
    """The output the features write into layer ``layer + offset`` ([n, d_out]).

    ``offset`` 0 is the dictionary's own output (SAE reconstruction, transcoder output, a CLT's
    same-layer write) with ``b_dec`` and the skip connection; a CLT's later offsets carry only
    its decoder slice (each layer's ``b_dec`` belongs to that layer's own encoder file).
    """
    out = acts.to(dictionary.W_dec.dtype) @ dictionary.W_dec[:, offset, :]
    if offset == 0:
        out.add_(dictionary.b_dec)
        if dictionary.W_skip is not None:
            out.addmm_(x.to(dictionary.W_skip.dtype), dictionary.W_skip.T)
    return out


class ActiveFeatures(NamedTuple):
    """The active features of a batch, row-major ascending: flat positions, rows and indices (int64)."""

    positions: torch.Tensor
    rows: torch.Tensor
    indices: torch.Tensor


def active_features(active: torch.Tensor) -> ActiveFeatures:
    """Where ``active`` ([n, d_sae] bool) is true, found once per batch for the features and metrics.

    On CPU numpy finds the positions (``flat_nonzero``; torch's ``nonzero`` is slower there).
    """
    if active.device.type == "cpu":
        positions = torch.from_numpy(flat_nonzero(active.numpy().reshape(-1)))
    else:
        positions = active.reshape(-1).nonzero().squeeze(1)
    d_sae = active.shape[1]
    if d_sae & (d_sae - 1) == 0:  # a power of two (nearly every dictionary): shift and mask
        shift = d_sae.bit_length() - 1
        return ActiveFeatures(positions, positions >> shift, positions & (d_sae - 1))
    return ActiveFeatures(positions, positions // d_sae, positions % d_sae)


def flat_nonzero(mask: np.ndarray) -> np.ndarray:
    """``np.flatnonzero`` of a 1-D bool ``mask``, eight bytes at a time (about a third faster).

    A feature mask is mostly zero: the 8-byte words with any true byte are found first, then the
    true bytes of those words only.
    """
    whole = len(mask) - len(mask) % 8
    words = mask[:whole].view(np.uint64)
    hit = np.flatnonzero(words != 0)
    inside = np.flatnonzero(np.take(words, hit).view(np.bool_))
    positions = (np.take(hit, inside >> 3) << 3) | (inside & 7)
    if whole == len(mask):
        return positions
    return np.concatenate([positions, whole + np.flatnonzero(mask[whole:])])


def sparse_rows(acts: torch.Tensor, active: torch.Tensor, fused: bool = True) -> SparseRows:
    """Per row, the active feature indices and values, sorted by value descending (ties: lower index).

    On CPU in float32 the fused kernels find them (``native.sparse_rows``); elsewhere torch does
    (``sparse_rows_torch``). Both give the same arrays.
    """
    if fused and fused_sparse_rows(acts.device, acts.dtype):
        return native.sparse_rows(acts, active)
    return sparse_rows_torch(acts, active_features(active))


def sparse_rows_torch(acts: torch.Tensor, active: ActiveFeatures) -> SparseRows:
    """``sparse_rows`` in torch, on any device and dtype.

    Each active value becomes one unique integer key, (row, value descending, index) from the
    high bits to the low, and one unstable sort of the keys orders the batch (a block of rows at a
    time where the three exceed ``native.KEY_BITS``). The value's float32 bits map to an
    order-preserving integer; ``-0.0`` ties with ``0.0``.
    """
    n_rows, d_sae = acts.shape
    index_bits = max(1, (d_sae - 1).bit_length())
    row_shift = native.VALUE_BITS + index_bits
    flat_acts = acts.reshape(-1)
    rows = active.rows
    values = _gathered(flat_acts, active.positions).to(torch.float32)
    keys = _descending_order(values).bitwise_left_shift_(index_bits).bitwise_or_(active.indices)
    block = 2 ** (native.KEY_BITS - row_shift)  # rows whose keys fit in one sort
    if n_rows <= block:
        keys = _sorted(keys.bitwise_or_(rows << row_shift))
    else:
        ends = torch.searchsorted(rows, torch.arange(0, n_rows + block, block, device=rows.device))
        for first, (start, end) in enumerate(zip(ends[:-1].tolist(), ends[1:].tolist(), strict=True)):
            part = slice(start, end)
            keys[part] = _sorted(((rows[part] - first * block) << row_shift) | keys[part])
    indices = (keys & (2**index_bits - 1)).to(torch.int32)  # the rows stay ascending, one run each
    if bool((values == 0).any()):  # a zero's sign is not in its key: read the value back
        values = _gathered(flat_acts, rows * d_sae + indices).to(torch.float32)
    else:
        values = _value_of_order(keys >> index_bits)
    offsets = torch.searchsorted(rows, torch.arange(n_rows + 1, device=rows.device)).to(torch.int32)
    return SparseRows(offsets.cpu().numpy(), indices.cpu().numpy(), values.cpu().numpy())


def feature_lists(rows: SparseRows) -> tuple[pa.ListArray, pa.ListArray]:
    """The features Parquet's ``feature_ids`` and ``feature_values`` columns of a batch."""
    offsets = pa.array(rows.offsets, pa.int32())
    return (
        pa.ListArray.from_arrays(offsets, pa.array(rows.ids), type=ID_LIST),
        pa.ListArray.from_arrays(offsets, pa.array(rows.values), type=VALUE_LIST),
    )


def _flip_positive(bits: torch.Tensor) -> torch.Tensor:
    """In place on int32 float bits: a non-negative one XOR 0x7FFFFFFF, a negative one kept.

    As unsigned 32-bit integers the results order as the floats do, descending (positive floats
    count down from 2**31 - 1, negative ones up from 2**31); applied twice, it is the identity.
    """
    return bits.bitwise_xor_((bits >> 31).bitwise_not_().bitwise_and_(2**31 - 1))


def _descending_order(values: torch.Tensor) -> torch.Tensor:
    """Non-negative int64 of 32 bits that order as the float32 ``values`` do, descending."""
    bits = _flip_positive((values + 0.0).view(torch.int32))  # + 0.0: -0.0 becomes 0.0
    return bits.to(torch.int64).bitwise_and_(2**32 - 1)


def _value_of_order(order: torch.Tensor) -> torch.Tensor:
    """The float32 values of ``_descending_order`` keys (its inverse; bits above 32 ignored)."""
    return _flip_positive(order.to(torch.int32)).view(torch.float32)


def _gathered(flat: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``flat[index]`` (numpy's ``take`` on CPU: a third faster than torch's indexing there)."""
    if flat.device.type == "cpu" and flat.dtype != torch.bfloat16:  # numpy has no bfloat16
        return torch.from_numpy(np.take(flat.numpy(), index.numpy()))
    return flat[index]


def _sorted(keys: torch.Tensor) -> torch.Tensor:
    """``keys`` sorted ascending (unique keys: any sort gives the same result; numpy's is faster)."""
    if keys.device.type == "cpu":
        return torch.from_numpy(np.sort(keys.numpy()))
    return torch.sort(keys).values
