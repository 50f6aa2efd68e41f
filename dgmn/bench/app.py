"""``python -m dgmn.bench app``: server-side latency of the app's two interactions, three models.

* upload → all panels: ``Handlers.analyse`` on a 512×1024 image (prepare, run the models, build and
  serialise the segmentation and disagreement figures as Gradio sends them);
* click → rendered figures: ``Handlers.click`` (no model runs: inspection queries, node/attention figures,
  serialised to JSON).

Targets: click ≤ 100 ms, upload ≤ 2 s (medians). Runs in the repository root (it imports ``app.py``).
"""
from __future__ import annotations

import json
import statistics
import time

import numpy as np

MODELS = ["dgmn-full", "fcn-nonlocal", "fcn"]


def _serialise(outputs) -> int:
    n = 0
    for o in outputs:
        if hasattr(o, "to_json"):
            n += len(o.to_json())
        elif isinstance(o, (dict, list)):
            n += len(json.dumps(o))
    return n


def run(repeats: int = 5, quick: bool = False) -> list[dict]:
    import gradio as gr

    import app
    from dgmn.data import ContextScenes
    from dgmn.inspect.explorer import Explorer

    h = app.Handlers(Explorer())
    sc = ContextScenes(seed=7, size=(512, 1024)).scene(0)
    rows = []
    upload_times, analysis = [], None
    for _ in range(2 if quick else repeats):
        t0 = time.perf_counter()
        analysis, shown, status, *figs = h.analyse(sc.image, MODELS)
        _serialise(figs)
        upload_times.append(time.perf_counter() - t0)
    rng = np.random.default_rng(0)
    click_times = []
    for _ in range(10 if quick else 50):
        x, y = int(rng.integers(0, 1024)), int(rng.integers(0, 512))
        t0 = time.perf_counter()
        out = h.click(analysis, MODELS, 0.6, True, None, gr.SelectData(None, {"index": [x, y], "value": None, "selected": True}))
        _serialise(out)
        click_times.append(time.perf_counter() - t0)
    rows.append(dict(interaction="upload 512×1024 → all panels", models=len(MODELS), median_ms=statistics.median(upload_times) * 1e3,
                     p95_ms=sorted(upload_times)[int(0.95 * (len(upload_times) - 1))] * 1e3, runs=len(upload_times), target_ms=2000))
    rows.append(dict(interaction="click → rendered figures", models=len(MODELS), median_ms=statistics.median(click_times) * 1e3,
                     p95_ms=sorted(click_times)[int(0.95 * (len(click_times) - 1))] * 1e3, runs=len(click_times), target_ms=100))
    return rows


COLUMNS = [("interaction", "interaction", "{}"), ("models", "models", "{}"), ("median_ms", "median ms", "{:.0f}"),
           ("p95_ms", "p95 ms", "{:.0f}"), ("runs", "runs", "{}"), ("target_ms", "target ms", "{}")]


def verdicts(rows: list[dict]) -> list[str]:
    return [f"target {r['interaction']}: median {r['median_ms']:.0f} ms (want ≤ {r['target_ms']}) "
            f"{'MET' if r['median_ms'] <= r['target_ms'] else 'MISSED'}" for r in rows]
