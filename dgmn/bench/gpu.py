"""``python -m dgmn.bench gpu``: the Triton kernel on a CUDA device — the only check of it on real hardware.

1. Correctness against the pure-PyTorch reference, forward and the three gradients, relative error
   max|a − b| / max|b| on shapes that cover every kernel path (the DGMN layer's message and deformable-conv calls,
   channel groups of 1 to 128 channels, kernel sizes 3 and 5, nodes far outside the map, a map one pixel high):
   float32 — Triton vs the reference in float32, ≤ 1e-5;
   float16 / bfloat16 — Triton on half inputs vs the reference in float32 on the same inputs (exactly upcast),
   ≤ 1e-3 / ≤ 8e-3: the kernel accumulates in float32 and rounds once to the half output, whose unit roundoff
   is 2⁻¹¹ ≈ 4.9e-4 / 2⁻⁸ ≈ 3.9e-3; the bounds are twice that.
2. ``torch.autograd.gradcheck`` in float64 (full, not fast mode) on a small case.
3. Op timings: Triton (float32 and bfloat16) vs the ``F.grid_sample`` reference (float32), forward and
   forward+backward, at the op benchmark's sizes.
4. Layer timings: full DGMN vs NonLocal2d at 97×97×512 and 128×256×512, forward and forward+backward
   (:mod:`dgmn.bench.layer`, float32, median of ``runs`` runs with their spread).

Exit status 1 if a correctness check or the gradcheck fails. Without CUDA, ``python -m dgmn.bench gpu`` says so in
one line and exits 0.
"""
from __future__ import annotations

import torch

from ..ops import dynamic_aggregate
from . import layer as layer_bench
from .measure import median_time, peak_memory
from .op import SIZES as OP_SIZES
from .op import inputs as op_inputs

TOLERANCE = {"float32": 1e-5, "float16": 1e-3, "bfloat16": 8e-3}
CASES = [  # (name, B, C, H, W, dilations, G, kernel_size, far)
    ("layer message", 1, 512, 33, 47, (12,), 4, 3, False),
    ("deform conv", 1, 405, 33, 47, (6,), 9, 3, False),
    ("3 rates, Cg=16", 2, 64, 17, 19, (1, 2, 3), 4, 3, True),
    ("Cg=32, k=5", 2, 64, 9, 11, (2, 1), 2, 5, True),
    ("Cg=64", 1, 128, 8, 9, (1,), 2, 3, False),
    ("Cg=1", 2, 8, 7, 5, (1, 3, 2), 8, 3, True),
    ("odd Cg=3", 2, 6, 4, 5, (1, 2, 3), 2, 5, False),
    ("1-pixel-high map", 1, 12, 1, 9, (1,), 4, 3, False),
]
GRADCHECK_CASE = ("gradcheck", 1, 8, 6, 7, (1, 2), 2, 3, True)


def case_inputs(case, device, dtype=torch.float32, seed=0):
    _, B, C, H, W, dil, G, ks, far = case
    g = torch.Generator().manual_seed(seed)
    S, K = len(dil), ks * ks
    x = torch.randn(B, C, H, W, generator=g)
    off = torch.randn(B, S * K * 2, H, W, generator=g) * 2.5
    if far:  # every third node far outside the map
        off[:, ::3] += torch.where(torch.rand(off[:, ::3].shape, generator=g) < 0.5, -40.0, 40.0)
    w = torch.randn(B, S * K * G, H, W, generator=g)
    gout = torch.randn(B, C, H, W, generator=g)
    return [t.to(device=device, dtype=dtype) for t in (x, off, w, gout)]


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def forward_backward(x, off, w, gout, dil, ks, impl):
    ins = [t.detach().clone().requires_grad_() for t in (x, off, w)]
    out = dynamic_aggregate(*ins, dil, ks, impl=impl)
    grads = torch.autograd.grad(out, ins, gout)
    return [out.detach()] + list(grads)


def correctness(device="cuda", cases=CASES, dtypes=("float32", "float16", "bfloat16")) -> list[dict]:
    """Triton vs the reference (in float32) on every case and dtype: forward and the three gradients."""
    rows = []
    for case in cases:
        _, B, C, H, W, dil, G, ks, _ = case
        for dtype in dtypes:
            x, off, w, gout = case_inputs(case, device, getattr(torch, dtype))
            got = forward_backward(x, off, w, gout, dil, ks, "triton")
            want = forward_backward(x.float(), off.float(), w.float(), gout.float(), dil, ks, "reference")
            errs = {name: rel_err(a, b) for name, a, b in zip(("out", "grad_x", "grad_offset", "grad_weight"), got, want)}
            worst = max(errs.values())
            rows.append(dict(section="correctness", case=case[0], shape=f"{B}×{C}×{H}×{W} S={len(dil)} G={G} k={ks}",
                             dtype=dtype, **{f"{k}_rel_err": v for k, v in errs.items()}, worst_rel_err=worst,
                             tolerance=TOLERANCE[dtype], ok=worst <= TOLERANCE[dtype]))
    return rows


