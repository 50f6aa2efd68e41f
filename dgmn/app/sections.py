"""The app's sections: each function lays out its components and wires its events, nothing else.

What the events compute lives in :mod:`dgmn.inspect` (analyses, answers, exports, attribution runs) and what
they draw in :mod:`dgmn.viz`. Handlers return ``{component: value}``; components a handler leaves out keep
what they show. Gradio's click position (x, y) becomes the library's (y, x) in :func:`graph_section`, the one
place where a click arrives.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import gradio as gr
from gradio.data_classes import FileData

from .. import viz
from ..inspect.attribution_run import METHOD_LABELS, attribute_models
from ..inspect.custom_model import custom_summary
from ..inspect.endpoints import Endpoints
from ..inspect.examples import ExampleSet
from ..inspect.explorer import Explorer, InputError
from ..inspect.export import write_inspection
from ..inspect.model_cards import model_cards_markdown
from ..inspect.rate_labels import RATE_LABELS, shown_rates
from ..inspect.uploads import analyse_source

SLOTS = 3  # models shown side by side
FIRST_LAYER = "first context layer of each model"
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


@dataclass
class Page:
    """What the sections share: the explorer behind the page and the components several sections read."""

    explorer: Explorer
    examples: ExampleSet
    attribution_time_limit: float
    analysis: gr.State = None
    models: gr.CheckboxGroup = None
    image: gr.Image = None
    status: gr.Textbox = None
    last_click: gr.State = None  # the last Inspection (its image_id ties it to the image it was made on)
    upload: gr.File = None
    gallery: gr.Gallery = None
    opacity: gr.Slider = None
    walks: gr.Checkbox = None
    layer: gr.Dropdown = None
    rates: gr.CheckboxGroup = None
    inspection_json: gr.JSON = None
    export_button: gr.Button = None
    analysis_events: list = field(default_factory=list)  # events that analyse a new image
    reanalysis_events: list = field(default_factory=list)  # events that re-analyse the same image
    handlers: dict = field(default_factory=dict)  # every section's event handlers by name (tests call them)

    def slots(self, names) -> list[str | None]:
        """The model shown in each of the SLOTS panels (None: an empty panel)."""
        names = list(names or [])[:SLOTS]
        return names + [None] * (SLOTS - len(names))


def header(page: Page, extra_rows: list[dict]) -> None:
    gr.Markdown("# DGMN Explorer\nDynamic graph message passing, pixel by pixel.")
    with gr.Accordion("What am I looking at?", open=False):
        gr.Markdown(EXPLAINER)
    with gr.Accordion("The models: what each one is and how it scored", open=False):
        gr.Markdown(model_cards_markdown(page.explorer.checkpoint_dir, extra_rows), elem_id="model-cards")


def input_column(page: Page, defaults: list[str]) -> None:
    """The image, the model picker, the display options and the examples (the left column)."""
    available = page.explorer.available()
    page.upload = gr.File(label="Upload an image (PNG, JPEG, GIF, BMP, WebP, TIFF)", file_count="single", type="filepath", elem_id="upload")
    page.image = gr.Image(label="Image — click a pixel", type="numpy", elem_id="img", interactive=False, buttons=["download", "fullscreen"])
    page.models = gr.CheckboxGroup(available, value=defaults, label=f"Models to compare (up to {SLOTS} shown)")
    with gr.Row():
        page.opacity = gr.Slider(0, 1, 0.6, step=0.05, label="Overlay opacity")
        page.walks = gr.Checkbox(True, label="Show walks")
    page.layer = gr.Dropdown([FIRST_LAYER], value=FIRST_LAYER, label="Layer (models with several DGMN layers)")
    page.rates = gr.CheckboxGroup(list(RATE_LABELS), value=list(RATE_LABELS), label="DGMN rates to show (in the order of the model's dilations)")
    page.status = gr.Textbox(label="Status", elem_id="status", interactive=False,
                             value="Pick an example or upload an image." if available else "⚠ No checkpoints found: train one with `python -m dgmn.train`.")
    page.gallery = gr.Gallery(list(zip([p for p, _ in page.examples.items], page.examples.captions())),
                              label="Examples — click one (the scenes have ground truth)", columns=3, object_fit="contain",
                              allow_preview=False, interactive=False, buttons=[], elem_id="examples")
    page.analysis = gr.State(None, time_to_live=1800)
    page.last_click = gr.State(None)


def graph_section(page: Page) -> list[gr.Plot]:
    """Each model's graph at the clicked pixel; the click event. Returns the plots (analysis blanks them)."""
    with gr.Row():
        plots = [gr.Plot(label=f"Model {i + 1}: graph at the clicked pixel", elem_id=f"context{i}") for i in range(SLOTS)]
    inspection = gr.JSON(label="Inspection (JSON)", render=False)

    def on_click(analysis, names, opacity, walks, rates, layer, evt: gr.SelectData):
        """Click on the image → every model's nodes / attention at that pixel (no model is re-run)."""
        if analysis is None:
            return {page.status: "Load or pick an image first, then click on it.", inspection: None, page.last_click: None}
        x, y = evt.index  # Gradio's (x, y) in the displayed (= analysed) image; (y, x) from here on
        try:
            answer = page.explorer.inspect(analysis, y, x, [n for n in names if n in analysis.results],
                                           None if layer in (None, FIRST_LAYER) else layer)
        except InputError as exc:
            return {page.status: f"⚠ {exc}", inspection: None, page.last_click: None}
        out = {page.status: answer.summary(), inspection: answer.to_json(), page.last_click: answer}
        for plot, name in zip(plots, page.slots(names)):
            entry = answer.models.get(name) if name else None
            out[plot] = viz.answer_figure(analysis.image, name, entry, (y, x), opacity, walks, shown_rates(rates, entry)) if entry else None
        return out

    page.image.select(on_click, [page.analysis, page.models, page.opacity, page.walks, page.rates, page.layer],
                      [page.status, inspection, page.last_click, *plots], trigger_mode="always_last", api_visibility="private")
    page.handlers["click"] = on_click
    page.inspection_json = inspection
    return plots


