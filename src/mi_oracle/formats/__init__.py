"""Dictionary formats on disk, one module each, behind one registry.

Detection, loading, the synthetic writer and resolution (companion files, file-name patterns)
ask this registry only; adding a format is one module implementing ``DictionaryFormat``
(``base.py``) and one line in ``FORMATS``.
"""

from __future__ import annotations

from pathlib import Path

from mi_oracle.errors import DictionaryError
from mi_oracle.formats.base import Detected, DictionaryFormat, Sizes, WriteOptions, safetensors_tensors
from mi_oracle.formats.clt_split import CltSplit
from mi_oracle.formats.gemma_scope_2 import GemmaScope2
from mi_oracle.formats.gemma_scope_npz import GemmaScopeNpz
from mi_oracle.formats.plt_bundle import PltBundle
from mi_oracle.formats.saelens_native import SaeLensNative

# Detection order: a CLT pair, the NPZ, SAELens (by its cfg.json), then the safetensors layouts by
# their encoder tensor's name.
_ORDER: tuple[DictionaryFormat, ...] = (
    CltSplit(),
    GemmaScopeNpz(),
    SaeLensNative(),
    GemmaScope2(),
    PltBundle(),
)
FORMATS: dict[str, DictionaryFormat] = {schema: fmt for fmt in _ORDER for schema in fmt.schemas}
SCHEMAS = tuple(FORMATS)

__all__ = ["FORMATS", "SCHEMAS", "Detected", "Sizes", "WriteOptions", "companions", "detect", "format_of"]


def format_of(schema: str) -> DictionaryFormat:
    """The format registered under ``schema``."""
    if schema not in FORMATS:
        raise DictionaryError(f"schema {schema!r} is unknown (known: {', '.join(SCHEMAS)})")
    return FORMATS[schema]


def detect(files: list[Path], layer: int, n_layers: int) -> Detected:
    """The schema of one layer's files (one file, or a CLT's W_enc/W_dec pair), from headers only."""
    for fmt in _ORDER:
        found = fmt.detect(files, layer, n_layers)
        if found is not None:
            return found
    names = [path.name for path in files]
    if len(files) != 1:
        raise DictionaryError(f"layer {layer}: cannot detect the schema of files {names}")
    path = files[0]
    if path.suffix not in (".npz", ".safetensors"):
        raise DictionaryError(
            f"{path}: cannot detect the dictionary schema from a {path.suffix or 'suffix-less'} file "
            f"(expected .npz or .safetensors; known schemas: {', '.join(SCHEMAS)})"
        )
    raise DictionaryError(
        f"{path}: cannot detect the dictionary schema from tensors {sorted(safetensors_tensors(path))} "
        f"(expected W_enc "
        f"(PltBundle, SAELens with cfg.json), w_enc (Gemma Scope 2) or W_enc_{{l}} (CLT split))"
    )


def companions(name: str, layer: int) -> list[str]:
    """Files that travel with an entry file named ``name`` (a CLT's decoder, a SAELens cfg.json)."""
    return [companion for fmt in _ORDER for companion in fmt.companions(name, layer)]
