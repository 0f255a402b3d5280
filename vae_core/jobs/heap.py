"""glibc heap tuning for a process whose job is training (the CLI, torchrun ranks, the app's job workers; never the
server): keep freed memory for the next step instead of handing it back to the OS, and hand it back before a long
wait."""
from __future__ import annotations

import ctypes


def keep_freed_heap() -> bool:
    """glibc malloc keeps freed memory for reuse instead of handing it back to the OS at every free. By default glibc
    serves each tensor over its (adaptive) mmap threshold with a fresh mapping and trims the heap's top once ~2x that
    is free: a training step's activations and gradients were faulted in afresh at every step (~25k page faults in a
    2-epoch 784-400-20 job in a worker process against ~9k with this; that job 2.6% slower). The cost: the process
    keeps its peak heap, not just what it uses. True where it applied (glibc); elsewhere nothing changes."""
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the running C library's
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
    # 32 MiB: glibc's own ceiling for the adaptive threshold; larger tensors are still mapped and unmapped
    return bool(mallopt(m_mmap_threshold, 32 << 20)) & bool(mallopt(m_trim_threshold, 256 << 20))


class _MallInfo2(ctypes.Structure):  # glibc's struct mallinfo2 (malloc.h, glibc 2.33+)
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def trim_freed_heap(keep_bytes: int) -> bool:
    """Hand the freed heap back to the OS if more than keep_bytes of it is free (glibc's malloc_trim): for a process
    under keep_freed_heap() that is about to sit idle after a large job (a spare worker after rehearsing a 64x64 RGB
    conv model held ~360 MB it no longer used). True if it trimmed; False below keep_bytes or without glibc."""
    try:
        libc = ctypes.CDLL(None)
        mallinfo2, malloc_trim = libc.mallinfo2, libc.malloc_trim
    except (OSError, AttributeError):
        return False
    mallinfo2.restype = _MallInfo2
    if mallinfo2().fordblks <= keep_bytes:
        return False
    malloc_trim(0)
    return True
