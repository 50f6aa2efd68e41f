"""DGMN Explorer: click a pixel, see the dynamic graph each model built for it, side by side.

    python app.py [--checkpoints DIR] [--host 127.0.0.1] [--port 7860] [--device auto|cpu|cuda]

Wiring only: layout and event handlers that call ``dgmn.inspect.Explorer`` and the ``viz`` figures.
"""
from __future__ import annotations

import argparse
import base64
import io
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402

from dgmn.inspect.explorer import Explorer, InputError, prepare_image  # noqa: E402
from dgmn.inspect.examples import example_images, read_image_file  # noqa: E402
import viz  # noqa: E402

SLOTS = 3
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


class Handlers:
    """The app's event handlers (plain methods, so tests can call them with ``gr.SelectData``)."""

    def __init__(self, explorer: Explorer):
        self.explorer = explorer

    def blank(self):
        return [None] * (3 * SLOTS)

    def analyse(self, image, names, example_truth):
        """Upload → prepare the image, run every selected model once, show the segmentations."""
        if image is None:
            return None, "Load or pick an image first.", *self.blank()
        try:
            img, notice = prepare_image(image)
            truth = example_truth if example_truth is not None and example_truth.shape == img.shape[:2] else None
            analysis = self.explorer.analyse(img, list(names or []), truth)
            analysis.source_size = tuple(np.asarray(image).shape[:2])
        except InputError as exc:
            return None, f"⚠ {exc}", *self.blank()
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
        return analysis, status, *figs

    def click(self, analysis, names, opacity, walks, evt: gr.SelectData):
        """Click on the image → every model's nodes / attention at that pixel (no model is re-run)."""
        if analysis is None:
            return "Load or pick an image first, then click on it.", None, *[gr.update()] * SLOTS
        x, y = analysis.from_source(*evt.index)
        try:
            answer = self.explorer.inspect_xy(analysis, x, y, [n for n in names if n in analysis.results])
        except InputError as exc:
            return f"⚠ {exc}", None, *[gr.update()] * SLOTS
        figs = []
        for i in range(SLOTS):
            name = names[i] if i < len(names) else None
            if name is None or name not in answer:
                figs.append(None)
                continue
            figs.append(self.context_figure(analysis.image, name, answer[name], (y, x), opacity, walks))
        summary = ", ".join(f"{n}: {a['class']}" for n, a in answer.items())
        truth = next((a.get("truth") for a in answer.values() if a.get("truth")), None)
        return f"Pixel (x={x:.0f}, y={y:.0f}) — {summary}" + (f" (truth: {truth})" if truth else ""), answer, *figs

    def context_figure(self, image, name, entry, pixel, opacity, walks):
        if not entry["layers"]:
            return viz.plain_figure(image, pixel, f"{name}: no context module (sees only its receptive field)")
        layer, q = next(iter(entry["layers"].items()))
        if q["type"] == "dgmn":
            return viz.nodes_figure(image, q, pixel, walks=walks, title=f"{name}: sampled nodes ({layer})")
        return viz.attention_figure(image, q, pixel, opacity, title=f"{name}: Non-local attention")

    def api_inspect_xy(self, image_file, x, y, models):
        """inspect_xy(image file, x, y, list of model names) → {model: {class, layers: {...}}} (JSON)."""
        try:
            img, _ = prepare_image(read_image_file(image_file))
            names = list(models or [])
            analysis = self.explorer.analyse(img, names)
            return self.explorer.inspect_xy(analysis, float(x), float(y), names)
        except InputError as exc:
            raise gr.Error(str(exc)) from None

    def api_segment(self, image_file, models):
        """segment(image file, list of model names) → {model: {classes, palette, shape, png_base64}}."""
        import cv2

        try:
            img, _ = prepare_image(read_image_file(image_file))
            names = list(models or [])
            analysis = self.explorer.analyse(img, names)
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
        analysis_state = gr.State(None, time_to_live=1800)
        truth_state = gr.State(None)
        with gr.Row():
            with gr.Column(scale=1, min_width=320):
                image = gr.Image(label="Image — click a pixel", type="numpy", elem_id="img", buttons=["download", "fullscreen"])
                models = gr.CheckboxGroup(available, value=defaults, label=f"Models to compare (up to {SLOTS} shown)")
                with gr.Row():
                    opacity = gr.Slider(0, 1, 0.6, step=0.05, label="Overlay opacity")
                    walks = gr.Checkbox(True, label="Show walks")
                status = gr.Textbox(label="Status", elem_id="status", interactive=False,
                                    value="Pick an example or upload an image." if available else "⚠ No checkpoints found: train one with `python -m dgmn.train`.")
                examples = example_images()
                gallery = gr.Examples([[p] for p, _ in examples], inputs=[image], label="Examples (generated scenes have ground truth)")
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
                inspection = gr.JSON(label="Inspection (JSON)")
        seg_outputs = [p for i in range(SLOTS) for p in (context_plots[i], seg_plots[i], dis_plots[i])]

        def truth_for(img):
            return next((t for p, t in examples if t is not None and img is not None and t.shape == img.shape[:2] and np.array_equal(read_image_file(p), img)), None)

        image.change(lambda img: truth_for(img), [image], [truth_state], api_visibility="private").then(
            h.analyse, [image, models, truth_state], [analysis_state, status, *seg_outputs], api_visibility="private")
        models.change(h.analyse, [image, models, truth_state], [analysis_state, status, *seg_outputs], api_visibility="private")
        image.select(h.click, [analysis_state, models, opacity, walks], [status, inspection, *context_plots],
                     trigger_mode="always_last", api_visibility="private")

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
