"""Sparse rows and the fused CPU kernels, bit for bit against plain sorts and the torch path."""

from __future__ import annotations

import hashlib
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mi_oracle.encoding import compute, native
from mi_oracle.encoding.compute import encode, feature_lists, sparse_rows
from mi_oracle.encoding.loaders import Dictionary


def test_sparse_rows_sort_by_value_descending():
    acts = torch.tensor([[0.5, 3.0, 0.0, 3.0, 1.0]])
    ids, values = feature_lists(sparse_rows(acts, acts > 0))
    assert ids.to_pylist() == [[1, 3, 4, 0]] and values.to_pylist() == [[3.0, 3.0, 1.0, 0.5]]


@pytest.mark.parametrize("key_bits", [native.KEY_BITS, 46])  # 46: sorted in two blocks of 32 rows
@pytest.mark.parametrize("zeros", [True, False])  # values read back from the batch, or from the keys
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])  # bfloat16: torch's own gather
@pytest.mark.parametrize("fused", [True, False])  # float32 on CPU: the fused kernels, or torch
def test_sparse_rows_match_a_plain_sort_with_negative_values_ties_and_signed_zeros(
    monkeypatch, key_bits, zeros, dtype, fused
):
    monkeypatch.setattr(native, "KEY_BITS", key_bits)
    generator = torch.Generator().manual_seed(1)
    pre = torch.randn(64, 300, generator=generator).round(decimals=1)  # many ties, some -0.0
    if not zeros:
        pre[pre == 0] = 0.05
    active = pre > -0.3  # a negative threshold: negative and zero values are active
    acts = (pre * active).to(dtype)
    ids, values = feature_lists(sparse_rows(acts, active, fused=fused))
    for row, (got_ids, got_values) in enumerate(zip(ids.to_pylist(), values.to_pylist(), strict=True)):
        want = sorted(torch.nonzero(active[row]).flatten().tolist(), key=lambda c: (-float(acts[row, c]), c))
        assert got_ids == want and got_values == [float(acts[row, c]) for c in want]
        signs = [math.copysign(1.0, v) for v in got_values]
        assert signs == [math.copysign(1.0, float(acts[row, c])) for c in want]
    assert any(v < 0 for row in values.to_pylist() for v in row)


@pytest.mark.parametrize("size", [0, 5, 64, 8 * 1000, 8 * 1000 + 3])
def test_flat_nonzero_is_numpys_flatnonzero(size):
    rng = np.random.default_rng(size)
    for density in (0.0, 0.03, 0.5, 1.0):
        mask = rng.random(size) < density
        np.testing.assert_array_equal(compute.flat_nonzero(mask), np.flatnonzero(mask))
    mask = np.zeros(size, bool)
    mask[size - 1 :] = True  # the last byte alone (in the tail when size % 8)
    np.testing.assert_array_equal(compute.flat_nonzero(mask), np.flatnonzero(mask))


def random_dictionary(activation: str, d_in: int, d_sae: int, seed: int, b_dec_input: bool) -> Dictionary:
    """Weights rounded to a few bits, so pre-activations tie, hit the thresholds and are zero."""
    generator = torch.Generator().manual_seed(seed)
    threshold = (torch.randn(d_sae, generator=generator) * 0.5).round(decimals=1)  # some negative
    return Dictionary(
        layer=0,
        schema="GemmaScopeNpz",
        activation=activation,
        k=None,
        W_enc=(torch.randn(d_in, d_sae, generator=generator) * 4).round() / 4,
        b_enc=(torch.randn(d_sae, generator=generator) * 4).round() / 4,
        threshold=threshold if activation == "jumprelu" else None,
        W_dec=torch.randn(d_sae, 1, d_in, generator=generator),
        b_dec=torch.randn(d_in, generator=generator).round(),
        apply_b_dec_to_input=b_dec_input,
    )


