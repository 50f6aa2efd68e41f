"""Compile the Triton kernels ahead of time for real NVIDIA GPUs, on a machine without one.

Triton's interpreter (``TRITON_INTERPRET=1``, the CPU tests) runs the kernels' Python semantics; it never
lowers them, so it cannot see a type the backend rejects, an unsupported atomic, or a block that spills
registers. This module lowers every kernel — the forward, the backward, and the backward without x's gradient —
to PTX and cubin for sm_80 (A100) and sm_90 (H100/H200) in float32, float16 and bfloat16, exactly as the
launcher would launch them: the launch (block sizes, ``num_warps``, options, argument types, and the
integer/alignment specialisations Triton's JIT derives from the arguments) comes from the launcher's own
:func:`~dgmn.ops.triton_kernel.forward_launch` / :func:`~dgmn.ops.triton_kernel.backward_launch`, built here
with stand-in tensors of the shapes the DGMN layer passes. Registers and spills are read from ``ptxas -v``, run by
Triton itself (the ``ptxas`` shipped in the triton wheel, with Triton's flags).

``python -m dgmn.bench op --gpu-compile`` prints the table; ``tests/ops/test_triton_aot.py`` asserts that every
kernel compiles for both targets and all three dtypes without spilling.
"""
from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Iterable, NamedTuple, Optional

import torch

TARGETS = (80, 90)
DTYPES = ("float32", "float16", "bfloat16")
KERNELS = ("forward", "backward", "backward, no grad_x")


class Site(NamedTuple):
    """A call of the op in a DGMN layer: x (B, C, H, W), G channel groups, one rate (the layer calls it per rate)."""

    name: str
    B: int
    C: int
    H: int
    W: int
    G: int
    dilation: int = 1
    kernel_size: int = 3


# The full layer at C=512 on a 97×97 map (Table 1a): the messages (G=4, 128 channels a group), and the deformable
# prediction conv, which samples K·O = 9·45 = 405 channels with one-hot weights (G = K = 9, 45 channels a group).
SITES = (Site("message", 1, 512, 97, 97, 4, 6), Site("deform conv", 1, 405, 97, 97, 9, 6))


def _interpreting() -> bool:
    """Whether this process's Triton was imported under ``TRITON_INTERPRET=1`` (as in the test suite): then
    ``@triton.jit`` — in this package and in ``triton.language`` itself — made interpreter objects, which cannot
    be lowered, and the compile runs in a child process without the variable."""
    import os

    from triton import knobs

    return bool(knobs.runtime.interpret) or os.environ.get("TRITON_INTERPRET") == "1"


def launches(site: Site, dtype: torch.dtype) -> dict[str, object]:
    """The launcher's three launches at ``site`` in ``dtype``, built with stand-in tensors (allocated, never
    written: only their dtype and alignment matter, as for Triton's JIT)."""
    from . import triton_kernel as tk
    S, K = 1, site.kernel_size**2
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    xs = torch.empty(site.B, site.H, site.W, site.C, dtype=dtype)
    off = torch.empty(site.B, S * K * 2, site.H, site.W, dtype=dtype)
    w = torch.empty(site.B, S * K * site.G, site.H, site.W, dtype=dtype)
    dil = torch.tensor([site.dilation], dtype=torch.int32)
    gx, goff, gw = torch.empty(xs.shape, dtype=acc), torch.empty(off.shape, dtype=acc), torch.empty(w.shape, dtype=acc)
    return {
        "forward": tk.forward_launch(xs, off, w, torch.empty_like(xs), dil, site.kernel_size),
        "backward": tk.backward_launch(xs, off, w, torch.empty_like(xs), gx, goff, gw, dil, site.kernel_size, True),
        "backward, no grad_x": tk.backward_launch(xs, off, w, torch.empty_like(xs), torch.empty(1, dtype=acc), goff, gw,
                                                  dil, site.kernel_size, False),
    }


