"""Encoder and decoder arithmetic on canonical dictionaries (see ``loaders``), in torch.

JumpReLU is ``pre * (pre > threshold)`` (circuit-tracer and candle-mi; SAELens's
``relu(pre) * (pre > threshold)`` differs only for negative thresholds), ReLU is
``max(pre, 0)``, TopK keeps the ``k`` largest pre-activations (then ReLU).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import torch

from mi_oracle.encoding.loaders import Dictionary

CHUNK_ROWS = 1024  # rows per GEMM + activation step: the chunk's pre-activations stay in cache


def encode(
    dictionary: Dictionary, x: torch.Tensor, out: tuple[torch.Tensor, torch.Tensor] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(activations [n, d_sae], active mask) of inputs ``x [n, d_in]``, computed a chunk of rows at a time.

    ``out``: buffers of at least ``n`` rows to write into (a streaming caller reuses them per batch).
    """
    x = x.to(dictionary.W_enc.dtype)
    if out is None:
        acts = torch.empty((x.shape[0], dictionary.d_sae), dtype=x.dtype, device=x.device)
        active = torch.empty(acts.shape, dtype=torch.bool, device=x.device)
    else:
        acts, active = out[0][: x.shape[0]], out[1][: x.shape[0]]
    for start in range(0, x.shape[0], CHUNK_ROWS):
        rows = slice(start, start + CHUNK_ROWS)
        inputs = x[rows] - dictionary.b_dec if dictionary.apply_b_dec_to_input else x[rows]
        pre = torch.addmm(dictionary.b_enc, inputs, dictionary.W_enc, out=acts[rows])
        _activate(dictionary, pre, active[rows])
    return acts, active


def _activate(dictionary: Dictionary, pre: torch.Tensor, active: torch.Tensor) -> None:
    """Apply the activation to ``pre`` in place and write which features are active into ``active``."""
    if dictionary.activation == "jumprelu":
        torch.gt(pre, dictionary.threshold, out=active)
    elif dictionary.activation == "relu":
        torch.gt(pre, 0, out=active)
    else:
        active.zero_().scatter_(1, pre.topk(dictionary.k, dim=1).indices, True)
        active &= pre > 0
    pre.mul_(active)


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


def sparse_rows(acts: torch.Tensor, active: torch.Tensor) -> tuple[pa.ListArray, pa.ListArray]:
    """Per row, the active feature indices and values, sorted by value descending (ties: lower index).

    One stable sort of every active value of the batch on an integer key: the row in the high 32
    bits, the value's float32 bits mapped to an order-preserving integer (descending) in the low
    ones. The flat positions of the active values come ascending (row-major), so equal values keep
    the lower index first; on CPU numpy finds them in one pass (torch's ``nonzero`` takes two).
    """
    d_sae = active.shape[1]
    if active.device.type == "cpu":
        flat = torch.from_numpy(np.flatnonzero(active.numpy()))
    else:
        flat = active.reshape(-1).nonzero().squeeze(1)
    rows, cols = flat // d_sae, flat % d_sae
    values = acts.reshape(-1)[flat].to(torch.float32)
    bits = (values + 0.0).view(torch.int32).to(torch.int64)  # + 0.0: -0.0 ties with 0.0
    ascending = torch.where(bits >= 0, bits + 2**31, -1 - bits)  # orders as the floats do
    order = torch.argsort(rows * 2**32 + (2**32 - 1 - ascending), stable=True)
    counts = torch.bincount(rows, minlength=active.shape[0]).cpu().numpy()
    offsets = np.zeros(len(counts) + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    offsets_array = pa.array(offsets, pa.int32())
    indices = cols[order].to(torch.int32).cpu().numpy()
    return (
        pa.ListArray.from_arrays(offsets_array, pa.array(indices, pa.int32())),
        pa.ListArray.from_arrays(offsets_array, pa.array(values[order].cpu().numpy(), pa.float32())),
    )
