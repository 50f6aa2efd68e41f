"""The Triton kernels compiled ahead of time for real NVIDIA GPUs (sm_80, sm_90), here on a machine without one.

Lowering to PTX and cubin catches what the interpreter (the other Triton tests) cannot: types the backend
rejects, unsupported atomics, register spills. About a minute on 2 cores (36 compiles, once per session).
"""
import pytest
import torch

pytest.importorskip("triton", reason="triton is in requirements-dev.txt")

from dgmn.ops import triton_aot, triton_kernel  # noqa: E402


@pytest.fixture(scope="module")
def rows():
    return triton_aot.compile_all()


def test_every_kernel_compiles_for_both_targets_and_all_three_dtypes(rows):
    got = {(r["site"], r["kernel"], r["target"], r["dtype"]) for r in rows}
    want = {(s.name, k, f"sm_{a}", d) for s in triton_aot.SITES for k in triton_aot.KERNELS
            for a in (80, 90) for d in ("float32", "float16", "bfloat16")}
    assert got == want and len(rows) == len(want)
    for r in rows:
        assert r["cubin_bytes"] > 0 and r["ptx_chars"] > 0, r


def test_no_kernel_spills_registers(rows):
    spilling = [r for r in rows if r["spill_stores"] or r["spill_loads"] or r["stack_bytes"]]
    assert not spilling, spilling
    assert all(0 < r["registers"] <= 255 for r in rows)


class _Recorder:
    def __init__(self):
        self.launches = []

    def __call__(self, launch):  # replaces triton_kernel.run: records, launches nothing
        self.launches.append(launch)


@pytest.mark.parametrize("site", triton_aot.SITES, ids=lambda s: s.name)
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_compiled_launches_are_the_ones_the_launcher_makes(rows, monkeypatch, site, dtype):
    """The launcher, called with tensors of the site's shape, launches exactly the grid, block sizes and
    options that were compiled (the kernels themselves are not run: `run` is replaced by a recorder)."""
    rec = _Recorder()
    monkeypatch.setattr(triton_kernel, "run", rec)
    dt = getattr(torch, dtype)
    K = site.kernel_size**2
    x = torch.zeros(site.B, site.C, site.H, site.W, dtype=dt)
    off = torch.zeros(site.B, 2 * K, site.H, site.W, dtype=dt)
    w = torch.zeros(site.B, K * site.G, site.H, site.W, dtype=dt)
    triton_kernel.forward_triton(x, off, w, [site.dilation], site.kernel_size)
    triton_kernel.backward_triton(x, x, off, w, [site.dilation], site.kernel_size, [True, True, True])
    triton_kernel.backward_triton(x, x, off, w, [site.dilation], site.kernel_size, [False, True, True])
    assert len(rec.launches) == 3
    for kernel, launch in zip(triton_aot.KERNELS, rec.launches):
        compiled = [r for r in rows if (r["site"], r["kernel"], r["dtype"]) == (site.name, kernel, dtype)]
        assert len(compiled) == 2
        for r in compiled:
            assert (r["BLOCK_P"], r["BLOCK_C"]) == (launch.constexprs["BLOCK_P"], launch.constexprs["BLOCK_C"])
            assert r["num_warps"] == launch.options["num_warps"] and r["grid"] == list(launch.grid)
        if kernel != "forward":
            assert launch.constexprs["NEED_GX"] == (kernel == "backward")