def gradcheck(device="cuda", case=GRADCHECK_CASE, fast_mode: bool = False) -> dict:
    _, B, C, H, W, dil, G, ks, _ = case
    x, off, w, _ = case_inputs(case, device, torch.float64, seed=3)
    with torch.no_grad():  # fractional parts away from integers, where the bilinear kernel has kinks
        off.copy_(off.round() + 0.25 + 0.5 * torch.rand_like(off))
    ins = [t.requires_grad_() for t in (x, off, w)]
    try:
        ok = torch.autograd.gradcheck(lambda a, b, c: dynamic_aggregate(a, b, c, dil, ks, impl="triton"), ins,
                                      fast_mode=fast_mode)
        error = ""
    except Exception as exc:  # report it, and fail the run through the exit status
        ok, error = False, str(exc).splitlines()[0][:300]
    return dict(section="gradcheck", case=f"{B}×{C}×{H}×{W} S={len(dil)} G={G} k={ks}, float64", ok=bool(ok), error=error)


def op_timings(repeats: int = 5, quick: bool = False, device="cuda") -> list[dict]:
    """Forward and forward+backward of Triton (float32, bfloat16) and the reference (float32) at the op sizes."""
    device = torch.device(device)
    rows = []
    for B, C, H, W, dil, G in OP_SIZES[:2] if quick else OP_SIZES:
        for impl, dtype in (("reference", torch.float32), ("triton", torch.float32), ("triton", torch.bfloat16)):
            x, off, w = (t.to(dtype) for t in op_inputs(B, C, H, W, dil, G, device))
            xg, og, wg = (t.detach().clone().requires_grad_() for t in (x, off, w))
            gout = torch.randn(B, C, H, W, device=device, dtype=dtype)

            def fwd():
                with torch.no_grad():
                    return dynamic_aggregate(x, off, w, dil, impl=impl)

            def fwd_bwd():
                torch.autograd.grad(dynamic_aggregate(xg, og, wg, dil, impl=impl), (xg, og, wg), gout)

            rows.append(dict(section="op", impl=impl, dtype=str(dtype).removeprefix("torch."), B=B, C=C, H=H, W=W,
                             dilations=list(dil), G=G,
                             fwd_ms=median_time(fwd, device, repeats, warmup=2) * 1e3,
                             fwd_bwd_ms=median_time(fwd_bwd, device, repeats, warmup=2) * 1e3,
                             fwd_bwd_peak_mb=peak_memory(fwd_bwd, device) / 2**20))
    for r in rows:
        ref = next(o for o in rows if o["impl"] == "reference" and (o["B"], o["C"], o["H"], o["W"]) == (r["B"], r["C"], r["H"], r["W"]))
        r["fwd_speedup"] = ref["fwd_ms"] / r["fwd_ms"]
        r["fwd_bwd_speedup"] = ref["fwd_bwd_ms"] / r["fwd_bwd_ms"]
    return rows


def run(repeats: int = 3, quick: bool = False, runs: int = 3) -> list[dict]:
    rows = correctness() + [gradcheck()] + op_timings(max(repeats, 5), quick)
    layers = layer_bench.run(repeats, quick, runs, layers=["DGMN full", "NonLocal2d"], device="cuda")
    return rows + [dict(section="layer", **r) for r in layers]


def status(rows: list[dict]) -> int:
    return 0 if all(r["ok"] for r in rows if r["section"] in ("correctness", "gradcheck")) else 1


CORRECTNESS_COLUMNS = [
    ("case", "case", "{}"), ("shape", "B×C×H×W", "{}"), ("dtype", "dtype", "{}"), ("out_rel_err", "out", "{:.1e}"),
    ("grad_x_rel_err", "grad x", "{:.1e}"), ("grad_offset_rel_err", "grad offset", "{:.1e}"),
    ("grad_weight_rel_err", "grad weight", "{:.1e}"), ("tolerance", "≤", "{:.0e}"), ("verdict", "", "{}"),
]
OP_COLUMNS = [
    ("impl", "impl", "{}"), ("dtype", "dtype", "{}"), ("size", "B×C×H×W S G", "{}"), ("fwd_ms", "fwd ms", "{:.3f}"),
    ("fwd_bwd_ms", "fwd+bwd ms", "{:.3f}"), ("fwd_bwd_peak_mb", "fwd+bwd MB", "{:.1f}"),
    ("fwd_speedup", "fwd ×ref", "{:.1f}"), ("fwd_bwd_speedup", "fwd+bwd ×ref", "{:.1f}"),
]


def report(rows: list[dict]) -> list[str]:
    from .op import size_label
    from .table import format_table

    section = lambda name: [r for r in rows if r["section"] == name]  # noqa: E731
    checks = section("correctness")
    lines = ["## Triton vs reference (relative error max|a−b|/max|b|)",
             format_table(checks, CORRECTNESS_COLUMNS, {"verdict": lambda r: "ok" if r["ok"] else "FAILED"})]
    bad = [r for r in checks if not r["ok"]]
    lines.append(f"{len(checks) - len(bad)}/{len(checks)} within tolerance" + (" — FAILED" if bad else ""))
    for g in section("gradcheck"):
        lines.append(f"gradcheck {g['case']}: {'passed' if g['ok'] else 'FAILED ' + g['error']}")
    lines += ["", "## The op: Triton vs the grid_sample reference", format_table(section("op"), OP_COLUMNS, {"size": size_label}),
              "", "## The layer: full DGMN vs NonLocal2d (float32)"]
    lines += layer_bench.report(section("layer"))
    return lines
