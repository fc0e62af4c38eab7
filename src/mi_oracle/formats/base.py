"""What every dictionary format shares: header readers, tensor checks, readers, writers, and the
small protocol a format module implements (``mi_oracle.formats`` registers them by name)."""

from __future__ import annotations

import json
import re
import struct
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from mi_oracle.errors import DictionaryError, MiOracleError

if TYPE_CHECKING:  # torch is imported where tensors are made: the Snakefile imports this module
    import torch

_NPY_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}
_SAFETENSORS_DTYPES = {"F32": "float32", "BF16": "bfloat16", "F16": "float16", "F64": "float64"}


@dataclass(frozen=True)
class Tensor:
    """Shape and dtype of one stored tensor."""

    shape: tuple[int, ...]
    dtype: str


@dataclass
class Detected:
    """A layer's schema, its sizes and every tensor of every file, as read from headers."""

    schema: str
    d_model: int
    d_sae: int
    tensors: dict[str, dict[str, Tensor]] = field(default_factory=dict)
    details: dict[str, object] = field(default_factory=dict)


def npz_tensors(path: Path) -> dict[str, Tensor]:
    """Shapes and dtypes of an NPZ's arrays from their .npy headers; pickled arrays are refused."""
    tensors = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if not member.endswith(".npy"):
                    raise DictionaryError(f"{path}: member {member!r} is not a .npy array")
                with archive.open(member) as handle:
                    version = np.lib.format.read_magic(handle)
                    read_header = _NPY_HEADER_READERS.get(version)
                    if read_header is None:
                        raise DictionaryError(f"{path}: array {member!r} has .npy version {version}")
                    shape, _fortran, dtype = read_header(handle)
                if dtype.hasobject:
                    raise DictionaryError(
                        f"{path}: array {member[:-4]!r} holds Python objects (a pickle); refused, "
                        "as np.load(allow_pickle=False) would; expected numeric arrays"
                    )
                tensors[member[:-4]] = Tensor(tuple(int(n) for n in shape), dtype.name)
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise DictionaryError(f"{path}: not a readable NPZ archive ({error})") from error
    return tensors


def read_safetensors_header(path: Path, error_type: type[MiOracleError] = DictionaryError) -> dict:
    """The JSON header of a safetensors file, read without loading any tensor."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length <= 0 or length > 100 * 1024 * 1024:
                raise ValueError(f"header length {length} is implausible")
            header = json.loads(handle.read(length))
    except (OSError, struct.error, ValueError) as error:
        raise error_type(f"{path}: not a readable safetensors file ({error})") from error
    if not isinstance(header, dict):
        raise error_type(f"{path}: safetensors header is not a JSON object")
    return header


def safetensors_tensors(path: Path) -> dict[str, Tensor]:
    """Shapes and dtypes of a safetensors file's tensors, from its header."""
    header = read_safetensors_header(path)
    return {
        name: Tensor(tuple(entry["shape"]), _SAFETENSORS_DTYPES.get(entry["dtype"], entry["dtype"]))
        for name, entry in header.items()
        if name != "__metadata__"
    }


def expect(where: str, tensors: Mapping[str, Tensor], shapes: Mapping[str, tuple[int, ...]]) -> None:
    """Every named tensor present with the expected shape, or an error naming file, tensor and shape."""
    for name, shape in shapes.items():
        if name not in tensors:
            raise DictionaryError(
                f"{where}: tensor {name!r} is missing (expected shape {list(shape)}; found "
                f"{', '.join(sorted(tensors)) or 'no tensors'})"
            )
        if tensors[name].shape != shape:
            raise DictionaryError(
                f"{where}: tensor {name!r} has shape {list(tensors[name].shape)}, expected {list(shape)}"
            )


def shape_of(where: str, tensors: Mapping[str, Tensor], name: str, rank: int) -> tuple[int, ...]:
    if name not in tensors:
        raise DictionaryError(f"{where}: tensor {name!r} is missing (found {', '.join(sorted(tensors))})")
    shape = tensors[name].shape
    if len(shape) != rank:
        raise DictionaryError(f"{where}: tensor {name!r} has shape {list(shape)}, expected {rank} dimensions")
    return shape


def read_npz(path: Path) -> dict[str, torch.Tensor]:
    import torch

    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: torch.from_numpy(np.array(archive[name])) for name in archive.files}
    except ValueError as error:
        raise DictionaryError(f"{path}: refused ({error}); expected numeric arrays, never pickles") from error
    except (OSError, EOFError, zipfile.BadZipFile) as error:  # a damaged member: a bad CRC-32
        raise DictionaryError(f"{path}: not a readable NPZ archive ({error})") from error


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except Exception as error:  # safetensors raises its own error types
        raise DictionaryError(f"{path}: not a readable safetensors file ({error})") from error


