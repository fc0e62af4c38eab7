"""What made an output: interpreter, platform and the versions of the libraries that matter."""

from __future__ import annotations

import functools
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

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


@functools.cache
def code_origin() -> dict[str, object]:
    """Where the running mi_oracle package was imported from, and that checkout's git commit
    (``dirty``: tracked files differ from it); both ``None`` outside a git checkout. Asked once per
    process: encoding records it per layer."""
    package = Path(__file__).resolve().parent
    origin: dict[str, object] = {"package": str(package), "git_commit": None, "dirty": None}
    try:
        commit = subprocess.run(
            ["git", "-C", str(package), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        status = subprocess.run(
            ["git", "-C", str(package), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return origin
    if commit.returncode == 0 and status.returncode == 0:
        origin.update(git_commit=commit.stdout.strip(), dirty=bool(status.stdout.strip()))
    return origin


def describe_environment(device: str = "cpu") -> dict[str, object]:
    """A JSON-ready record of the interpreter, the platform, the tracked package versions and the
    hardware (CPU, kernel choices, BLAS libraries; the GPU when ``device`` is CUDA)."""
    from mi_oracle.hardware import hardware_fingerprint

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "packages": package_versions(),
        "code": dict(code_origin()),
        "hardware": hardware_fingerprint(device),
    }
