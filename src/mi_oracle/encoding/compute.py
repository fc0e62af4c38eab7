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


def encode(dictionary: Dictionary, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(activations [n, d_sae], active mask) of inputs ``x [n, d_in]``."""
    x = x.to(dictionary.W_enc.dtype)
    if dictionary.apply_b_dec_to_input:
        x = x - dictionary.b_dec
    pre = torch.addmm(dictionary.b_enc, x, dictionary.W_enc)
    if dictionary.activation == "jumprelu":
        active = pre > dictionary.threshold
    elif dictionary.activation == "relu":
        active = pre > 0
    else:
        top = pre.topk(dictionary.k, dim=1).indices
        active = torch.zeros_like(pre, dtype=torch.bool).scatter_(1, top, True) & (pre > 0)
    return pre * active, active


def decode(dictionary: Dictionary, acts: torch.Tensor, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
    """The output the features write into layer ``layer + offset`` ([n, d_out]).

    ``offset`` 0 is the dictionary's own output (SAE reconstruction, transcoder output, a CLT's
    same-layer write) with ``b_dec`` and the skip connection; a CLT's later offsets carry only
    its decoder slice (each layer's ``b_dec`` belongs to that layer's own encoder file).
    """
    out = acts.to(dictionary.W_dec.dtype) @ dictionary.W_dec[:, offset, :]
    if offset == 0:
        out = out + dictionary.b_dec
        if dictionary.W_skip is not None:
            out = out + x.to(dictionary.W_skip.dtype) @ dictionary.W_skip.T
    return out


def sparse_rows(acts: torch.Tensor, active: torch.Tensor) -> tuple[pa.ListArray, pa.ListArray]:
    """Per row, the active feature indices and values, sorted by value descending (ties: lower index)."""
    rows, cols = (t.cpu().numpy() for t in torch.nonzero(active, as_tuple=True))
    values = acts[active].to(torch.float32).cpu().numpy()
    order = np.lexsort((cols, -values, rows))
    counts = active.sum(1).cpu().numpy()
    offsets = np.zeros(len(counts) + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    offsets_array = pa.array(offsets, pa.int32())
    indices = pa.ListArray.from_arrays(offsets_array, pa.array(cols[order].astype(np.int32)))
    return indices, pa.ListArray.from_arrays(offsets_array, pa.array(values[order], pa.float32()))
