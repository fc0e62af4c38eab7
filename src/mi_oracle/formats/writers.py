"""Write dictionary files in their real formats, byte-for-byte reproducibly and atomically."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where tensors are made: the Snakefile imports this module
    import torch

import numpy as np

from mi_oracle.atomic import atomic_file

_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """An NPZ (a zip of .npy files, as ``np.savez`` writes) with fixed timestamps and member order."""
    with atomic_file(Path(path)) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_FIXED_TIME)
            info.external_attr = 0o644 << 16
            with archive.open(info, "w", force_zip64=True) as handle:
                np.lib.format.write_array(handle, np.ascontiguousarray(arrays[name]), allow_pickle=False)


def write_safetensors(path: Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> None:
    """A safetensors file (tensors made contiguous), written under a temporary name.

    The metadata goes in as one sorted JSON string under ``mi_oracle``: safetensors serialises a
    metadata map in hash order, which would make the bytes differ from run to run.
    """
    from safetensors.torch import save_file

    header = {"mi_oracle": json.dumps(dict(metadata), sort_keys=True)}
    with atomic_file(Path(path)) as tmp:
        save_file({name: t.contiguous() for name, t in tensors.items()}, str(tmp), metadata=header)
