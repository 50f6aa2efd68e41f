"""``python -m dgmn.bench dgmn2 [--original DGMN2_SRC]``: DGMN2-Tiny + Semantic FPN inference on the CPU (issue 18).

Two inputs: one 769×769 crop (``forward``) and a 1024×2048 image with sliding windows (crop 769, stride 513, mmseg's
``slide_inference``: 8 crops). Variants: our port with the fused sampled-attention op (``ours fused``), our port's
unfused path (``ours unfused``: keys by ``grid_sample``, values by ``dynamic_aggregate``), and — with
``--original DGMN2_SRC`` (a checkout or ``git archive`` export of fudan-zvg/DGMN2) — THEIR code built from their
Tiny FPN Cityscapes config with the stand-ins of ``tools/dgmn2_fixtures`` (deform unfold by ``grid_sample``), loaded
with the same random weights as ours (their state dict is ours: identity key map). float32, eval, no grad.

Each timing is the median of ``repeats`` calls; the set is measured ``runs`` times, variant after variant in every
run (a noisy moment hits all alike); the table gives the median run (lowest–highest). The ratio to the original is
taken within each run. Target (issue 18): ours fused ≤ 0.6 × the original's time on the 769×769 crop.
"""
from __future__ import annotations

import importlib.util
import os
import statistics
from pathlib import Path
from typing import Optional

import torch

from .measure import median_time

TOOLS = Path(__file__).resolve().parents[2] / "tools" / "dgmn2_fixtures"
TARGET = 0.6
SIZES = {"crop 769×769": (769, 769), "slide 1024×2048": (1024, 2048)}


def build_ours():
    from ..models.dgmn2 import DGMN2Config

    torch.manual_seed(0)
    return DGMN2Config.preset("tiny", "fpn").build().eval()


def build_original(src: str):
    """THEIR Tiny FPN model (an mmseg ``EncoderDecoder``) on the stand-ins; imports tools/dgmn2_fixtures by path."""
    path = TOOLS / "make_fixtures.py"
    if not path.is_file():
        raise SystemExit(f"python -m dgmn.bench dgmn2: {path} is missing (it holds the stand-ins for --original)")
    spec = importlib.util.spec_from_file_location("dgmn2_make_fixtures", path)
    mf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mf)
    root = Path(src)
    mf.import_dgmn2(root)
    torch.manual_seed(0)
    return mf.mm.build_segmentor(mf.model_cfg(root, "fpn", "tiny")).eval()


class _Original(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model, self.num_classes = model, model.num_classes

    def forward(self, image):
        return self.model.encode_decode(image)


def _set_fused(on: bool) -> None:
    from ..models.dgmn2 import DGMN2Attention

    DGMN2Attention.fused = on


def run(repeats: int = 3, quick: bool = False, runs: int = 3, original: Optional[str] = None,
        sizes: Optional[list[str]] = None) -> list[dict]:
    from ..models.dgmn2 import slide_inference

    ours = build_ours()
    variants = {"ours fused": (ours, True), "ours unfused": (ours, False)}
    check = {}
    if original:
        theirs = build_original(original)
        ours.load_state_dict(theirs.state_dict(), strict=True)  # identity key map: the same weights
        variants["original"] = (_Original(theirs), None)
    sizes = sizes or (list(SIZES)[:1] if quick else list(SIZES))
    rows = []
    for size in sizes:
        H, W = SIZES[size]
        g = torch.Generator().manual_seed(1)
        image = torch.randn(1, 3, H, W, generator=g)
        slide = size.startswith("slide")

        def call(model, fused):
            if fused is not None:
                _set_fused(fused)
            with torch.no_grad():
                return slide_inference(model, image, 769, 513) if slide else model(image)

        outs = {name: call(m, f) for name, (m, f) in variants.items()}  # warm-up (and the kernels' one-time build)
        ref = outs["ours unfused"]
        for name, o in outs.items():
            check[(size, name)] = float((o - ref).abs().max() / ref.abs().max())
        del outs
        times = {name: [] for name in variants}
        reps = 1 if slide else repeats
        for _ in range(runs):
            for name, (m, f) in variants.items():
                times[name].append(median_time(lambda: call(m, f), torch.device("cpu"), reps, warmup=0))
        _set_fused(True)
        for name in variants:
            row = dict(input=size, variant=name, runs=runs, repeats=reps, seconds_runs=times[name],
                       seconds=statistics.median(times[name]), max_rel_diff_vs_unfused=check[(size, name)])
            if "original" in times:
                ratios = [a / b for a, b in zip(times[name], times["original"])]
                row["vs_original_runs"], row["vs_original"] = ratios, statistics.median(ratios)
            rows.append(row)
    load = os.getloadavg()
    for r in rows:
        r["loadavg_after"] = [round(v, 2) for v in load]
    return rows


def _spread(vals, fmt):
    return f"{fmt.format(statistics.median(vals))} ({fmt.format(min(vals))}–{fmt.format(max(vals))})"


def report(rows: list[dict]) -> list[str]:
    from .table import format_table

    cols = [("input", "input", "{}"), ("variant", "variant", "{}"), ("s", "seconds", "{}"),
            ("r", "time / original", "{}"), ("max_rel_diff_vs_unfused", "max |Δ| / max |unfused|", "{:.1e}")]
    derived = {"s": lambda r: _spread(r["seconds_runs"], "{:.2f}"),
               "r": lambda r: _spread(r["vs_original_runs"], "{:.2f}") if "vs_original_runs" in r else "—"}
    lines = [format_table(rows, cols, derived)]
    if rows:
        lines.append(f"times: median of {rows[0]['runs']} runs (lowest–highest), each the median of the row's calls "
                     f"(crop: {rows[0]['repeats']}, slide: 1); load average after: {rows[0]['loadavg_after']}")
    r = next((o for o in rows if o["variant"] == "ours fused" and o["input"].startswith("crop") and "vs_original" in o), None)
    if r is not None:
        ok = r["vs_original"] <= TARGET
        lines.append(f"target ours fused / original on the 769×769 crop: {r['vs_original']:.2f} "
                     f"(runs {', '.join(f'{v:.2f}' for v in r['vs_original_runs'])}; want ≤ {TARGET}) "
                     f"{'MET' if ok else 'MISSED'}")
    else:
        lines.append("no --original DGMN2_SRC given: the original's time (and the ≤ 0.6 target) is not measured")
    return lines
