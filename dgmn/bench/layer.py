"""``python -m dgmn.bench layer``: DGMN variants vs NonLocal2d, forward (inference) at C=512.

Sizes: 97×97 (Table 1a's setting) and 128×256 (a 1024×2048 Cityscapes image at output stride 8).
Reports the median forward time (eval mode, no grad), its peak memory, the MACs of convolutions and
matrix products (``count_macs``, the paper's convention) and, separately, the aggregation op's own MACs.
Targets: the full DGMN layer's forward ≤ 50% of NonLocal2d's time at 97×97 and ≤ 20% at 128×256.
"""
from __future__ import annotations

import torch

from ..modules import DGMN, NonLocal2d, count_macs
from .measure import median_time, peak_memory
from .op import op_macs

VARIANTS = {
    "DGMN DA": dict(dilations=(1,), groups=None, random_walk=False),
    "DGMN DA+DW": dict(dilations=(1,), groups=4, random_walk=False),
    "DGMN DA+DW+US": dict(dilations=(1, 6, 12, 24, 36), groups=4, random_walk=False),
    "DGMN full": dict(dilations=(1, 6, 12, 24, 36), groups=4, random_walk=True),
}
SIZES = [(97, 97), (128, 256)]
C = 512


def build(name: str) -> torch.nn.Module:
    return NonLocal2d(C) if name == "NonLocal2d" else DGMN(C, **VARIANTS[name])


def layer_op_macs(layer: torch.nn.Module, H: int, W: int) -> int:
    """MACs of the dynamic aggregation op calls: the messages, plus the deformable prediction convs' sampling."""
    if not isinstance(layer, DGMN):
        return 0
    K, S = layer.kernel_size**2, len(layer.dilations)
    total = op_macs(1, C, H, W, S, K)
    if layer.random_walk and layer.filter_affinity_convs is not None:
        O = layer.filter_affinity_convs[0].out_channels
        total += S * H * W * K * O * 5  # one live node per output channel (one-hot weights)
    return total


def run(repeats: int = 3, quick: bool = False) -> list[dict]:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rows = []
    for H, W in SIZES[:1] if quick else SIZES:
        x = torch.randn(1, C, H, W, device=device)
        if device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        for name in list(VARIANTS) + ["NonLocal2d"]:
            torch.manual_seed(0)
            layer = build(name).to(device).eval()
            if isinstance(layer, DGMN) and layer.random_walk:  # trained-like walks, not all zeros
                with torch.no_grad():
                    for conv in layer.walk_convs:
                        conv.weight.normal_(std=1e-3)
                        conv.bias.normal_(std=2.0)

            def fwd():
                with torch.no_grad():
                    return layer(x)

            rows.append(
                dict(
                    layer=name, H=H, W=W, C=C,
                    params_m=sum(p.numel() for p in layer.parameters()) / 1e6,
                    gmacs=count_macs(layer, (1, C, H, W)) / 1e9,
                    op_gmacs=layer_op_macs(layer, H, W) / 1e9,
                    fwd_ms=median_time(fwd, device, repeats) * 1e3,
                    fwd_peak_mb=peak_memory(fwd, device) / 2**20,
                )
            )
    for r in rows:
        nl = next(o for o in rows if o["layer"] == "NonLocal2d" and (o["H"], o["W"]) == (r["H"], r["W"]))
        r["time_vs_nonlocal"] = r["fwd_ms"] / nl["fwd_ms"]
        r["macs_vs_nonlocal"] = r["gmacs"] / nl["gmacs"]
    return rows


COLUMNS = [
    ("layer", "layer", "{}"), ("size", "C×H×W", "{}"), ("params_m", "params M", "{:.3f}"),
    ("gmacs", "GMACs", "{:.2f}"), ("op_gmacs", "op GMACs", "{:.2f}"), ("fwd_ms", "fwd ms", "{:.0f}"),
    ("fwd_peak_mb", "fwd MB", "{:.0f}"), ("time_vs_nonlocal", "time/NL", "{:.2f}"),
    ("macs_vs_nonlocal", "MACs/NL", "{:.2f}"),
]


def size_label(r: dict) -> str:
    return f"{r['C']}×{r['H']}×{r['W']}"


def verdicts(rows: list[dict]) -> list[str]:
    out = []
    for (H, W), target in {(97, 97): 0.5, (128, 256): 0.2}.items():
        r = next((o for o in rows if o["layer"] == "DGMN full" and (o["H"], o["W"]) == (H, W)), None)
        if r is not None:
            ok = r["time_vs_nonlocal"] <= target
            out.append(
                f"target DGMN full forward time / NonLocal2d's at {H}×{W}×{C}: {r['time_vs_nonlocal']:.3f} "
                f"(want ≤ {target}) {'MET' if ok else 'MISSED'}"
            )
    return out
