"""Dictionary formats on disk, one module each, behind one registry.

Detection, loading, the synthetic writer, resolution (companion files, file-name patterns), the
references (kind, repo keys, encoder formula) and the config schema (synthetic schemas) ask this
registry only; adding a format is one module implementing ``DictionaryFormat`` (``base.py``)
and one line in ``_ORDER`` (or one ``register`` call).
"""

from __future__ import annotations

from pathlib import Path

from mi_oracle.errors import DictionaryError
from mi_oracle.formats.base import (
    Detected,
    DictionaryFormat,
    Sizes,
    SyntheticRecipe,
    WriteOptions,
    safetensors_tensors,
)
from mi_oracle.formats.clt_split import CltSplit
from mi_oracle.formats.gemma_scope_2 import GemmaScope2
from mi_oracle.formats.gemma_scope_npz import GemmaScopeNpz
from mi_oracle.formats.plt_bundle import PltBundle
from mi_oracle.formats.saelens_native import SaeLensNative

# Detection order: a CLT pair, the NPZ, SAELens (by its cfg.json), then the safetensors layouts by
# their encoder tensor's name.
_ORDER: list[DictionaryFormat] = [
    CltSplit(),
    GemmaScopeNpz(),
    SaeLensNative(),
    GemmaScope2(),
    PltBundle(),
]
FORMATS: dict[str, DictionaryFormat] = {}

__all__ = [
    "FORMATS",
    "Detected",
    "Sizes",
    "SyntheticRecipe",
    "WriteOptions",
    "companions",
    "detect",
    "format_of",
    "listing_format",
    "register",
    "schemas",
    "synthetic_recipe",
    "synthetic_schemas",
    "weight_files",
]


def _index() -> None:
    FORMATS.clear()
    FORMATS.update({schema: fmt for fmt in _ORDER for schema in fmt.schemas})


_index()


def register(fmt: DictionaryFormat, first: bool = False) -> None:
    """Add a format: detected after the others (``first``: before them, for a more specific layout)."""
    taken = sorted(set(fmt.schemas) & set(FORMATS))
    if taken:
        raise DictionaryError(f"schemas {taken} are registered already")
    if first:
        _ORDER.insert(0, fmt)
    else:
        _ORDER.append(fmt)
    _index()


def schemas() -> tuple[str, ...]:
    """Every registered schema name."""
    return tuple(FORMATS)


def synthetic_schemas() -> tuple[str, ...]:
    """The schemas the workflow can write as synthetic sets."""
    return tuple(schema for schema, fmt in FORMATS.items() if schema in fmt.synthetic)


def synthetic_recipe(schema: str) -> SyntheticRecipe:
    """How a synthetic set of ``schema`` is written; a schema with no recipe is an error."""
    recipe = format_of(schema).synthetic.get(schema)
    if recipe is None:
        raise DictionaryError(
            f"schema {schema!r} cannot be written as a synthetic set (can: {', '.join(synthetic_schemas())})"
        )
    return recipe


def listing_format(kind: str) -> DictionaryFormat:
    """The format whose layer files a curation YAML of ``kind`` with no ``transcoders`` list means."""
    for fmt in _ORDER:
        if fmt.beside_yaml is not None and fmt.beside_yaml_kind == kind:
            return fmt
    raise DictionaryError(f"no format lists the layer files of a {kind} by file name")


def weight_files(paths: list[Path]) -> list[Path]:
    """``paths`` without the formats' config companions (a SAELens cfg.json holds no weights)."""
    configs = {name for fmt in _ORDER for name in fmt.config_files}
    return [path for path in paths if path.name not in configs]


def format_of(schema: str) -> DictionaryFormat:
    """The format registered under ``schema``."""
    if schema not in FORMATS:
        raise DictionaryError(f"schema {schema!r} is unknown (known: {', '.join(schemas())})")
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
            f"(expected .npz or .safetensors; known schemas: {', '.join(schemas())})"
        )
    raise DictionaryError(
        f"{path}: cannot detect the dictionary schema from tensors {sorted(safetensors_tensors(path))} "
        f"(expected W_enc "
        f"(PltBundle, SAELens with cfg.json), w_enc (Gemma Scope 2) or W_enc_{{l}} (CLT split))"
    )


def companions(name: str, layer: int) -> list[str]:
    """Files that travel with an entry file named ``name`` (a CLT's decoder, a SAELens cfg.json)."""
    return [companion for fmt in _ORDER for companion in fmt.companions(name, layer)]
