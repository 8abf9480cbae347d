"""Give freed heap memory back to the operating system.

Moving image bytes through the server (the registry reading blobs in 1 MiB chunks, the platform
channel carrying them to the puller, the puller hashing and writing them) allocates and frees
many large buffers from several threads. glibc keeps what is freed in its per-thread arenas for
reuse, and once a large ``mmap``-ed buffer has been freed it raises its mmap threshold, so later
buffers of that size come from those arenas too: after a pull the process keeps ~100 MiB of
free heap it will not use again soon. ``malloc_trim(0)`` returns the free pages of every arena
(``madvise(MADV_DONTNEED)``), which is what a long-running control plane wants after a burst.
Pinning the threshold instead (``M_MMAP_THRESHOLD``) keeps the heap small too, but makes every
large buffer a fresh ``mmap`` and costs CPU on every byte moved.

On a C library without ``malloc_trim`` (musl, macOS) :func:`trim` does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        function = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    trim: Callable[[int], int] = function
    return trim


def trim() -> bool:
    """Return free heap pages to the OS; whether anything was released (False when unsupported).
    Thread-safe (glibc takes each arena's lock); call it off the event loop after a burst."""
    function = _malloc_trim()
    return bool(function(0)) if function is not None else False
