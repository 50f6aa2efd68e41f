"""DGMN Explorer: click a pixel, see the dynamic graph each model built for it, side by side.

    python app.py [--checkpoints DIR] [--host 127.0.0.1] [--port 7860] [--device auto|cpu|cuda]

Wiring only: layout and event handlers that call ``dgmn.inspect.Explorer`` and the ``viz`` figures.
"""
from __future__ import annotations

import argparse
import base64
import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402

from dgmn.inspect.explorer import Explorer, InputError, LRUCache, image_id, prepare_image  # noqa: E402
from dgmn.inspect.examples import example_images, read_image_file  # noqa: E402
from dgmn.inspect.model_cards import model_cards_markdown  # noqa: E402
from dgmn import viz  # noqa: E402

SLOTS = 3
ATTRIBUTION_TIME_LIMIT_S = 60  # Integrated Gradients stops (with a message) when a request runs longer
API_CACHE_ITEMS = 16  # analyses kept for the inspect_xy / segment endpoints (a few MB each)
FIRST_LAYER = "first context layer of each model"
RATE_LABELS = ["rate #1", "rate #2", "rate #3", "rate #4", "rate #5+"]
DEFAULT_MODELS = ["dgmn-full", "fcn-nonlocal", "fcn"]
EXPLAINER = """
**What am I looking at?** A segmentation model labels every pixel. To decide what a pixel is, a *context
module* lets it collect information from other places. Click a pixel to see where each model looked.

* **DGMN** (dynamic graph message passing) picks a few *nodes* for the clicked pixel: for every *rate*
  (a spacing: 1, 3, 6 feature pixels…) a 3×3 grid of nodes around it. Each node then takes a learned
  *walk* (dotted line) to a better place. The pixel's message is a weighted sum of the nodes' features:
  the *affinity* says how much a node matters (they sum to 1 per rate), the *dynamic weights* scale it
  per channel group. Bigger circles = a larger share of the message. Hollow circles fell outside the map.
* **Non-local** looks at *every* position and weighs each one (the heat map): complete, but costly.
* **FCN** (no context) only sees a small window around the pixel: it cannot tell a **house** (over a road)
  from a **boathouse** (over water) in the example scenes, because the water is too far below.

Colours of the segmentations: the class legend under each panel; black = unknown/ignored.
"""


def example_captions(examples) -> list[str]:
    """'scene 1', 'scene 2', … for the generated scenes (they have ground truth), else the file's name."""
    out, n = [], 0
    for path, truth in examples:
        n += truth is not None
        out.append(f"scene {n}" if truth is not None else Path(path).stem)
    return out


