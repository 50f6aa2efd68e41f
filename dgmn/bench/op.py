"""``python -m dgmn.bench op``: the dynamic aggregation op, per implementation and size.

For each size: median forward and forward+backward time and peak memory of every available
implementation — ``reference`` (the plain ``F.grid_sample`` implementation, which builds the
(B, C, S·K, H, W) node tensor), ``cpu`` (fused C++ kernel, channels-last input) and ``triton`` (CUDA only).
Targets at B=2, C=64, G=4, three rates, 64×64: cpu ≥ 10× faster than reference in forward, ≥ 5× in
forward+backward, with ≤ 1/10 of its peak memory.

``--gpu-compile``: instead of timing, compile every Triton kernel ahead of time for sm_80 and sm_90 in
float32, float16 and bfloat16 with the launcher's block sizes (:mod:`dgmn.ops.triton_aot`; no GPU needed)
and report registers and spills per kernel, target and dtype.
"""
from __future__ import annotations

import torch

from ..ops import dynamic_aggregate
from .measure import median_time, peak_memory

SIZES = [  # (B, C, H, W, dilations, G)
    (2, 64, 32, 32, (1, 6, 12), 4),
    (2, 64, 64, 64, (1, 6, 12), 4),  # the target size
    (2, 64, 128, 128, (1, 6, 12), 4),
    (1, 512, 64, 128, (1, 6, 12, 24, 36), 4),
]


def op_macs(B, C, H, W, S, K=9) -> int:
    """The op's own multiply-accumulates: per output channel and node, 4 bilinear corners + 1 weight."""
    return B * C * H * W * S * K * 5


def inputs(B, C, H, W, dilations, G, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    S, K = len(dilations), 9
    x = torch.randn(B, C, H, W, generator=g).to(device).contiguous(memory_format=torch.channels_last)
    off = (torch.randn(B, S * K * 2, H, W, generator=g) * 2).to(device)
    w = torch.randn(B, S * K * G, H, W, generator=g).to(device)
    return x, off, w


def run(repeats: int = 5, quick: bool = False) -> list[dict]:
    impls = ["reference", "cpu"] + (["triton"] if torch.cuda.is_available() else [])
    rows = []
    for B, C, H, W, dil, G in SIZES[:2] if quick else SIZES:
        for impl in impls:
            device = torch.device("cuda" if impl == "triton" else "cpu")
            x, off, w = inputs(B, C, H, W, dil, G, device)
            dynamic_aggregate(x, off, w, dil, impl=impl)  # compile / warm up
            xg, og, wg = (t.detach().clone().requires_grad_() for t in (x, off, w))
            gout = torch.randn(B, C, H, W, device=device)

            def fwd():
                with torch.no_grad():
                    return dynamic_aggregate(x, off, w, dil, impl=impl)

            def fwd_bwd():
                out = dynamic_aggregate(xg, og, wg, dil, impl=impl)
                out.backward(gout)
                xg.grad = og.grad = wg.grad = None

            rows.append(
                dict(
                    impl=impl, B=B, C=C, H=H, W=W, dilations=list(dil), G=G,
                    op_gmacs=op_macs(B, C, H, W, len(dil)) / 1e9,
                    fwd_ms=median_time(fwd, device, repeats) * 1e3,
                    fwd_bwd_ms=median_time(fwd_bwd, device, repeats) * 1e3,
                    fwd_peak_mb=peak_memory(fwd, device) / 2**20,
                    fwd_bwd_peak_mb=peak_memory(fwd_bwd, device) / 2**20,
                )
            )
    ref = {(r["B"], r["C"], r["H"], r["W"]): r for r in rows if r["impl"] == "reference"}
    for r in rows:
        base = ref[(r["B"], r["C"], r["H"], r["W"])]
        r["fwd_speedup"] = base["fwd_ms"] / r["fwd_ms"]
        r["fwd_bwd_speedup"] = base["fwd_bwd_ms"] / r["fwd_bwd_ms"]
        r["fwd_bwd_memory_ratio"] = r["fwd_bwd_peak_mb"] / base["fwd_bwd_peak_mb"]
        r["fwd_memory_ratio"] = r["fwd_peak_mb"] / base["fwd_peak_mb"]
    return rows


COLUMNS = [
    ("impl", "impl", "{}"), ("size", "B×C×H×W S G", "{}"), ("fwd_ms", "fwd ms", "{:.2f}"),
    ("fwd_bwd_ms", "fwd+bwd ms", "{:.2f}"), ("fwd_peak_mb", "fwd MB", "{:.1f}"),
    ("fwd_bwd_peak_mb", "fwd+bwd MB", "{:.1f}"), ("fwd_speedup", "fwd ×ref", "{:.1f}"),
    ("fwd_bwd_speedup", "fwd+bwd ×ref", "{:.1f}"), ("fwd_bwd_memory_ratio", "mem/ref", "{:.3f}"),
]


def size_label(r: dict) -> str:
    return f"{r['B']}×{r['C']}×{r['H']}×{r['W']} S={len(r['dilations'])} G={r['G']}"


def verdicts(rows: list[dict]) -> list[str]:
    """The targets at the target size, each marked met or missed."""
    out = []
    for r in rows:
        if r["impl"] == "cpu" and (r["B"], r["C"], r["H"], r["W"], r["G"], len(r["dilations"])) == (2, 64, 64, 64, 4, 3):
            for label, value, target, better in [
                ("forward speed-up vs grid_sample", r["fwd_speedup"], 10, "≥"),
                ("forward+backward speed-up vs grid_sample", r["fwd_bwd_speedup"], 5, "≥"),
                ("forward+backward peak memory / grid_sample's", r["fwd_bwd_memory_ratio"], 0.1, "≤"),
                ("forward peak memory / grid_sample's", r["fwd_memory_ratio"], 0.1, "≤"),
            ]:
                ok = value >= target if better == "≥" else value <= target
                out.append(f"target {label}: {value:.3g} (want {better} {target}) {'MET' if ok else 'MISSED'}")
    return out


def run_gpu_compile() -> list[dict]:
    from ..ops.triton_aot import compile_all

    return compile_all()


GPU_COMPILE_COLUMNS = [
    ("kernel", "kernel", "{}"), ("site", "call site", "{}"), ("target", "target", "{}"), ("dtype", "dtype", "{}"),
    ("blocks", "BLOCK_P×BLOCK_C", "{}"), ("num_warps", "warps", "{}"), ("registers", "registers", "{}"),
    ("spill_stores", "spill stores B", "{}"), ("spill_loads", "spill loads B", "{}"), ("stack_bytes", "stack B", "{}"),
    ("cubin_bytes", "cubin B", "{}"), ("compile_s", "compile s", "{:.1f}"),
]


def gpu_compile_report(rows: list[dict]) -> list[str]:
    from .table import format_table

    lines = [format_table(rows, GPU_COMPILE_COLUMNS, {"blocks": lambda r: f"{r['BLOCK_P']}×{r['BLOCK_C']}"})]
    spilling = [r for r in rows if r["spill_stores"] or r["spill_loads"]]
    lines.append(f"{len(rows)} kernels compiled (ptxas -v from the triton wheel); "
                 + ("none spills registers" if not spilling else f"{len(spilling)} SPILL registers"))
    return lines