@pytest.mark.parametrize("activation", ["jumprelu", "relu"])
@pytest.mark.parametrize(("rows", "d_sae"), [(0, 64), (1, 300), (37, 2048), (700, 301)])
@pytest.mark.parametrize("b_dec_input", [False, True])
def test_the_fused_kernels_give_the_torch_paths_bits(activation, rows, d_sae, b_dec_input):
    """The fused activation (700 rows: split over two threads) and sparse rows, against torch's.

    Widths off a multiple of 16 reach the kernels' scalar tails; inactive negative pre-activations
    become -0.0 in both, and a feature active at exactly 0.0 (a negative threshold) is listed."""
    dictionary = random_dictionary(activation, 8, d_sae, seed=rows + d_sae, b_dec_input=b_dec_input)
    x = (torch.randn(rows, 8, generator=torch.Generator().manual_seed(rows)) * 2).round() / 2
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        fused_acts, fused_active = encode(dictionary, x)
    finally:
        torch.set_num_threads(threads)
    torch_acts, torch_active = encode(dictionary, x, fused=False)
    assert torch.equal(fused_acts.view(torch.int32), torch_acts.view(torch.int32))
    assert torch.equal(fused_active, torch_active)
    fused_rows = sparse_rows(fused_acts, fused_active)
    torch_rows = sparse_rows(torch_acts, torch_active, fused=False)
    for name in ("offsets", "ids", "values"):
        got, want = getattr(fused_rows, name), getattr(torch_rows, name)
        assert got.dtype == want.dtype and np.array_equal(got.view(np.int32), want.view(np.int32)), name
    if rows > 1:
        assert (fused_acts.view(torch.int32) == -(2**31)).any()  # -0.0 written for inactive negatives
        assert len(fused_rows.ids) > 0


UNBUILT_KERNELS = """
import hashlib, sys
sys.modules["mi_oracle.encoding._sparse_kernels"] = None  # as in a source tree never built
from mi_oracle.encoding import compute, native
from tests.test_encoding_kernels import random_dictionary
import torch
dictionary = random_dictionary("jumprelu", 8, 300, seed=5, b_dec_input=False)
x = (torch.randn(40, 8, generator=torch.Generator().manual_seed(5)) * 2).round() / 2
acts, active = compute.encode(dictionary, x)
rows = compute.sparse_rows(acts, active)
assert not native.AVAILABLE and not compute.fused_sparse_rows(x.device, x.dtype)
print(hashlib.sha256(acts.numpy().tobytes() + b"".join(a.tobytes() for a in rows)).hexdigest())
"""


def test_without_the_built_kernels_encoding_takes_the_torch_path_with_the_same_bits():
    result = subprocess.run(
        [sys.executable, "-c", UNBUILT_KERNELS], capture_output=True, text=True, cwd=Path(__file__).parents[1]
    )
    assert result.returncode == 0, result.stderr
    dictionary = random_dictionary("jumprelu", 8, 300, seed=5, b_dec_input=False)
    x = (torch.randn(40, 8, generator=torch.Generator().manual_seed(5)) * 2).round() / 2
    acts, active = encode(dictionary, x)
    assert compute.fused_activation(dictionary, x.device, x.dtype)  # here: the fused kernels
    rows = sparse_rows(acts, active)
    fused = hashlib.sha256(acts.numpy().tobytes() + b"".join(a.tobytes() for a in rows)).hexdigest()
    assert result.stdout.strip() == fused


def test_the_fused_kernels_refuse_a_tensor_they_cannot_read():
    pre = torch.zeros(4, 8)
    with pytest.raises(
        ValueError, match=r"pre-activations: expected a contiguous torch\.float32.*not contig"
    ):
        native.threshold_activate(pre.T, torch.zeros(4), torch.zeros(8, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="threshold"):
        native.threshold_activate(
            pre, torch.zeros(8, dtype=torch.float64), torch.ones(4, 8, dtype=torch.bool)
        )
    with pytest.raises(ValueError, match=r"expected \(8,\)"):
        native.threshold_activate(pre, torch.zeros(4), torch.ones(4, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="active mask"):
        native.sparse_rows(pre, torch.zeros(4, 8))
