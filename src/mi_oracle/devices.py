"""Device and dtype settings as the config spells them, for every stage that runs torch."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(requested: str) -> torch.device:
    """``auto`` is CUDA when present, else CPU; anything else is taken as given."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """torch's CPU ops on ``threads`` threads for the block; the previous count restored after."""
    previous = torch.get_num_threads()
    if previous != threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if previous != threads:
            torch.set_num_threads(previous)


def cpu_threads(device: torch.device, threads: int) -> AbstractContextManager[None]:
    """``torch_threads(threads)`` where ``device`` is the CPU; elsewhere the count is left alone."""
    return torch_threads(threads if device.type == "cpu" else torch.get_num_threads())
