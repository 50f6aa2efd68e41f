"""``python -m dgmn.bench app``: server-side latency of the app's two interactions, three models.

* upload → all panels: the app's analyse handler on a 512×1024 image (prepare, run the models, build and
  serialise the segmentation and disagreement figures as Gradio sends them);
* click → rendered figures: the app's click handler (no model runs: inspection queries, node/attention
  figures, serialised to JSON).

* what-if: "Apply at this pixel" (switch off rate #2) on an example scene and on the 512×1024 upload;
* training slider: moving between the timeline snapshots of the selected models (example scene);
* where a class looks: a class's flow and heat map per model (example scene), first view and cached.

Targets: click ≤ 100 ms, upload ≤ 2 s, what-if ≤ 150 ms (example scene) and ≤ 600 ms (512×1024), slider move ≤ 300 ms, where a class looks ≤ 300 ms (medians). Runs anywhere the package is installed (it builds
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
    rows.append(row("upload 512×1024 → all panels", upload_times, 2000))
    rows.append(row("click → rendered figures", click_times, 100))
    rows += what_if_rows(page, analysis, rng, quick)
    rows += timeline_rows(page, rng, quick)
    rows += flow_rows(page, quick)
    return rows


def flow_rows(page, quick: bool) -> list[dict]:
    """'Where a class looks' on an example scene, three models: a class's first view (flow and heat map
    computed, then drawn) and a repeat (cached with the analysis, drawn again)."""
    from ..inspect.examples import example_images

    first, again = [], []
    path = example_images(scenes=1)[0][0]
    for cls in ["boathouse", "house", "road", "water", "grass"][: 2 if quick else 5]:
        analysis = page.handlers["analyse"](path, MODELS)[page.analysis]
        analysis.derived.clear()
        for times in (first, again):
            t0 = time.perf_counter()
            _serialise(page.handlers["flow"](analysis, MODELS, None, cls))
            times.append(time.perf_counter() - t0)
    return [row("where a class looks, first view (example scene)", first, 300), row("where a class looks, cached", again, 300)]


def row(interaction: str, times: list[float], target_ms: float) -> dict:
    return dict(interaction=interaction, models=len(MODELS), median_ms=statistics.median(times) * 1e3,
                p95_ms=sorted(times)[round(0.95 * (len(times) - 1))] * 1e3, runs=len(times), target_ms=target_ms)


def timeline_rows(page, rng, quick: bool) -> list[dict]:
    """The Training tab's slider on an example scene: every snapshot once (analysed on first use), then moves
    between cached snapshots (the target). No row when no selected model has a timeline."""
    import gradio as gr

    from ..inspect.examples import example_images

    if not page.timelines.available(MODELS):
        return []
    analysis = page.handlers["analyse"](example_images(scenes=1)[0][0], MODELS)[page.analysis]
    last = page.handlers["click"](analysis, MODELS, 0.6, True, None, None,
                                  gr.SelectData(None, {"index": [128, 60], "value": None, "selected": True}))[page.last_click]
    n = len({s for m in page.timelines.available(MODELS) for s in page.timelines.steps(m)})
    first = []
    for i in range(n):
        t0 = time.perf_counter()
        _serialise(page.handlers["timeline"](analysis, MODELS, last, i))
        first.append(time.perf_counter() - t0)
    moves = []
    for _ in range(10 if quick else 30):
        t0 = time.perf_counter()
        _serialise(page.handlers["timeline"](analysis, MODELS, last, int(rng.integers(0, n))))
        moves.append(time.perf_counter() - t0)
    return [row("training slider, first visit of each snapshot", first, 2000), row("training slider move (snapshots cached)", moves, 300)]


def what_if_rows(page, large, rng, quick: bool) -> list[dict]:
    """The What if… row's "Apply at this pixel" (switch off rate #2, three models; the Non-local model skips it
    with a note), on an example scene (128×256) and on the 512×1024 upload."""
    import gradio as gr

    from ..inspect.examples import example_images

    example = page.handlers["analyse"](example_images(scenes=1)[0][0], MODELS)[page.analysis]
    rows = []
    for label, analysis, target in (("example scene", example, 150), ("512×1024 upload", large, 600)):
        H, W = analysis.image.shape[:2]
        times = []
        for _ in range(5 if quick else 20):
            x, y = int(rng.integers(0, W)), int(rng.integers(0, H))
            last = page.handlers["click"](analysis, MODELS, 0.6, True, None, None,
                                          gr.SelectData(None, {"index": [x, y], "value": None, "selected": True}))[page.last_click]
            t0 = time.perf_counter()
            out = page.handlers["what_if"]("pixel", analysis, MODELS, last, ["rate #2"], [], False, False, False, False, 0, 0, 1, 1, "mean")
            _serialise(out)
            times.append(time.perf_counter() - t0)
        rows.append(row(f"what-if at the pixel, {label} → answer", times, target))
    return rows


COLUMNS = [("interaction", "interaction", "{}"), ("models", "models", "{}"), ("median_ms", "median ms", "{:.0f}"),
           ("p95_ms", "p95 ms", "{:.0f}"), ("runs", "runs", "{}"), ("target_ms", "target ms", "{}")]


def verdicts(rows: list[dict]) -> list[str]:
    return [f"target {r['interaction']}: median {r['median_ms']:.0f} ms (want ≤ {r['target_ms']}) "
            f"{'MET' if r['median_ms'] <= r['target_ms'] else 'MISSED'}" for r in rows]