def source(launch, target):
    """Triton's ``ASTSource`` for ``launch``: argument types and specialisations as the JIT derives them."""
    from triton.compiler import ASTSource
    from triton.compiler.compiler import make_backend
    from triton.runtime.jit import native_specialize_impl  # what JITFunction.run uses on its arguments

    from . import triton_kernel as tk
    fn = getattr(tk, launch.kernel)
    backend = make_backend(target)
    signature, constexprs, attrs = {}, {}, {}
    for name, value in launch.args:
        ty, spec = native_specialize_impl(backend, value, False, True, True)
        signature[name] = ty
        if ty == "constexpr":  # an integer equal to 1 is compiled in as a constant, as the JIT does
            constexprs[name] = spec
        elif spec:
            attrs[(fn.arg_names.index(name),)] = backend.parse_attr(spec)
    for name, value in launch.constexprs.items():
        signature[name] = "constexpr"
        constexprs[name] = value
    signature = {name: signature[name] for name in fn.arg_names}
    return ASTSource(fn, signature, constexprs=constexprs, attrs=attrs)


_PTXAS = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")


def compile_one(site: Site, dtype_name: str, kernel: str, arch: int) -> dict:
    """Lower one kernel for sm_``arch``; registers, spills and stack from Triton's own ``ptxas -v`` run."""
    from triton import knobs
    from triton.backends.compiler import GPUTarget
    from triton.compiler import compile as triton_compile

    dtype = getattr(torch, dtype_name)
    launch = launches(site, dtype)[kernel]
    target = GPUTarget("cuda", arch, 32)
    log = io.StringIO()
    t0 = time.perf_counter()
    with knobs.nvidia.scope(), knobs.compilation.scope(), contextlib.redirect_stdout(log):
        knobs.nvidia.dump_ptxas_log = True  # Triton prints ptxas's -v report
        knobs.compilation.always_compile = True  # a cached kernel would skip ptxas and its report
        compiled = triton_compile(source(launch, target), target=target, options=launch.options)
    seconds = time.perf_counter() - t0
    text = log.getvalue()
    regs = re.search(r"Used (\d+) registers", text)
    frame = _PTXAS.search(text)
    if regs is None or frame is None:
        raise RuntimeError(f"no ptxas -v report for {kernel} at {site.name}, sm_{arch}, {dtype_name}:\n{text[-2000:]}")
    stack, spill_stores, spill_loads = (int(v) for v in frame.groups())
    return dict(
        kernel=kernel, site=site.name, target=f"sm_{arch}", dtype=dtype_name,
        BLOCK_P=launch.constexprs["BLOCK_P"], BLOCK_C=launch.constexprs["BLOCK_C"],
        num_warps=launch.options["num_warps"], grid=list(launch.grid),
        registers=int(regs.group(1)), spill_stores=spill_stores, spill_loads=spill_loads, stack_bytes=stack,
        ptx_chars=len(compiled.asm["ptx"]), cubin_bytes=len(compiled.asm["cubin"]), compile_s=seconds,
    )


def _compile_job(job):
    return compile_one(*job)


def compile_all(sites: Iterable[Site] = SITES, dtypes: Iterable[str] = DTYPES, targets: Iterable[int] = TARGETS,
                kernels: Iterable[str] = KERNELS, workers: Optional[int] = None) -> list[dict]:
    """Every (site, dtype, kernel, target) compiled, in ``workers`` processes (default: one per core, up to 4)."""
    sites, dtypes, targets, kernels = list(sites), list(dtypes), list(targets), list(kernels)
    if _interpreting():
        return _in_child(sites, dtypes, targets, kernels, workers)
    jobs = [(s, d, k, a) for s in sites for d in dtypes for k in kernels for a in targets]
    workers = workers or max(1, min(4, len(jobs), os.cpu_count() or 1))
    if workers == 1:
        return [_compile_job(j) for j in jobs]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(_compile_job, jobs))


def _in_child(sites, dtypes, targets, kernels, workers) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    spec = json.dumps(dict(sites=[s._asdict() for s in sites], dtypes=dtypes, targets=targets, kernels=kernels,
                           workers=workers))
    res = subprocess.run([sys.executable, "-m", "dgmn.ops.triton_aot", spec], env=env, capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2])
    if res.returncode != 0:
        raise RuntimeError(f"the ahead-of-time compile failed:\n{res.stderr[-4000:]}")
    return json.loads(res.stdout)


def main(argv=None) -> int:
    """``python -m dgmn.ops.triton_aot [JSON]``: the rows of :func:`compile_all` as JSON (the JSON argument may give
    sites, dtypes, targets, kernels and workers)."""
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(argv[0]) if argv else {}
    if "sites" in spec:
        spec["sites"] = [Site(**s) for s in spec["sites"]]
    print(json.dumps(compile_all(**spec)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
