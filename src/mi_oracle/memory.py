"""Keep a streaming job's memory flat: large buffers go back to the OS when freed.

glibc raises its mmap threshold each time a large mmapped block is freed, so after the first
batch every batch-sized buffer comes from the heap instead, which fragments and grows with the
number of batches. Pinning the threshold turns that adjustment off (it costs an encoding job
about a fifth of its end-to-end speed; benchmarks/RESULTS.md); Arrow is pointed at the same
(system) allocator, since its default (jemalloc) keeps freed pages for reuse.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

import pyarrow as pa

log = logging.getLogger(__name__)
_M_MMAP_THRESHOLD = -3


def pin_mmap_threshold(threshold_bytes: int = 1 << 22) -> bool:
    """Serve allocations of ``threshold_bytes`` or more with mmap, always; False where not glibc."""
    pa.set_memory_pool(pa.system_memory_pool())
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        pinned = bool(libc.mallopt(_M_MMAP_THRESHOLD, ctypes.c_int(threshold_bytes)))
    except (OSError, AttributeError, TypeError):
        pinned = False
    if not pinned:
        log.info("could not pin the malloc mmap threshold (not glibc?); memory may grow with batches")
    return pinned