class Handlers:
    """The app's event handlers (plain methods, so tests can call them with ``gr.SelectData``)."""

    def __init__(self, explorer: Explorer, examples=None):
        self.explorer = explorer
        self.attribution_time_limit = ATTRIBUTION_TIME_LIMIT_S
        self.examples = example_images() if examples is None else examples
        # ground truth of the example scenes, found again by the content of the analysed image
        self.truths = {image_id(prepare_image(read_image_file(p))[0]): t for p, t in self.examples if t is not None}
        # API calls carry the image each time: analyses are kept per image content, bounded (LRU)
        self.api_cache = LRUCache(API_CACHE_ITEMS)

    def api_analysis(self, image_file, models):
        raw = read_image_file(image_file)
        img, _ = prepare_image(raw)
        names = list(models or [])
        key = image_id(img)
        analysis = self.api_cache.get(key)
        analysis = self.explorer.analyse(img, names, analysis=analysis)
        analysis.source_size = tuple(raw.shape[:2])
        self.api_cache.put(key, analysis)
        return analysis, names

    def blank(self):
        return [None] * (3 * SLOTS)

    def analyse(self, source, names, current=None):
        """Upload (a file path or an array) → read and prepare the image, run every selected model once,
        show the segmentations. ``source=None`` re-analyses the current image (e.g. other models picked).
        On bad input the message says what to do and everything the user had stays as it was."""
        keep = (current, gr.update(), *[gr.update()] * (3 * SLOTS))
        try:
            if source is None and current is None:
                return None, None, "Load or pick an image first.", *self.blank()
            if source is None:
                img, notice, raw_size = current.image, current.notice, current.source_size
            else:
                raw = read_image_file(source) if isinstance(source, (str, Path)) or hasattr(source, "path") else np.asarray(source)
                img, notice = prepare_image(raw)
                raw_size = tuple(raw.shape[:2])
            truth = self.truths.get(image_id(img))
            analysis = self.explorer.analyse(img, list(names or []), truth,
                                             current if current is not None and current.image_id == image_id(img) else None)
            analysis.notice, analysis.source_size = notice, raw_size
        except InputError as exc:
            return keep[0], keep[1], f"⚠ {exc}", *keep[2:]
        figs = []
        for i in range(SLOTS):
            name = names[i] if i < len(names) else None
            if name is None:
                figs += [None, None, None]
                continue
            card = self.explorer.model(name).card
            seg = viz.segmentation_figure(img, analysis.results[name].prediction, card["classes"], card["palette"], 0.6, f"{name}: segmentation")
            dis = viz.disagreement_figure(img, analysis.results[name].prediction, truth, card["classes"], f"{name}: errors vs ground truth") if truth is not None else None
            figs += [None, seg, dis]
        status = (notice + " — " if notice else "") + "Click a pixel on the image to see each model's graph for it."
        return analysis, img, status, *figs

    def pick_example(self, names, current, evt: gr.SelectData):
        """Click on an example thumbnail → analyse that example, exactly as if it had been uploaded."""
        index = evt.index if isinstance(evt.index, int) else None
        if index is None or not 0 <= index < len(self.examples):
            return current, gr.update(), "⚠ That example is not available; pick another one or upload an image.", *[gr.update()] * (3 * SLOTS)
        return self.analyse(self.examples[index][0], names, current)

    def click(self, analysis, names, opacity, walks, rates, evt: gr.SelectData, layer=None):
        """Click on the image → every model's nodes / attention at that pixel (no model is re-run)."""
        if analysis is None:
            return "Load or pick an image first, then click on it.", None, None, *[gr.update()] * SLOTS
        x, y = evt.index  # the displayed image is the analysed one
        try:
            answer = self.explorer.inspect_xy(analysis, x, y, [n for n in names if n in analysis.results],
                                              None if layer in (None, FIRST_LAYER) else layer)
        except InputError as exc:
            return f"⚠ {exc}", None, None, *[gr.update()] * SLOTS
        figs = []
        for i in range(SLOTS):
            name = names[i] if i < len(names) else None
            if name is None or name not in answer:
                figs.append(None)
                continue
            figs.append(self.context_figure(analysis.image, name, answer[name], (y, x), opacity, walks, rates))
        summary = ", ".join(f"{n}: {a['class']}" for n, a in answer.items())
        truth = next((a.get("truth") for a in answer.values() if a.get("truth")), None)
        status = f"Pixel (x={x:.0f}, y={y:.0f}) — {summary}" + (f" (truth: {truth})" if truth else "")
        return status, answer, {"x": x, "y": y, "image_id": analysis.image_id, "answer": answer}, *figs

    def context_figure(self, image, name, entry, pixel, opacity, walks, rates=None):
        if not entry["layers"]:
            return viz.plain_figure(image, pixel, f"{name}: no context module (sees only its receptive field)")
        layer, q = next(iter(entry["layers"].items()))
        shown = None
        if rates is not None and q["type"] == "dgmn":
            shown = [i for i in range(len(q["dilations"])) if RATE_LABELS[min(i, len(RATE_LABELS) - 1)] in rates]
        return viz.layer_figure(image, name, layer, q, pixel, opacity, walks, shown)

    def attribute(self, analysis, names, last, method, progress=gr.Progress()):
        """Attribution of the clicked pixel's predicted class, per model (Integrated Gradients runs on request)."""
        if analysis is None or not last or last.get("image_id") != analysis.image_id:
            return "Click a pixel on the current image first, then compute attributions.", *[None] * SLOTS
        from dgmn.inspect import attribute_pixel

        import time

        key = "integrated_gradients" if method.startswith("Integrated") else "saliency"
        x, y = int(last["x"]), int(last["y"])
        deadline = time.monotonic() + self.attribution_time_limit
        figs = []
        shown = [n for n in names[:SLOTS] if n in analysis.results]
        for i in range(SLOTS):
            name = names[i] if i < len(names) else None
            if name not in shown:
                figs.append(None)
                continue
            model = self.explorer.model(name)
            cls = int(analysis.results[name].prediction[y, x])

            def report(frac, name=name):
                progress((shown.index(name) + frac) / len(shown), desc=f"{name}: {method}")
                if time.monotonic() > deadline:
                    raise TimeoutError

            try:
                with self.explorer.lock:
                    attr = attribute_pixel(model, self.explorer.to_tensor(analysis.image, model.card), y, x, cls, key, progress=report)
            except TimeoutError:
                return (f"⚠ {method} took longer than {self.attribution_time_limit:.0f} s and was stopped; "
                        "try Saliency, or a smaller image"), *figs, *[None] * (SLOTS - len(figs))
            figs.append(viz.attribution_figure(analysis.image, attr.cpu().numpy(), (y, x),
                                               title=f"{name}: {method} of '{model.card['classes'][cls]}'"))
        return f"{method} computed for pixel (x={x}, y={y}).", *figs

    def export(self, analysis, names, last):
        """The last inspection as JSON and as a standalone HTML report (plotly.js inlined; works offline)."""
        import json
        import tempfile

        from dgmn.viz.report import report_html

        if analysis is None or not last or last.get("image_id") != analysis.image_id:
            return "Click a pixel first; the export holds what you clicked.", None
        d = Path(tempfile.mkdtemp(prefix="dgmn-export-"))
        answer = last["answer"]
        (d / "inspection.json").write_text(json.dumps({"pixel": {"x": last["x"], "y": last["y"]}, "models": answer}, indent=1))
        preds = {n: analysis.results[n].prediction for n in answer}
        cards = {n: self.explorer.model(n).card for n in answer}
        (d / "inspection.html").write_text(report_html(analysis.image, answer, (last["y"], last["x"]), preds, cards))
        return "Exported. For a PNG of any panel, use the camera icon in the panel's toolbar.", [str(d / "inspection.json"), str(d / "inspection.html")]

    def layer_choices(self, analysis):
        """The layer picker: every context layer any analysed model has (a model without it shows its first)."""
        names = sorted({ln for r in (analysis.results.values() if analysis else []) for ln in r.layers})
        return gr.update(choices=[FIRST_LAYER] + names, value=FIRST_LAYER)

    def diagnostics(self, analysis, names):
        """Offset diagnostics (walk lengths per rate, nodes outside the map, warnings) of each DGMN model."""
        figs = []
        for i in range(SLOTS):
            name = names[i] if names and i < len(names) else None
            res = analysis.results.get(name) if analysis is not None and name else None
            layer = next((ln for ln in (res.layers if res else []) if ln in res.inspector.records and hasattr(res.inspector.records[ln], "iterations")), None)
            figs.append(viz.diagnostics_figure(res.inspector.diagnostics(layer), f"{name}: walk lengths ({layer})") if layer else None)
        return figs

    def api_inspect_xy(self, image_file, x, y, models):
        """inspect_xy(image file, x, y, list of model names) → {model: {class, layers: {...}}} (JSON)."""
        try:
            analysis, names = self.api_analysis(image_file, models)
            if x is None or y is None:
                raise InputError("x and y are required: the pixel to inspect, in the image's own pixels")
            x, y = analysis.from_source(float(x), float(y))
            return self.explorer.inspect_xy(analysis, x, y, names)
        except InputError as exc:
            raise gr.Error(str(exc)) from None

    def api_segment(self, image_file, models):
        """segment(image file, list of model names) → {model: {classes, palette, shape, png_base64}}."""
        import cv2

        try:
            analysis, names = self.api_analysis(image_file, models)
        except InputError as exc:
            raise gr.Error(str(exc)) from None
        out = {}
        for n in names:
            card, pred = self.explorer.model(n).card, analysis.results[n].prediction
            ok, png = cv2.imencode(".png", pred)
            out[n] = {"classes": card["classes"], "palette": card["palette"], "shape": list(pred.shape),
                      "png_base64": base64.b64encode(png.tobytes()).decode(), "pixels": {card["classes"][c]: int((pred == c).sum()) for c in np.unique(pred)}}
        return out