def take(
    path: Path, tensors: Mapping[str, torch.Tensor], name: str, shape: tuple[int, ...], schema: str, allowed
) -> torch.Tensor:
    """The tensor ``name`` with ``shape``, in an allowed stored dtype and finite, or a clear error."""
    if name not in tensors:
        raise DictionaryError(
            f"{path}: tensor {name!r} is missing (expected shape {list(shape)}; "
            f"found {', '.join(sorted(tensors))})"
        )
    tensor = tensors[name]
    if tuple(tensor.shape) != shape:
        raise DictionaryError(
            f"{path}: tensor {name!r} has shape {list(tensor.shape)}, expected {list(shape)}"
        )
    found = str(tensor.dtype).removeprefix("torch.")
    if found not in allowed:
        names = ", ".join(sorted(allowed))
        raise DictionaryError(f"{path}: tensor {name!r} is {found}, but {schema} stores {names}")
    finite = tensor.isfinite()
    if not finite.all():
        bad = int((~finite).sum())
        raise DictionaryError(f"{path}: tensor {name!r} has {bad} non-finite values (NaN or inf)")
    return tensor


@dataclass(frozen=True)
class SyntheticRecipe:
    """How the workflow writes a synthetic set of one schema (``dictionaries[].synthetic``).

    ``hooks``: kind -> (input hook, output hook) the published dictionaries of the schema use;
    ``default_kind``: the kind when the config names none (``sae``: SAEs at the captured layers,
    reading and writing one hook); ``activation``: ``relu`` or ``jumprelu``; ``dtype``: stored
    dtype; ``skip``: fit a skip connection; ``listed``: the curation YAML lists the layer files
    (else they are found beside it by name); ``cross_layer``: the decoder writes later layers too.
    """

    default_kind: str
    hooks: Mapping[str, tuple[str, str]]
    activation: str
    dtype: str
    skip: bool = False
    listed: bool = False
    cross_layer: bool = False


class DictionaryFormat(Protocol):
    """One on-disk schema: how to recognise, load and write one layer of it, and its facts.

    ``schemas``: the names it detects (a CLT split with or without thresholds is two);
    ``stored_dtypes``: what it may hold on disk; ``beside_yaml``: the file name pattern (group 1:
    the layer) of its layer files when a curation YAML of kind ``beside_yaml_kind`` lists none
    (``beside_yaml_example`` spells it for errors); ``config_files``: companion files that hold
    no weights; ``reference_kind``: the reference (``plt``, ``clt``) its sets make, None if
    none; ``reference_repo_keys``: the repo keys candle-mi's readers expect in that reference;
    ``encoder_stored_transposed``: W_enc is stored [d_model, d_sae]; ``synthetic``: schema ->
    recipe, for the schemas the workflow can write as synthetic sets.
    """

    schemas: tuple[str, ...]
    stored_dtypes: frozenset[str]
    beside_yaml: re.Pattern[str] | None
    beside_yaml_kind: str | None
    beside_yaml_example: str | None
    config_files: frozenset[str]
    reference_kind: str | None
    reference_repo_keys: tuple[str, ...]
    encoder_stored_transposed: bool
    synthetic: Mapping[str, SyntheticRecipe]

    def detect(self, files: list[Path], layer: int, n_layers: int) -> Detected | None:
        """The layer's schema and sizes from headers, or None when the files are not this format's."""

    def companions(self, name: str, layer: int) -> list[str]:
        """Files that travel with an entry file of this format (a CLT decoder, a SAELens cfg.json)."""

    def load(self, paths: list[Path], layer: int, sizes: Sizes) -> dict[str, torch.Tensor | None]:
        """The canonical tensors (W_enc [d_in, d_sae], ..., W_dec [d_sae, n_out, d_out])."""

    def write(
        self, folder: Path, layer: int, weights: Mapping[str, torch.Tensor], options: WriteOptions
    ) -> str:
        """Write canonical ``weights`` of ``layer`` under ``folder``; return the entry's relative path."""


class FormatFacts:
    """The defaults of ``DictionaryFormat``'s facts: a format module subclasses this and sets
    only what differs (no listing pattern, no config files, no reference, no synthetic recipe)."""

    beside_yaml: re.Pattern[str] | None = None
    beside_yaml_kind: str | None = None
    beside_yaml_example: str | None = None
    config_files: frozenset[str] = frozenset()
    reference_kind: str | None = None
    reference_repo_keys: tuple[str, ...] = ()
    encoder_stored_transposed: bool = False
    synthetic: Mapping[str, SyntheticRecipe] = {}


@dataclass(frozen=True)
class Sizes:
    """What loading a layer checks its tensors against."""

    d_model: int
    d_sae: int
    n_layers: int
    schema: str


@dataclass(frozen=True)
class WriteOptions:
    """How a layer is written: stored dtype, safetensors metadata, and layout hints (GemmaScope's
    ``average_l0`` folder name)."""

    dtype: torch.dtype
    metadata: Mapping[str, str]
    hints: Mapping[str, Any] = field(default_factory=dict)


def stored(value: torch.Tensor, dtype: torch.dtype | str) -> torch.Tensor:
    """A contiguous copy in the stored dtype (a torch dtype or its name, e.g. ``"float32"``)."""
    import torch

    target = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    return torch.as_tensor(value).contiguous().to(target)
