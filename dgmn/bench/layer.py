"""``python -m dgmn.bench layer``: DGMN variants, DCNv2 and CCNet vs NonLocal2d at C=512, forward and forward+backward.

Sizes: 97×97 (Table 1a's setting) and 128×256 (a 1024×2048 Cityscapes image at output stride 8).
Forward is inference (eval mode, no grad); forward+backward is a training step of the layer (train mode, the
input and every parameter get gradients from a fixed random output gradient). Each timing is the median of
``repeats`` calls; the whole set is measured ``runs`` times, layer after layer in every run (so a noisy moment
hits all layers alike), and the table reports the median run with the spread (lowest–highest) of the runs.
Also reported: peak memory, the MACs of convolutions and matrix products (``count_macs``, the paper's
convention) and, separately, the aggregation op's own MACs.
Targets (forward, full DGMN vs NonLocal2d): ≤ 0.5 of its time at 97×97 and ≤ 0.15 at 128×256 (the MAC ratio).
"""
from __future__ import annotations

import statistics

import torch

from ..modules import DGMN, CrissCross2d, DeformableContext, NonLocal2d, count_macs
from .measure import median_time, peak_memory, sync
from .op import op_macs

VARIANTS = {
    "DGMN DA": dict(dilations=(1,), groups=None, random_walk=False),
    "DGMN DA+DW": dict(dilations=(1,), groups=4, random_walk=False),
    "DGMN DA+DW+US": dict(dilations=(1, 6, 12, 24, 36), groups=4, random_walk=False),
    "DGMN full": dict(dilations=(1, 6, 12, 24, 36), groups=4, random_walk=True),
}
OTHERS = ["DCN", "CCNet"]  # the other context modules to compare (issue 15): DCNv2 at dilation 1, criss-cross R = 2
LAYERS = list(VARIANTS) + OTHERS + ["NonLocal2d"]
SIZES = [(97, 97), (128, 256)]
C = 512
TARGETS = {(97, 97): 0.5, (128, 256): 0.15}


def build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if name in ("DCN", "CCNet"):
        layer = DeformableContext(C, dilation=1) if name == "DCN" else CrissCross2d(C, recurrence=2)
        with torch.no_grad():  # trained-like: offsets of a few pixels and uneven masks; attention that adds to u
            if name == "DCN":
                layer.offset_mask.bias.normal_(std=2.0)
            else:
                layer.gamma.fill_(1.0)
        return layer
    layer = NonLocal2d(C) if name == "NonLocal2d" else DGMN(C, **VARIANTS[name])
    if isinstance(layer, DGMN) and layer.random_walk:  # trained-like walks, not all zeros
        with torch.no_grad():
            for conv in layer.walk_convs:
                conv.weight.normal_(std=1e-3)
                conv.bias.normal_(std=2.0)
    return layer


def layer_op_macs(layer: torch.nn.Module, H: int, W: int) -> int:
    """MACs of the dynamic aggregation op calls: the messages, plus the deformable prediction convs' sampling
    (DCN: its taps' sampling)."""
    if isinstance(layer, DeformableContext):
        return layer.sampling_macs(H, W)
    if not isinstance(layer, DGMN):
        return 0
    K, S = layer.kernel_size**2, len(layer.dilations)
    total = op_macs(1, C, H, W, S, K)
    if layer.random_walk and layer.filter_affinity_convs is not None:
        O = layer.filter_affinity_convs[0].out_channels
        total += S * H * W * K * O * 5  # one live node per output channel (one-hot weights)
    return total


def calls(layer: torch.nn.Module, x: torch.Tensor):
    """(forward, forward+backward) of ``layer`` on ``x`` as zero-argument functions."""
    xg = x.detach().clone().requires_grad_()
    gout = torch.randn(x.shape, generator=torch.Generator().manual_seed(1)).to(x.device)
    params = list(layer.parameters())

    def fwd():
        layer.eval()
        with torch.no_grad():
            return layer(x)

    def fwd_bwd():
        layer.train()
        layer(xg).backward(gout)
        xg.grad = None
        for p in params:
            p.grad = None

    return fwd, fwd_bwd


