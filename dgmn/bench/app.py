"""``python -m dgmn.bench app``: server-side latency of the app's two interactions, three models.

* upload → all panels: the app's analyse handler on a 512×1024 image (prepare, run the models, build and
  serialise the segmentation and disagreement figures as Gradio sends them);
* click → rendered figures: the app's click handler (no model runs: inspection queries, node/attention
  figures, serialised to JSON).

Targets: click ≤ 100 ms, upload ≤ 2 s (medians). Runs anywhere the package is installed (it builds
:mod:`dgmn.app`'s page over the shipped checkpoints).
"""
from __future__ import annotations

import json
import statistics
import time

import numpy as np

MODELS = ["dgmn-full", "fcn-nonlocal", "fcn"]


def _serialise(outputs: dict) -> int:
    n = 0
    for o in outputs.values():
        if hasattr(o, "to_json"):
            n += len(o.to_json())
        elif isinstance(o, (dict, list)):
            n += len(json.dumps(o))
    return n


def run(repeats: int = 5, quick: bool = False) -> list[dict]:
    import gradio as gr

    from ..app import build_page
    from ..data import ContextScenes
    from ..inspect.examples import ExampleSet
    from ..inspect.explorer import Explorer

    page = build_page(Explorer(), ExampleSet([]))[1]
    analyse, click = page.handlers["analyse"], page.handlers["click"]
    sc = ContextScenes(seed=7, size=(512, 1024)).scene(0)
    rows = []
    upload_times, analysis = [], None
    for _ in range(2 if quick else repeats):
        t0 = time.perf_counter()
        out = analyse(sc.image, MODELS)
        analysis = out[page.analysis]
        _serialise({k: v for k, v in out.items() if k is not page.analysis and k is not page.image})
        upload_times.append(time.perf_counter() - t0)
    rng = np.random.default_rng(0)
    click_times = []
    for _ in range(10 if quick else 50):
        x, y = int(rng.integers(0, 1024)), int(rng.integers(0, 512))
        t0 = time.perf_counter()
        out = click(analysis, MODELS, 0.6, True, None, None, gr.SelectData(None, {"index": [x, y], "value": None, "selected": True}))
        _serialise({k: v for k, v in out.items() if k is not page.last_click})
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
