"""The format registry: every format writes, detects and loads its own layout, and detection and
loading agree on what a layer holds (canonical orientation, sizes, schema)."""

from __future__ import annotations

import pytest
import torch

from mi_oracle.errors import DictionaryError
from mi_oracle.formats import FORMATS, WriteOptions, companions, detect, format_of, schemas
from mi_oracle.formats.base import Sizes

D_MODEL, D_SAE, N_LAYERS, LAYER = 6, 10, 4, 1


def canonical(schema: str) -> dict[str, torch.Tensor]:
    """Random weights in the canonical orientation (W_dec [d_sae, n_out, d_out])."""
    generator = torch.Generator().manual_seed(7)
    n_out = N_LAYERS - LAYER if schema.startswith("CltSplit") else 1
    weights = {
        "W_enc": torch.randn(D_MODEL, D_SAE, generator=generator),
        "b_enc": torch.randn(D_SAE, generator=generator),
        "W_dec": torch.randn(D_SAE, n_out, D_MODEL, generator=generator),
        "b_dec": torch.randn(D_MODEL, generator=generator),
    }
    if schema in ("GemmaScopeNpz", "GemmaScope2", "CltSplitJumpReLU", "SaeLensNative"):
        weights["threshold"] = torch.rand(D_SAE, generator=generator)
    if schema in ("PltBundle", "GemmaScope2"):
        weights["W_skip"] = torch.randn(D_MODEL, D_MODEL, generator=generator)
    return weights


@pytest.mark.parametrize("schema", schemas())
def test_each_format_round_trips_through_its_own_layout(tmp_path, schema):
    weights = canonical(schema)
    fmt = format_of(schema)
    options = WriteOptions(torch.float32, {"format": schema}, {"average_l0": 12.4, "hook_name": "blocks.1.x"})
    relative = fmt.write(tmp_path, LAYER, weights, options)
    files = [tmp_path / relative]
    files += [files[0].parent / name for name in companions(files[0].name, LAYER)]
    found = detect([f for f in files if f.suffix != ".json"], LAYER, N_LAYERS)
    assert (found.schema, found.d_model, found.d_sae) == (schema, D_MODEL, D_SAE)
    loaded = fmt.load(files, LAYER, Sizes(D_MODEL, D_SAE, N_LAYERS, schema))
    for name, value in weights.items():
        torch.testing.assert_close(loaded[name], value, rtol=0, atol=0, msg=f"{schema}: {name}")
    assert all(loaded[name] is None for name in set(loaded) - set(weights))


def test_the_registry_knows_each_schema_once_and_refuses_unknown_ones(tmp_path):
    assert sorted(schemas()) == sorted(
        ["GemmaScopeNpz", "GemmaScope2", "PltBundle", "CltSplit", "CltSplitJumpReLU", "SaeLensNative"]
    )
    assert FORMATS["CltSplit"] is FORMATS["CltSplitJumpReLU"]
    with pytest.raises(DictionaryError, match="schema 'Sparsify' is unknown"):
        format_of("Sparsify")
    (tmp_path / "weights.pt").write_bytes(b"")
    with pytest.raises(DictionaryError, match=r"cannot detect the dictionary schema from a \.pt file"):
        detect([tmp_path / "weights.pt"], 0, N_LAYERS)
