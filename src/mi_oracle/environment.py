"""What made an output: interpreter, platform and the versions of the libraries that matter."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

TRACKED_PACKAGES = (
    "mi-oracle",
    "torch",
    "transformers",
    "huggingface_hub",
    "safetensors",
    "numpy",
    "pyarrow",
    "gguf",
    "accelerate",
    "snakemake",
    "threadpoolctl",
)


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str | None]:
    """Installed version of each named distribution, ``None`` where it is not installed."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def describe_environment(device: str = "cpu") -> dict[str, object]:
    """A JSON-ready record of the interpreter, the platform, the tracked package versions and the
    hardware (CPU, kernel choices, BLAS libraries; the GPU when ``device`` is CUDA)."""
    from mi_oracle.hardware import hardware_fingerprint

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "packages": package_versions(),
        "hardware": hardware_fingerprint(device),
    }