def build_app(explorer: Explorer) -> gr.Blocks:
    h = Handlers(explorer)
    available = explorer.available()
    defaults = [m for m in DEFAULT_MODELS if m in available] or available[:SLOTS]
    with gr.Blocks(title="DGMN Explorer") as demo:
        gr.Markdown("# DGMN Explorer\nDynamic graph message passing, pixel by pixel.")
        with gr.Accordion("What am I looking at?", open=False):
            gr.Markdown(EXPLAINER)
        with gr.Accordion("The models: what each one is and how it scored", open=False):
            gr.Markdown(model_cards_markdown(explorer.checkpoint_dir), elem_id="model-cards")
        analysis_state = gr.State(None, time_to_live=1800)
        with gr.Row():
            with gr.Column(scale=1, min_width=320):
                upload = gr.File(label="Upload an image (PNG, JPEG, GIF, BMP, WebP, TIFF)", file_count="single", type="filepath", elem_id="upload")
                image = gr.Image(label="Image — click a pixel", type="numpy", elem_id="img", interactive=False, buttons=["download", "fullscreen"])
                models = gr.CheckboxGroup(available, value=defaults, label=f"Models to compare (up to {SLOTS} shown)")
                with gr.Row():
                    opacity = gr.Slider(0, 1, 0.6, step=0.05, label="Overlay opacity")
                    walks = gr.Checkbox(True, label="Show walks")
                layer = gr.Dropdown([FIRST_LAYER], value=FIRST_LAYER, label="Layer (models with several DGMN layers)")
                rates = gr.CheckboxGroup(RATE_LABELS, value=RATE_LABELS, label="DGMN rates to show (in the order of the model's dilations)")
                status = gr.Textbox(label="Status", elem_id="status", interactive=False,
                                    value="Pick an example or upload an image." if available else "⚠ No checkpoints found: train one with `python -m dgmn.train`.")
                examples = gr.Gallery(list(zip([p for p, _ in h.examples], example_captions(h.examples))),
                                      label="Examples — click one (the scenes have ground truth)", columns=3, object_fit="contain",
                                      allow_preview=False, interactive=False, buttons=[], elem_id="examples")
            with gr.Column(scale=3):
                context_plots, seg_plots, dis_plots = [], [], []
                with gr.Row():
                    for i in range(SLOTS):
                        context_plots.append(gr.Plot(label=f"Model {i + 1}: graph at the clicked pixel", elem_id=f"context{i}"))
                with gr.Row():
                    for i in range(SLOTS):
                        seg_plots.append(gr.Plot(label=f"Model {i + 1}: segmentation", elem_id=f"seg{i}"))
                with gr.Row():
                    for i in range(SLOTS):
                        dis_plots.append(gr.Plot(label=f"Model {i + 1}: errors vs ground truth", elem_id=f"dis{i}"))
                with gr.Row():
                    method = gr.Radio(["Saliency", "Integrated Gradients (slower)"], value="Saliency", label="Attribution of the clicked pixel")
                    attr_btn = gr.Button("Compute attributions", variant="primary")
                    export_btn = gr.Button("Export JSON + HTML")
                attr_plots = []
                with gr.Row():
                    for i in range(SLOTS):
                        attr_plots.append(gr.Plot(label=f"Model {i + 1}: attribution", elem_id=f"attr{i}"))
                with gr.Accordion("Offset diagnostics of the DGMN models", open=False):
                    with gr.Row():
                        diag_plots = [gr.Plot(label=f"Model {i + 1}: walks", elem_id=f"diag{i}") for i in range(SLOTS)]
                files = gr.File(label="Exported files", file_count="multiple", interactive=False)
                inspection = gr.JSON(label="Inspection (JSON)")
                last_click = gr.State(None)
        seg_outputs = [p for i in range(SLOTS) for p in (context_plots[i], seg_plots[i], dis_plots[i])]

        outputs = [analysis_state, image, status, *seg_outputs]
        def then_refresh(event, layers=True):
            """After a (re-)analysis: the walk diagnostics and, for a new image, the layer picker."""
            event = event.then(h.diagnostics, [analysis_state, models], diag_plots, api_visibility="private")
            return event.then(h.layer_choices, [analysis_state], [layer], api_visibility="private") if layers else event

        then_refresh(upload.change(h.analyse, [upload, models, analysis_state], outputs, api_visibility="private"))
        then_refresh(examples.select(h.pick_example, [models, analysis_state], outputs, api_visibility="private"))
        then_refresh(models.change(lambda n, a: h.analyse(None, n, a), [models, analysis_state], outputs, api_visibility="private"),
                     layers=False)
        def on_select(a, n, o, w, r, ly, evt: gr.SelectData):
            return h.click(a, n, o, w, r, evt, ly)

        image.select(on_select, [analysis_state, models, opacity, walks, rates, layer],
                     [status, inspection, last_click, *context_plots],
                     trigger_mode="always_last", api_visibility="private")
        attr_btn.click(h.attribute, [analysis_state, models, last_click, method], [status, *attr_plots], api_visibility="private")
        export_btn.click(h.export, [analysis_state, models, last_click], [status, files], api_visibility="private")

        with gr.Row(visible=False):
            api_file = gr.File(type="filepath")
            api_x, api_y = gr.Number(), gr.Number()
            api_models, api_out = gr.JSON(), gr.JSON()
            api_btn, seg_btn = gr.Button(), gr.Button()
        api_btn.click(h.api_inspect_xy, [api_file, api_x, api_y, api_models], api_out, api_name="inspect_xy")
        seg_btn.click(h.api_segment, [api_file, api_models], api_out, api_name="segment")
    return demo


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="DGMN Explorer")
    p.add_argument("--checkpoints", default=None, help="folder of .safetensors + .json checkpoints (default: checkpoints/)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 exposes the app to your network)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = p.parse_args(argv)
    import torch

    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device)
    demo = build_app(Explorer(args.checkpoints, device))
    demo.queue(default_concurrency_limit=2, max_size=32)
    demo.launch(server_name=args.host, server_port=args.port, share=False, ssr_mode=False, max_file_size="25mb")


if __name__ == "__main__":
    main()