def analysis_section(page: Page, graph_plots: list[gr.Plot]) -> list[gr.Plot]:
    """Segmentations and errors vs ground truth; the events that (re-)analyse: upload, example, models.
    Returns the plots it fills, so later sections can refresh after it."""
    with gr.Row():
        seg = [gr.Plot(label=f"Model {i + 1}: segmentation", elem_id=f"seg{i}") for i in range(SLOTS)]
    with gr.Row():
        dis = [gr.Plot(label=f"Model {i + 1}: errors vs ground truth", elem_id=f"dis{i}") for i in range(SLOTS)]
    outputs = [page.analysis, page.image, page.status, *graph_plots, *seg, *dis]

    def on_analyse(source, names, current=None):
        """Upload (a file) → read, prepare and analyse it with every selected model; show the segmentations.
        ``source=None`` re-analyses the current image (other models picked). On bad input the message says
        what to do and everything the user had stays as it was."""
        try:
            analysis = analyse_source(page.explorer, source, names, current, page.examples)
        except InputError as exc:
            if source is None and current is None:
                return {page.analysis: None, page.image: None, page.status: str(exc), **{p: None for p in [*graph_plots, *seg, *dis]}}
            return {page.status: f"⚠ {exc}"}
        out = {page.analysis: analysis, page.image: analysis.image,
               page.status: (analysis.notice + " — " if analysis.notice else "") + "Click a pixel on the image to see each model's graph for it."}
        for i, name in enumerate(page.slots(names)):
            card = page.explorer.card(name) if name else None
            pred = analysis.results[name].prediction if name else None
            out[graph_plots[i]] = None
            out[seg[i]] = viz.segmentation_figure(analysis.image, pred, card["classes"], card["palette"], 0.6, f"{name}: segmentation") if name else None
            out[dis[i]] = (viz.disagreement_figure(analysis.image, pred, analysis.truth, card["classes"], f"{name}: errors vs ground truth")
                           if name and analysis.truth is not None else None)
        return out

    def on_example(names, current, evt: gr.SelectData):
        """Click on an example thumbnail → analyse that example, exactly as if it had been uploaded."""
        index = evt.index if isinstance(evt.index, int) else None
        if index is None or not 0 <= index < len(page.examples):
            return {page.status: "⚠ That example is not available; pick another one or upload an image."}
        return on_analyse(page.examples.path(index), names, current)

    def on_models(names, current):
        return on_analyse(None, names, current)

    page.handlers.update(analyse=on_analyse, example=on_example)
    page.analysis_events += [
        page.upload.change(on_analyse, [page.upload, page.models, page.analysis], outputs, api_visibility="private"),
        page.gallery.select(on_example, [page.models, page.analysis], outputs, api_visibility="private"),
    ]
    page.reanalysis_events += [page.models.change(on_models, [page.models, page.analysis], outputs, api_visibility="private")]
    return seg + dis


