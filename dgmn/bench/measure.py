"""Timing and peak-memory measurement shared by the benchmarks."""
from __future__ import annotations

import os
import re
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from typing import Callable

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_time(fn: Callable[[], object], device: torch.device, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn`` in seconds over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def peak_memory(fn: Callable[[], object], device: torch.device) -> int:
    """Peak bytes allocated by torch during ``fn`` above what was allocated before it.

    CUDA: the caching allocator's own statistics. CPU: the profiler's allocation and free records (every tensor
    allocation goes through torch's CPU allocator), replayed one by one in time order. (Not the per-op "self"
    memory: an op that allocates and frees inside itself, like the custom op running the reference, would have its
    frees counted before its children's allocations, and the peak would come out as little as the output.)
    """
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        sync(device)
        return torch.cuda.max_memory_allocated(device) - base
    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=False)
    with kineto_markers_dropped():
        prof.start()
    try:
        fn()
    finally:
        with kineto_markers_dropped():
            prof.stop()
    host = (DeviceType.CPU, DeviceType.MKLDNN, DeviceType.IDEEP)
    records = sorted(
        (e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]" and e.device_type() in host),
        key=lambda e: e.start_ns(),
    )
    current = peak = 0
    for e in records:
        current += e.nbytes()
        peak = max(peak, current)
    return peak


# Kineto, the profiler's backend, writes a marker line to stderr at every start and stop of a profile, e.g.
#   USDT:2026-12-01 13:45:45 8029:8029 SyncActivityProfilerHandler.cpp:52] profiler_start
# at its "USDT" severity, which only KINETO_LOG_LEVEL=6 turns off — and that also silences Kineto's errors.
_KINETO_MARKER = re.compile(r"^(?:USDT|STAGE):.*ActivityProfilerHandler\.cpp:\d+\] ")


@contextmanager
def kineto_markers_dropped():
    """Within the block, Kineto's marker lines on stderr (file descriptor 2, where C++ writes) are dropped;
    anything else written there is passed on when the block ends."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [l for l in tmp.read().decode(errors="replace").splitlines(True) if not _KINETO_MARKER.match(l)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