def run(repeats: int = 3, quick: bool = False, runs: int = 3, layers=None, sizes=None, device=None) -> list[dict]:
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    layers = list(layers or LAYERS)
    rows = []
    for H, W in sizes or (SIZES[:1] if quick else SIZES):
        x = torch.randn(1, C, H, W, device=device)
        if device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        built = {name: build(name).to(device) for name in layers}
        fns = {name: calls(m, x) for name, m in built.items()}
        for fwd, fwd_bwd in fns.values():  # warm-up (and the CPU kernel's one-time compile)
            fwd(), fwd_bwd()
        sync(device)
        timed = {name: {"fwd": [], "fwd_bwd": []} for name in layers}
        for _ in range(runs):
            for name in layers:
                for kind, fn in zip(("fwd", "fwd_bwd"), fns[name]):
                    timed[name][kind].append(median_time(fn, device, repeats, warmup=0) * 1e3)
        for name, layer in built.items():
            fwd, fwd_bwd = fns[name]
            row = dict(
                layer=name, H=H, W=W, C=C, runs=runs, repeats=repeats,
                params_m=sum(p.numel() for p in layer.parameters()) / 1e6,
                gmacs=count_macs(layer, (1, C, H, W)) / 1e9,
                op_gmacs=layer_op_macs(layer, H, W) / 1e9,
                fwd_peak_mb=peak_memory(fwd, device) / 2**20,
                fwd_bwd_peak_mb=peak_memory(fwd_bwd, device) / 2**20,
            )
            for kind in ("fwd", "fwd_bwd"):
                row[f"{kind}_ms_runs"] = timed[name][kind]
                row[f"{kind}_ms"] = statistics.median(timed[name][kind])
            rows.append(row)
        del built, fns
    for r in rows:
        nl = next((o for o in rows if o["layer"] == "NonLocal2d" and (o["H"], o["W"]) == (r["H"], r["W"])), None)
        if nl is None:
            continue
        for kind in ("fwd", "fwd_bwd"):  # the ratio within each run, then its median and spread
            ratios = [a / b for a, b in zip(r[f"{kind}_ms_runs"], nl[f"{kind}_ms_runs"])]
            r[f"{kind}_vs_nonlocal_runs"] = ratios
            r[f"{kind}_vs_nonlocal"] = statistics.median(ratios)
        r["macs_vs_nonlocal"] = r["gmacs"] / nl["gmacs"]
    return rows


def spread(r: dict, key: str, fmt: str) -> str:
    """Median (lowest–highest) of the per-run values ``r[key + "_runs"]``."""
    vals = r.get(f"{key}_runs")
    if not vals:
        return ""
    return f"{fmt.format(statistics.median(vals))} ({fmt.format(min(vals))}–{fmt.format(max(vals))})"


COLUMNS = [
    ("layer", "layer", "{}"), ("size", "C×H×W", "{}"), ("params_m", "params M", "{:.3f}"),
    ("gmacs", "GMACs", "{:.2f}"), ("op_gmacs", "op GMACs", "{:.2f}"), ("fwd", "fwd ms", "{}"),
    ("fwd_bwd", "fwd+bwd ms", "{}"), ("fwd_peak_mb", "fwd MB", "{:.0f}"), ("fwd_bwd_peak_mb", "fwd+bwd MB", "{:.0f}"),
    ("fwd_ratio", "fwd time/NL", "{}"), ("fwd_bwd_ratio", "fwd+bwd time/NL", "{}"), ("macs_vs_nonlocal", "MACs/NL", "{:.2f}"),
]
DERIVED = {
    "size": lambda r: f"{r['C']}×{r['H']}×{r['W']}",
    "fwd": lambda r: spread(r, "fwd_ms", "{:.0f}"),
    "fwd_bwd": lambda r: spread(r, "fwd_bwd_ms", "{:.0f}"),
    "fwd_ratio": lambda r: spread(r, "fwd_vs_nonlocal", "{:.3f}"),
    "fwd_bwd_ratio": lambda r: spread(r, "fwd_bwd_vs_nonlocal", "{:.3f}"),
}


def report(rows: list[dict]) -> list[str]:
    from .table import format_table

    runs = rows[0]["runs"] if rows else 0
    lines = [format_table(rows, COLUMNS, DERIVED),
             f"times: median of {runs} runs (lowest–highest), each run the median of {rows[0]['repeats'] if rows else 0} calls"]
    for (H, W), target in TARGETS.items():
        r = next((o for o in rows if o["layer"] == "DGMN full" and (o["H"], o["W"]) == (H, W)), None)
        if r is not None and "fwd_vs_nonlocal" in r:
            ratios = r["fwd_vs_nonlocal_runs"]
            ok = r["fwd_vs_nonlocal"] <= target
            lines.append(
                f"target DGMN full forward time / NonLocal2d's at {C}×{H}×{W}: {r['fwd_vs_nonlocal']:.3f} "
                f"(runs {', '.join(f'{v:.3f}' for v in ratios)}; want ≤ {target}) {'MET' if ok else 'MISSED'}; "
                f"forward+backward: {r['fwd_bwd_vs_nonlocal']:.3f}"
            )
    return lines
