"""The hardware an output was computed on, and the kernels the libraries picked for it.

Last bits of a result depend on these: the CPU (vendor, model, the instruction sets it has), the
ISA level ATen dispatches to, MKL's code branch, the BLAS libraries with their core types and
threads, glibc (its libm picks FMA or SSE2 variants by the CPU), and on a GPU the card, its
compute capability, the driver, CUDA and cuDNN.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
from pathlib import Path
from typing import Any

import torch

CPU_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile")
# MKL's mkl_cbwr_get(MKL_CBWR_BRANCH) answers (mkl_cbwr.h)
MKL_BRANCHES = {
    0: "OFF",
    1: "BRANCH_OFF",
    2: "AUTO",
    3: "COMPATIBLE",
    4: "SSE2",
    6: "SSSE3",
    7: "SSE4_1",
    8: "SSE4_2",
    9: "AVX",
    10: "AVX2",
    11: "AVX512_MIC",
    12: "AVX512",
    13: "AVX512_MIC_E1",
    14: "AVX512_E1",
}
KERNEL_VARIABLES = (
    "MKL_CBWR",
    "MKL_ENABLE_INSTRUCTIONS",
    "MKL_DEBUG_CPU_TYPE",
    "MKL_NUM_THREADS",
    "MKL_DYNAMIC",
    "ATEN_CPU_CAPABILITY",
    "ONEDNN_MAX_CPU_ISA",
    "OMP_NUM_THREADS",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_NUM_THREADS",
    "GLIBC_TUNABLES",
)


@functools.cache
def _torch_library() -> ctypes.CDLL | None:
    path = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    try:
        return ctypes.CDLL(str(path))
    except OSError:
        return None


def mkl_branch() -> str | None:
    """MKL's code branch as torch's MKL reports it (``COMPATIBLE`` in portable mode); None without MKL."""
    library = _torch_library()
    query = getattr(library, "mkl_serv_cbwr_get", None) if library is not None else None
    if query is None or not torch.backends.mkl.is_available():
        return None
    query.restype, query.argtypes = ctypes.c_int, [ctypes.c_int]
    code = query(1)
    return MKL_BRANCHES.get(code, str(code))


def _cpuinfo() -> dict[str, Any]:
    fields: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {"vendor": None, "model": platform.processor() or None, "flags": []}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    flags = set(fields.get("flags", "").split())
    return {
        "vendor": fields.get("vendor_id"),
        "model": fields.get("model name"),
        "flags": [flag for flag in CPU_FLAGS if flag in flags],
    }


def _blas_libraries() -> list[dict[str, Any]]:
    from threadpoolctl import threadpool_info

    keep = ("internal_api", "version", "architecture", "threading_layer", "num_threads")
    return [
        {key: info.get(key) for key in keep} | {"library": Path(info["filepath"]).name}
        for info in threadpool_info()
    ]


def _gpu(device: str) -> dict[str, Any] | None:
    if not device.startswith("cuda") or not torch.cuda.is_available():
        return None
    index = torch.device(device).index or 0
    properties = torch.cuda.get_device_properties(index)
    driver = Path("/proc/driver/nvidia/version")
    return {
        "name": properties.name,
        "compute_capability": f"{properties.major}.{properties.minor}",
        "memory_mib": properties.total_memory // 2**20,
        "driver": driver.read_text(encoding="utf-8").splitlines()[0] if driver.exists() else None,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
    }


def hardware_fingerprint(device: str = "cpu") -> dict[str, Any]:
    """CPU, kernel choices, BLAS libraries and (for a CUDA ``device``) the GPU, as JSON-ready values."""
    return {
        "cpu": _cpuinfo(),
        "logical_cpus": os.cpu_count(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "mkl_branch": mkl_branch(),
        "blas": _blas_libraries(),
        "libc": "-".join(platform.libc_ver()),
        "kernel_variables": {name: os.environ[name] for name in KERNEL_VARIABLES if name in os.environ},
        "gpu": _gpu(device),
    }
