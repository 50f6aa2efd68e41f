"""Headless inspection: ``python -m dgmn.inspect --checkpoint NAME [--checkpoint NAME ...] --image PATH --pixel Y,X
[--json OUT] [--html OUT]`` writes what the app shows for that pixel: the JSON inspection and a standalone HTML
page with the plotly figures (works offline).

``--what-if EDITS_JSON [--scope pixel|image]`` re-runs each model with the edits instead (see
:mod:`dgmn.inspect.what_if`) and prints or writes the ``what_if`` endpoint's result (one model: the result;
several: ``{model: result}``). A model whose card asks for sliding-window inference (converted DGMN2 checkpoints:
``"inference": {"mode": "slide"}``) is run that way, with a progress bar on stderr when the image needs more than
one crop. ``--timeline --html OUT`` writes the pixel's graph at every training snapshot
of each model (one page, a plotly slider per model) and the statistics over training."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..closed_pipe import ends_quietly_on_closed_pipe
from .explorer import Explorer, InputError
from .label_maps import encode_label_map
from .timeline_view import TimelineView
from .what_if import EditError, what_if
from .uploads import read_source


@ends_quietly_on_closed_pipe
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="dgmn-inspect", description="Headless inspection: what the app shows for one pixel, as JSON and a standalone HTML page")
    p.add_argument("--checkpoint", action="append", required=True, help="model name or path; repeat to compare")
    p.add_argument("--image", required=True)
    p.add_argument("--pixel", required=True, help="Y,X: row, column in the image's pixels (the app's endpoints take x, y)")
    p.add_argument("--json", default=None, help="write the inspection JSON here ('-' for stdout)")
    p.add_argument("--html", default=None, help="write a standalone HTML report here")
    p.add_argument("--checkpoints", default=None, help="folder to look names up in (default: checkpoints/)")
    p.add_argument("--what-if", default=None, metavar="EDITS_JSON",
                   help='re-run with graph edits, e.g. \'[{"op": "drop_rate", "rate": 1}]\' (see the what_if endpoint)')
    p.add_argument("--scope", default="pixel", choices=["pixel", "image"], help="--what-if: at the pixel's footprint or the whole image")
    p.add_argument("--timeline", action="store_true", help="write the pixel's graph at every training snapshot as one HTML page (--html)")
    args = p.parse_args(argv)
    try:
        y, x = (float(v) for v in args.pixel.split(","))
    except ValueError:
        print(f"dgmn.inspect: --pixel takes Y,X (e.g. 40,100), got {args.pixel!r}", file=sys.stderr)
        return 2
    if args.timeline and not args.html:
        print("dgmn.inspect: --timeline writes an HTML page: add --html OUT", file=sys.stderr)
        return 2
    problem = output_problem("--json", args.json, stdout_ok=True) or output_problem("--html", args.html, stdout_ok=False)
    if problem:  # before the analysis, not after it
        print(f"dgmn.inspect: {problem}", file=sys.stderr)
        return 2
    try:
        explorer = Explorer(args.checkpoints)
        names = []
        for c in args.checkpoint:
            if Path(c).suffix in (".safetensors", ".json") or "/" in c:  # a path: use its folder
                explorer = Explorer(Path(c).parent)
                c = Path(c).with_suffix("").name
            names.append(c)
        img, notice, source_size = read_source(args.image)
        H, W = source_size or img.shape[:2]
        if not (0 <= y < H and 0 <= x < W):
            raise InputError(f"--pixel {args.pixel} (Y,X) is outside the {W}×{H} image {args.image}: Y must be in "
                             f"0…{H - 1} and X in 0…{W - 1}")
        with CropProgress() as progress:
            analysis = explorer.analyse(img, names, progress=progress)
        analysis.source_size = source_size
        ay, ax = analysis.from_source(y, x)
        answer = explorer.inspect(analysis, ay, ax, names)
        if args.timeline:
            write_timeline_page(explorer, analysis, names, ay, ax, args.html)
            print(f"wrote {args.html} (the pixel's graph at every training snapshot; open it in a browser)")
            return 0
        if args.what_if is not None:
            results = {n: what_if(explorer, analysis, n, ay, ax, args.what_if, args.scope).to_json(
                lambda lm, n=n: encode_label_map(lm, explorer.card(n))) for n in names}
    except (InputError, EditError) as exc:
        print(f"dgmn.inspect: {exc}", file=sys.stderr)
        return 2
    if notice:
        print(f"note: {notice}", file=sys.stderr)
    # the answer on stdout; what was written, on stderr when stdout carries the JSON
    said = sys.stderr if args.json == "-" else sys.stdout
    if args.what_if is not None:
        text = json.dumps(results[names[0]] if len(names) == 1 else results, indent=1)
        if args.json and args.json != "-":
            Path(args.json).write_text(text)
            for n, r in results.items():
                print(f"{n}: {r['before']['class']} → {r['after']['class']} with {args.what_if} ({args.scope} scope)", file=said)
            print(f"wrote {args.json} (the what-if result)", file=said)
        else:
            print(text)
        return 0
    if args.json:
        text = json.dumps(answer.to_json(), indent=1)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text)
    for n, e in answer.items():
        print(f"{n}: {e.class_name} ({e.probabilities[e.class_name]:.2f}) at pixel y={y:g}, x={x:g}", file=said)
    if args.json and args.json != "-":
        print(f"wrote {args.json} (the inspection, as the inspect_xy endpoint answers)", file=said)
    if args.html:
        from dgmn.viz.report import report_html

        preds = {n: analysis.results[n].prediction for n in names}
        cards = {n: explorer.card(n) for n in names}
        Path(args.html).write_text(report_html(img, answer, (ay, ax), preds, cards))
        print(f"wrote {args.html} (a standalone page with the figures; open it in a browser, it works offline)", file=said)
    return 0


def output_problem(option: str, path: str | None, stdout_ok: bool) -> str | None:
    """Why ``path`` cannot be written as ``option``'s file, or None (also for no path, and for '-' = stdout where
    the option allows it)."""
    if path is None or (path == "-" and stdout_ok):
        return None
    if path == "-":
        return f"{option} writes a file (a standalone page of several MB); give its path, e.g. {option} out.html"
    p = Path(path)
    if p.is_dir():
        return f"{option} {path} is a folder; give a file path in it, e.g. {option} {p / ('out.' + option.lstrip('-'))}"
    if not p.parent.is_dir():
        return f"{option} {path}: the folder {p.parent} does not exist; create it first or choose another path"
    return None


class CropProgress:
    """``progress(name, done, total)`` for :meth:`Explorer.analyse`: a tqdm bar on stderr per model that runs
    sliding-window inference on more than one crop (converted DGMN2 checkpoints on large images)."""

    def __init__(self):
        self.bars = {}

    def __call__(self, name: str, done: int, total: int) -> None:
        if total <= 1:
            return
        if name not in self.bars:
            from tqdm import tqdm

            self.bars[name] = tqdm(total=total, desc=f"{name}: sliding-window crops", unit="crop", file=sys.stderr, leave=False)
        bar = self.bars[name]
        bar.update(done - bar.n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for bar in self.bars.values():
            bar.close()


def write_timeline_page(explorer, analysis, names, y, x, path) -> None:
    """One standalone HTML page: per model with a timeline, the pixel's graph at every snapshot (a plotly
    slider) and the statistics over training."""
    import html

    from dgmn.viz import timeline_slider_figure, timeline_stats_figure

    view = TimelineView(explorer)
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>DGMN training timeline</title></head><body style='font-family:sans-serif'>",
             f"<h1>Training timeline at pixel (x={x:.0f}, y={y:.0f})</h1>"]
    first = True
    for name in names:
        view.steps(name)  # InputError for a model without a timeline
        frames = [(step, view.answer(analysis, name, step, y, x)) for step in view.steps(name)]
        parts.append(f"<h2>{html.escape(name)}</h2>")
        for fig in (timeline_slider_figure(analysis.image, frames, (y, x), name), timeline_stats_figure({name: view.stats(name)})):
            parts.append(fig.to_html(full_html=False, include_plotlyjs="inline" if first else False, default_width="900px", default_height="560px"))
            first = False
    parts.append("</body></html>")
    Path(path).write_text("\n".join(parts))


if __name__ == "__main__":
    sys.exit(main())