def attribution_section(page: Page) -> None:
    """Saliency / Integrated Gradients of the clicked pixel, per model, on request (with a time limit)."""
    with gr.Row():
        method = gr.Radio(list(METHOD_LABELS), value="Saliency", label="Attribution of the clicked pixel")
        button = gr.Button("Compute attributions", variant="primary")
        page.export_button = gr.Button("Export JSON + HTML")
    with gr.Row():
        plots = [gr.Plot(label=f"Model {i + 1}: attribution", elem_id=f"attr{i}") for i in range(SLOTS)]

    def on_attribute(analysis, names, last, method, progress=gr.Progress()):
        """Attribution of the clicked pixel's predicted class, per model (Integrated Gradients runs on request)."""
        if analysis is None or last is None or last.image_id != analysis.image_id:
            return {page.status: "Click a pixel on the current image first, then compute attributions.", **{p: None for p in plots}}
        run = attribute_models(page.explorer, analysis, page.slots(names)[:SLOTS], int(last.y), int(last.x), method,
                               page.attribution_time_limit, progress=lambda f, what: progress(f, desc=what))
        out = {p: None for p in plots}
        for plot, name in zip(plots, page.slots(names)):
            if name in run.maps:
                m = run.maps[name]
                out[plot] = viz.attribution_figure(analysis.image, m.values, (run.y, run.x), title=f"{name}: {method} of '{m.class_name}'")
        out[page.status] = (f"⚠ {method} took longer than {run.stopped_after:.0f} s and was stopped; try Saliency, or a smaller image"
                            if run.stopped_after is not None else f"{method} computed for pixel (x={run.x}, y={run.y}).")
        return out

    button.click(on_attribute, [page.analysis, page.models, page.last_click, method], [page.status, *plots], api_visibility="private")
    page.handlers["attribute"] = on_attribute


def diagnostics_section(page: Page) -> list[gr.Plot]:
    """Walk diagnostics of each DGMN model (refreshed after every analysis)."""
    with gr.Accordion("Offset diagnostics of the DGMN models", open=False):
        with gr.Row():
            plots = [gr.Plot(label=f"Model {i + 1}: walks", elem_id=f"diag{i}") for i in range(SLOTS)]

    def on_diagnostics(analysis, names):
        """Walk lengths per rate, nodes outside the map and warnings, for the first DGMN layer of each model."""
        out = {}
        for plot, name in zip(plots, page.slots(names)):
            res = analysis.results.get(name) if analysis is not None and name else None
            layer = next(iter(res.dgmn_layers()), None) if res else None
            out[plot] = viz.diagnostics_figure(res.inspector.diagnostics(layer), f"{name}: walk lengths ({layer})") if layer else None
        return out

    def on_layers(analysis):
        """The layer picker: every context layer any analysed model has (a model without it shows its first)."""
        return {page.layer: gr.update(choices=[FIRST_LAYER] + (analysis.layer_names() if analysis else []), value=FIRST_LAYER)}

    for event in page.analysis_events:
        event.then(on_diagnostics, [page.analysis, page.models], plots, api_visibility="private").then(
            on_layers, [page.analysis], [page.layer], api_visibility="private")
    for event in page.reanalysis_events:
        event.then(on_diagnostics, [page.analysis, page.models], plots, api_visibility="private")
    page.handlers.update(diagnostics=on_diagnostics, layers=on_layers)
    return plots


def export_section(page: Page) -> None:
    """The last inspection as JSON and as a standalone HTML report (plotly.js inlined; works offline)."""
    files = gr.File(label="Exported files", file_count="multiple", interactive=False)
    page.inspection_json.render()

    def on_export(analysis, names, last):
        if analysis is None or last is None or last.image_id != analysis.image_id:
            return {page.status: "Click a pixel first; the export holds what you clicked.", files: None}
        preds = {n: analysis.results[n].prediction for n in last.models}
        cards = {n: page.explorer.card(n) for n in last.models}
        paths = write_inspection(last, viz.report_html(analysis.image, last, (last.y, last.x), preds, cards))
        return {page.status: "Exported. For a PNG of any panel, use the camera icon in the panel's toolbar.", files: paths}

    page.export_button.click(on_export, [page.analysis, page.models, page.last_click], [page.status, files], api_visibility="private")
    page.handlers["export"] = on_export


def api_endpoints(page: Page) -> None:
    """The public endpoints (for ``gradio_client``): ``inspect_xy`` and ``segment``. Inputs and outputs are a
    public contract: (image file, x, y, list of model names) and (image file, list of model names)."""
    endpoints = Endpoints(page.explorer)

    def inspect_xy(image_file: FileData, x: float, y: float, models: list[str]) -> dict:
        """inspect_xy(image file, x, y, list of model names) → {model: {class, layers: {...}}} (JSON); x, y in the image's pixels."""
        try:
            return endpoints.inspect(image_file, y, x, models)  # the endpoint's (x, y) → (y, x), once
        except InputError as exc:
            raise gr.Error(str(exc)) from None

    def segment(image_file: FileData, models: list[str]) -> dict:
        """segment(image file, list of model names) → {model: {classes, palette, shape, png_base64, pixels}}."""
        try:
            return endpoints.segment(image_file, models)
        except InputError as exc:
            raise gr.Error(str(exc)) from None

    gr.api(inspect_xy, api_name="inspect_xy")
    gr.api(segment, api_name="segment")
    page.handlers.update(inspect_xy=inspect_xy, segment=segment)


def in_memory_rows(explorer: Explorer) -> list[dict]:
    """Rows of the model table for models registered in memory (``dgmn.explore``)."""
    return [custom_summary(n, explorer.model(n)) for n in explorer.available() if n in explorer.registered]
