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
from ..inspect.explorer import Explorer, InputError, inference_notes
from ..ops.kernel_build import CPU_KERNEL
from ..inspect.export import write_inspection
from ..inspect.model_cards import model_cards_markdown
from ..inspect.rate_labels import RATE_LABELS, shown_rates
from ..inspect.class_view import class_view, clicked_class_flows
from ..inspect.context_cost import crossover, macs_by_size
from ..inspect.applicability import not_applicable, not_applicable_lines
from ..inspect.domain_notes import out_of_domain_note
from ..inspect.markdown_text import markdown_text as md
from ..inspect.model_cards import describe_context
from ..inspect.records import NODE_QUERIES
from ..data.mixed_scene import mixed_scene
from ..inspect.timeline_view import TimelineView
from ..inspect.uploads import analyse_source
from ..inspect.view_state import ViewState, parse_view_state
from ..inspect.what_if import EditError, applicable_edits, occluded, what_if
from ..inspect.what_if_form import describe, edits_from_form, iou_changes, node_choices

SLOTS = 3  # models shown side by side
FIRST_LAYER = "first context layer of each model"
CLICKED_CLASS = "the clicked pixel's class"
EXPLAINER = """
**What am I looking at?** A segmentation model labels every pixel. To decide what a pixel is, a *context
module* lets it collect information from other places. Click a pixel to see where each model looked.

* **DGMN** (dynamic graph message passing) picks a few *nodes* for the clicked pixel: for every *rate*
  (a spacing: 1, 3, 6 feature pixels…) a 3×3 grid of nodes around it. Each node then takes a learned
  *walk* (dotted line) to a better place. The pixel's message is a weighted sum of the nodes' features:
  the *affinity* says how much a node matters (they sum to 1 per rate), the *dynamic weights* scale it
  per channel group. Bigger circles = a larger share of the message. Hollow circles fell outside the map.
* **Non-local** looks at *every* position and weighs each one (the heat map): complete, but costly.
* **Deformable convolution** (DCN) looks at 9 points: a 3×3 grid around the pixel, each moved by a learned
  *offset* (arrow) and scaled by a learned *mask* (circle size) — like one DGMN rate, without dynamic filters.
* **Criss-cross attention** (CCNet) looks along the pixel's row and column (dashed outline), twice: the second
  pass reaches every position through the first, so its heat map covers the whole image.
* **DGMN2** (published Cityscapes models, converted) is a transformer in which, in every block, each pixel
  attends to 9 positions per *head* (one colour each): a 3×3 grid moved by learned offsets (dotted lines); bigger
  circles = larger attention weights. Hover a node to see its score split into *content* (how well its features
  match the pixel's) and *position* (a learned preference for that node); the legend gives each head's share of
  position. Pick the stage and block under *Display options › Layer*.
* **FCN** (no context) only sees a small window around the pixel: it cannot tell a **house** (over a road)
  from a **boathouse** (over water) in the example scenes, because the water is too far below.

Colours of the segmentations: the class legend under each panel; black = unknown/ignored.

**What if…** (its tab) re-runs a model with part of its graph switched off — a rate, some nodes, the walks,
the affinities, all context — or with a box of the image painted out, and shows how the clicked pixel's
decision changes. The most telling first try: click a boathouse in a mixed scene and switch off the rates
that reach the water.
"""
WHAT_IF_HELP = ("An edit re-runs each selected model with that part of its graph switched off (exactly what the model "
                "computes then, nothing approximated). *At this pixel*: only where the clicked pixel reads its context; "
                "*whole image*: the whole layer. Try: click a boathouse, switch off the rates that reach the water.")


@dataclass
class Page:
    """What the sections share: the explorer behind the page and the components several sections read.
    A section that needs another's event chains onto it (``page.click_events``, ``page.analysis_events``)."""

    explorer: Explorer
    examples: ExampleSet
    attribution_time_limit: float
    timelines: TimelineView = None
    analysis: gr.State = None
    models: gr.CheckboxGroup = None
    image: gr.Image = None
    status: gr.Textbox = None
    last_click: gr.State = None  # the last Inspection (its image_id ties it to the image it was made on)
    kernel_text: gr.Markdown = None  # the fast CPU kernel's status line (while it compiles)
    scene_seed: gr.State = None  # the seed of a generated scene on show (None: an upload or an example)
    upload: gr.File = None
    gallery: gr.Gallery = None
    opacity: gr.Slider = None
    walks: gr.Checkbox = None
    layer: gr.Dropdown = None
    rates: gr.CheckboxGroup = None
    inspection_json: gr.JSON = None
    seed_box: gr.Number = None
    new_scene_button: gr.Button = None
    link: gr.Textbox = None
    copy_button: gr.Button = None
    graph_plots: list = field(default_factory=list)  # per slot: the graph at the clicked pixel
    probability_plots: list = field(default_factory=list)  # per slot: class probabilities at the clicked pixel
    click_outputs: list = field(default_factory=list)  # what a click fills (the restore-from-link event too)
    analysis_outputs: list = field(default_factory=list)  # what an analysis fills
    click_events: list = field(default_factory=list)  # events that answer a click
    analysis_events: list = field(default_factory=list)  # events that analyse a new image
    reanalysis_events: list = field(default_factory=list)  # events that re-analyse the same image
    handlers: dict = field(default_factory=dict)  # every section's event handlers by name (tests call them)

    def slots(self, names) -> list[str | None]:
        """The model shown in each of the SLOTS panels (None: an empty panel)."""
        names = list(names or [])[:SLOTS]
        return names + [None] * (SLOTS - len(names))

    def clicked_on(self, analysis, last) -> bool:
        """Whether ``last`` (an Inspection) was made on the image ``analysis`` holds."""
        return analysis is not None and last is not None and last.image_id == analysis.image_id


def header(page: Page, extra_rows: list[dict]) -> None:
    gr.Markdown("## DGMN Explorer — dynamic graph message passing, pixel by pixel")
    with gr.Row(equal_height=True):
        with gr.Accordion("What am I looking at?", open=False):
            gr.Markdown(EXPLAINER)
        with gr.Accordion("The models: what each one is and how it scored", open=False):
            gr.Markdown(model_cards_markdown(page.explorer.checkpoint_dir, extra_rows), elem_id="model-cards")


def input_column(page: Page, defaults: list[str]) -> None:
    """The image, the model picker, the status and the examples (the left column)."""
    available = page.explorer.available()
    page.upload = gr.File(label="Upload an image (PNG, JPEG, GIF, BMP, WebP, TIFF)", file_count="single", type="filepath", elem_id="upload")
    page.image = gr.Image(label="Image — click a pixel", type="numpy", elem_id="img", interactive=False, buttons=["download", "fullscreen"])
    page.models = gr.CheckboxGroup(available, value=defaults, label=f"Models to compare (up to {SLOTS} shown)", elem_id="models")
    page.status = gr.Textbox(label="Status", elem_id="status", interactive=False,
                             value="Pick an example or upload an image." if available else "⚠ No checkpoints found: train one with `python -m dgmn.train`.")
    page.gallery = gr.Gallery(list(zip([p for p, _ in page.examples.items], page.examples.captions())),
                              label="Examples — click one (the scenes have ground truth)", columns=3, object_fit="contain",
                              allow_preview=False, interactive=False, buttons=["download_all"], elem_id="examples")
    with gr.Row():
        page.seed_box = gr.Number(1234, precision=0, minimum=0, label="Scene seed", elem_id="scene-seed", min_width=100)
        page.new_scene_button = gr.Button("New scene", elem_id="new-scene", min_width=100)
    with gr.Row():
        page.link = gr.Textbox(label="Link to this view", interactive=False, elem_id="view-link", scale=3, min_width=160)
        page.copy_button = gr.Button("Copy link", elem_id="copy-link", scale=1, min_width=80)
    page.analysis = gr.State(None, time_to_live=1800)
    page.last_click = gr.State(None)
    page.scene_seed = gr.State(None)
    kernel_status(page)


def kernel_status(page: Page) -> None:
    """One line while the fast CPU kernel is being compiled (the reference op answers meanwhile); it goes when the
    kernel is ready, and stays as a warning if it cannot be built."""
    def shown(status) -> bool:
        return page.explorer.device.type == "cpu" and status.state in ("building", "unavailable")

    status = CPU_KERNEL.status()
    text = gr.Markdown(status.line() if shown(status) else "", visible=shown(status), elem_id="kernel-status")
    ticker = gr.Timer(1.0, active=status.state == "building")

    def update():
        status = CPU_KERNEL.status()
        return {text: gr.update(value=status.line() if shown(status) else "", visible=shown(status)),
                ticker: gr.Timer(active=status.state == "building")}

    ticker.tick(update, None, [text, ticker], api_visibility="private", show_progress="hidden", queue=False)
    page.handlers.update(kernel_status=update)
    page.kernel_text = text


def graph_section(page: Page) -> None:
    """Each model's graph and class probabilities at the clicked pixel, display options; the click event."""
    with gr.Row():
        page.graph_plots = [gr.Plot(label=f"Model {i + 1}: graph at the clicked pixel", elem_id=f"context{i}") for i in range(SLOTS)]
    with gr.Row():
        probs = [gr.Plot(label=f"Model {i + 1}: class probabilities at the pixel", elem_id=f"prob{i}") for i in range(SLOTS)]
    with gr.Accordion("Display options: overlay, walks, layer, rates", open=False):
        with gr.Row():
            page.opacity = gr.Slider(0, 1, 0.6, step=0.05, label="Overlay opacity")
            page.walks = gr.Checkbox(True, label="Show walks")
            page.layer = gr.Dropdown([FIRST_LAYER], value=FIRST_LAYER, label="Layer (models with several DGMN layers; DGMN2: stage, block)")
            page.rates = gr.CheckboxGroup(list(RATE_LABELS), value=list(RATE_LABELS), label="DGMN rates to show (in the order of the model's dilations)")
    page.inspection_json = gr.JSON(label="Inspection (JSON)", render=False)

    def on_click(analysis, names, opacity, walks, rates, layer, evt: gr.SelectData):
        """Click on the image → every model's nodes / attention and probabilities at that pixel (no model is re-run)."""
        x, y = evt.index  # Gradio's (x, y) in the displayed (= analysed) image; (y, x) from here on
        return answer_pixel(analysis, names, opacity, walks, rates, layer, y, x)

    def answer_pixel(analysis, names, opacity, walks, rates, layer, y, x):
        if analysis is None:
            return {page.status: "Load or pick an image first, then click on it.", page.inspection_json: None, page.last_click: None}
        try:
            answer = page.explorer.inspect(analysis, y, x, [n for n in names if n in analysis.results],
                                           None if layer in (None, FIRST_LAYER) else layer)
        except InputError as exc:
            return {page.status: f"⚠ {exc}", page.inspection_json: None, page.last_click: None}
        out = {page.status: answer.summary(), page.inspection_json: answer.to_json(), page.last_click: answer}
        for plot, prob, name in zip(page.graph_plots, probs, page.slots(names)):
            entry = answer.models.get(name) if name else None
            out[plot] = viz.answer_figure(analysis.image, name, entry, (y, x), opacity, walks, shown_rates(rates, entry)) if entry else None
            card = page.explorer.card(name) if entry else None
            out[prob] = viz.probability_figure(entry.probabilities, title=f"{name}: " + " · ".join(f"{c} {p:.2f}" for c, p in entry.top_classes(2)),
                                               palette=card["palette"], classes=card["classes"]) if entry else None
        return out

    page.click_outputs = [page.status, page.inspection_json, page.last_click, *page.graph_plots, *probs]
    page.click_events.append(page.image.select(
        on_click, [page.analysis, page.models, page.opacity, page.walks, page.rates, page.layer], page.click_outputs,
        trigger_mode="always_last", api_visibility="private"))
    page.handlers.update(click=on_click, answer_pixel=answer_pixel)
    page.probability_plots = probs


def segmentation_section(page: Page) -> None:
    """Segmentations, errors vs ground truth and what a model's labels are worth on a photo; the events that
    (re-)analyse: upload, example, new scene, other models."""
    notes = gr.Markdown(elem_id="domain-notes")
    with gr.Row():
        seg = [gr.Plot(label=f"Model {i + 1}: segmentation", elem_id=f"seg{i}") for i in range(SLOTS)]
    with gr.Row():
        dis = [gr.Plot(label=f"Model {i + 1}: errors vs ground truth", elem_id=f"dis{i}") for i in range(SLOTS)]
    page.analysis_outputs = [page.analysis, page.image, page.status, page.scene_seed, page.last_click, notes,
                             *page.graph_plots, *page.probability_plots, *seg, *dis]

    def show(analysis, names, seed=None):
        out = {page.analysis: analysis, page.image: analysis.image, page.scene_seed: seed, page.last_click: None,
               page.status: "".join(n + " — " for n in [analysis.notice] + inference_notes(analysis) if n)
               + "Click a pixel on the image to see each model's graph for it."}
        lines = []
        for i, name in enumerate(page.slots(names)):
            card = page.explorer.card(name) if name else None
            pred = analysis.results[name].prediction if name else None
            out[page.graph_plots[i]] = out[page.probability_plots[i]] = None
            out[seg[i]] = viz.segmentation_figure(analysis.image, pred, card["classes"], card["palette"], 0.6, f"{name}: segmentation") if name else None
            out[dis[i]] = (viz.disagreement_figure(analysis.image, pred, analysis.truth, card["classes"], f"{name}: errors vs ground truth")
                           if name and analysis.truth is not None else None)
            note = out_of_domain_note(name, card, analysis.truth is not None) if name else None
            lines += [f"ⓘ {note}"] if note else []  # Markdown, the name escaped
        out[notes] = "\n\n".join(lines)
        return out

    def on_analyse(source, names, current=None):
        """Upload (a file) → read, prepare and analyse it with every selected model; show the segmentations.
        ``source=None`` re-analyses the current image (other models picked). On bad input the message says
        what to do and everything the user had stays as it was."""
        try:
            analysis = analyse_source(page.explorer, source, names, current, page.examples)
        except InputError as exc:
            if source is None and current is None:
                return {page.analysis: None, page.image: None, page.status: str(exc), **{p: None for p in page.analysis_outputs[5:]}}
            return {page.status: f"⚠ {exc}"}
        return show(analysis, names)

    def on_example(names, current, evt: gr.SelectData):
        """Click on an example thumbnail → analyse that example, exactly as if it had been uploaded."""
        index = evt.index if isinstance(evt.index, int) else None
        if index is None or not 0 <= index < len(page.examples):
            return {page.status: "⚠ That example is not available; pick another one or upload an image."}
        return on_analyse(page.examples.path(index), names, current)

    def on_models(names, current, seed):
        out = on_analyse(None, names, current)
        if page.scene_seed in out:
            out[page.scene_seed] = seed if current is not None and out.get(page.analysis) is current else None
        return out

    def on_new_scene(seed, names, current):
        """'New scene' → a fresh mixed ContextScenes scene (with its ground truth) for the seed, analysed."""
        try:
            scene = mixed_scene(int(seed) if seed is not None else 0)
            analysis = page.explorer.analyse(scene.image, list(names or []), scene.truth)
        except (ValueError, InputError) as exc:
            return {page.status: f"⚠ {exc}"}
        out = show(analysis, names, scene.seed)
        out[page.status] = f"Scene {scene.seed} (ground truth known) — " + out[page.status]
        return out

    page.handlers.update(analyse=on_analyse, example=on_example, new_scene=on_new_scene, show=show)
    page.analysis_events += [
        page.upload.change(on_analyse, [page.upload, page.models, page.analysis], page.analysis_outputs, api_visibility="private"),
        page.gallery.select(on_example, [page.models, page.analysis], page.analysis_outputs, api_visibility="private"),
        page.new_scene_button.click(on_new_scene, [page.seed_box, page.models, page.analysis], page.analysis_outputs, api_visibility="private"),
    ]
    page.reanalysis_events.append(page.models.change(on_models, [page.models, page.analysis, page.scene_seed], page.analysis_outputs,
                                                     api_visibility="private"))


def link_events(page: Page, demo: gr.Blocks) -> None:
    """'Copy link': the page address with the generated scene, the clicked pixel and the models; opening such
    a link restores that view (the page's load event)."""
    link = page.link

    def on_copy(seed, last, analysis, names):
        if seed is None:
            return {page.status: "ⓘ Links restore generated scenes: press “New scene” first (uploads are not stored).", link: ""}
        clicked = page.clicked_on(analysis, last)
        state = ViewState(seed, last.y if clicked else None, last.x if clicked else None, list(names or []))
        return {link: "?" + state.to_query(), page.status: "Link copied: it restores this scene, models and pixel."}

    def on_load(names, request: gr.Request):
        """Opening the page: restore the view its address describes, if any."""
        state, problems = parse_view_state(getattr(request, "query_params", {}) or {})
        if state.scene is None:
            return {page.status: "⚠ " + "; ".join(problems) if problems else gr.skip()}  # an empty dict: Gradio refuses it
        chosen = [m for m in state.models if m in page.explorer.available()][:SLOTS] or list(names or [])
        out = page.handlers["new_scene"](state.scene, chosen, None)
        out[page.models], out[page.seed_box] = chosen, state.scene
        analysis = out.get(page.analysis)
        if analysis is not None and state.y is not None:
            out.update(page.handlers["answer_pixel"](analysis, chosen, 0.6, True, list(RATE_LABELS), FIRST_LAYER, state.y, state.x))
        if problems:
            out[page.status] = "⚠ " + "; ".join(problems) + " — " + out.get(page.status, "")
        return out

    page.copy_button.click(on_copy, [page.scene_seed, page.last_click, page.analysis, page.models], [link, page.status],
                           api_visibility="private").then(
        None, [link], [link], js="(q) => { if (!q) return q; const u = window.location.origin + window.location.pathname + q; "
                                 "if (navigator.clipboard) navigator.clipboard.writeText(u).catch(() => {}); return u; }")
    outputs = list(dict.fromkeys(page.analysis_outputs + page.click_outputs + [page.models, page.seed_box]))
    load = demo.load(on_load, [page.models], outputs, api_visibility="private")
    page.analysis_events.append(load)
    page.handlers.update(copy_link=on_copy, load=on_load)


def what_if_section(page: Page) -> None:
    """Switch parts of each model's graph off at the clicked pixel or over the image, and see the decision change."""
    gr.Markdown(WHAT_IF_HELP)
    with gr.Row():
        rates_off = gr.CheckboxGroup(list(RATE_LABELS), label="Switch off rates", elem_id="wi-rates")
        nodes_off = gr.Dropdown([], multiselect=True, label="Switch off nodes of the clicked pixel (largest share first)", elem_id="wi-nodes")
    with gr.Row():
        no_walks = gr.Checkbox(False, label="No walks / no offsets (DCN): nodes on the grid")
        uniform = gr.Checkbox(False, label="Uniform affinities")
        no_context = gr.Checkbox(False, label="No context at all")
    with gr.Row():
        occlude = gr.Checkbox(False, label="Occlude a box (input)")
        box = [gr.Number(v, label=n, precision=0, min_width=80) for n, v in (("x0", 0), ("y0", 96), ("x1", 256), ("y1", 128))]
        fill = gr.Radio(["mean", "blur"], value="mean", label="Fill")
    with gr.Row():
        at_pixel = gr.Button("Apply at this pixel", variant="primary", elem_id="wi-pixel")
        at_image = gr.Button("Apply to the whole image", elem_id="wi-image")
    summary = gr.Markdown(elem_id="wi-summary")
    with gr.Row():
        bars = [gr.Plot(label=f"Model {i + 1}: before → after", elem_id=f"wi-bars{i}") for i in range(SLOTS)]
    with gr.Row():
        before = [gr.Plot(label=f"Model {i + 1}: before (whole image)", elem_id=f"wi-before{i}") for i in range(SLOTS)]
    with gr.Row():
        after = [gr.Plot(label=f"Model {i + 1}: after", elem_id=f"wi-after{i}") for i in range(SLOTS)]
    outputs = [page.status, summary, *bars, *before, *after]

    def on_apply(scope, analysis, names, last, rates, nodes, walks_off, uniform_on, context_off, occlude_on, x0, y0, x1, y1, fill_with):
        if not page.clicked_on(analysis, last):
            return {page.status: "Click a pixel on the current image first, then apply an edit."}
        edits = edits_from_form(rates, walks_off, uniform_on, context_off, nodes, [x0, y0, x1, y1] if occlude_on else None, fill_with)
        if not edits:
            return {page.status: "Choose at least one edit (a rate, a node, no walks, uniform affinities, no context or a box)."}
        out, lines = {p: None for p in outputs[2:]}, []
        for i, name in enumerate(page.slots(names)):
            if name is None or name not in analysis.results:
                continue
            kept, notes = applicable_edits(page.explorer, name, edits, analysis.image.shape[:2])
            skip = not_applicable(name, page.explorer.card(name), "what_if")
            if skip and notes:  # a DGMN2 model: one line for all the graph edits it cannot take
                notes = [skip]
            lines += [md(n) for n in notes]
            if not kept:
                continue
            try:
                r = what_if(page.explorer, analysis, name, last.y, last.x, kept, scope)
            except (EditError, InputError) as exc:
                lines.append(f"{md(name)}: ⚠ {md(exc)}")
                continue
            card = page.explorer.card(name)
            lines.append("**" + md(describe(r)) + "**" + (f"<br>{md(iou_changes(r))}" if r.iou else ""))
            out[bars[i]] = viz.probability_figure(r.before.probabilities, r.after.probabilities, title=f"{name}: before → after",
                                                  palette=card["palette"], classes=card["classes"])
            if r.label_map is not None:
                out[before[i]] = viz.segmentation_figure(analysis.image, analysis.results[name].prediction, card["classes"], card["palette"], 0.6, f"{name}: before")
                out[after[i]] = viz.segmentation_figure(occluded(analysis.image, kept), r.label_map, card["classes"], card["palette"], 0.6, f"{name}: after")
            old = last.models.get(name).first_layer() if name in last.models else None
            if r.graph and old is not None and isinstance(old[1], NODE_QUERIES) and type(r.graph.get(old[0])) is type(old[1]):
                out[after[i]] = viz.moved_nodes_figure(occluded(analysis.image, kept), old[1], r.graph[old[0]], (last.y, last.x),
                                                       f"{name}: the pixel's nodes after the occlusion")
        out[summary] = "\n\n".join(lines) or "No selected model has a layer these edits apply to."
        out[page.status] = f"What if… at pixel (x={last.x:.0f}, y={last.y:.0f}), {'this pixel' if scope == 'pixel' else 'whole image'}: done."
        return out

    def on_pixel(*args):
        return on_apply("pixel", *args)

    def on_image(*args):
        return on_apply("image", *args)

    def on_nodes(last):
        choices = node_choices(last)
        return {nodes_off: gr.update(choices=choices, value=[])}

    def on_new_image():
        return {summary: "", **{p: None for p in outputs[2:]}}

    inputs = [page.analysis, page.models, page.last_click, rates_off, nodes_off, no_walks, uniform, no_context, occlude, *box, fill]
    at_pixel.click(on_pixel, inputs, outputs, api_visibility="private")
    at_image.click(on_image, inputs, outputs, api_visibility="private")
    for event in page.click_events:
        event.then(on_nodes, [page.last_click], [nodes_off], api_visibility="private")
    for event in page.analysis_events + page.reanalysis_events:
        event.then(on_new_image, None, [summary, *outputs[2:]], api_visibility="private")
    page.handlers.update(what_if=on_apply, nodes=on_nodes)


def class_flow_section(page: Page) -> None:
    """Where does a class look? Per model: where the messages of all pixels of a class come from (heat map,
    the class's own pixels outlined) and the share per source class (bars)."""
    with gr.Row():
        choice = gr.Dropdown([CLICKED_CLASS], value=CLICKED_CLASS, label="Class", elem_id="flow-class")
        button = gr.Button("Show where it looks", variant="primary", elem_id="flow-button")
    info = gr.Markdown(elem_id="flow-info")
    with gr.Row():
        heats = [gr.Plot(label=f"Model {i + 1}: where the class's messages come from", elem_id=f"flow-heat{i}") for i in range(SLOTS)]
    with gr.Row():
        bars = [gr.Plot(label=f"Model {i + 1}: share per source", elem_id=f"flow-bars{i}") for i in range(SLOTS)]

    def on_flow(analysis, names, last, wanted):
        if analysis is None:
            return {info: "Load or pick an image first."}
        out, lines = {p: None for p in heats + bars}, []
        for i, name in enumerate(page.slots(names)):
            if name is None or name not in analysis.results:
                continue
            skip = not_applicable(name, page.explorer.card(name), "class_flow")
            if skip:
                lines.append(md(skip))
                continue
            cls = wanted
            if wanted in (None, CLICKED_CLASS):
                if not page.clicked_on(analysis, last) or name not in last.models:
                    lines.append(f"{md(name)}: click a pixel first (or pick a class)")
                    continue
                cls = last.models[name].truth if isinstance(last.models[name].truth, str) else last.models[name].class_name
            try:
                view = class_view(page.explorer, analysis, name, cls)
            except InputError as exc:
                lines.append(f"{md(name)}: ⚠ {md(exc)}")
                continue
            if view is None:
                lines.append(f"{md(name)}: no context module, so no messages to follow")
                continue
            palette = page.explorer.card(name)["palette"]
            out[heats[i]] = viz.flow_heat_figure(analysis.image, view.heat, palette)
            out[bars[i]] = viz.flow_bar_figure(view.flow, cls, palette)
            lines.append(f"{md(name)}: **{md(cls)}** ({view.labels} labels)")
        out[info] = " · ".join(lines)
        return out

    def on_classes(analysis, names):
        classes = []
        for name in page.slots(names):
            if name is not None:
                classes += [c for c in page.explorer.card(name)["classes"] if c not in classes]
        return {choice: gr.update(choices=[CLICKED_CLASS] + classes, value=CLICKED_CLASS)}

    button.click(on_flow, [page.analysis, page.models, page.last_click, choice], [info, *heats, *bars], api_visibility="private")
    for event in page.analysis_events + page.reanalysis_events:
        event.then(on_classes, [page.analysis, page.models], [choice], api_visibility="private")
    page.handlers.update(flow=on_flow, flow_classes=on_classes)


def training_section(page: Page) -> None:
    """A slider over the training snapshots of the models that have a timeline: the clicked pixel's graph and
    the segmentation at that step beside the final model's, and the walk statistics over training."""
    info = gr.Markdown("Select a model with a training timeline (e.g. dgmn-full) and click a pixel.", elem_id="tl-info")
    slider = gr.Slider(0, 1, 0, step=1, label="Training step (snapshot)", elem_id="tl-slider")
    rows = []
    for i in range(SLOTS):
        with gr.Row():
            rows.append([gr.Plot(label=f"Model {i + 1}: graph at the snapshot", elem_id=f"tl-graph{i}"),
                         gr.Plot(label=f"Model {i + 1}: final model's graph", elem_id=f"tl-final{i}"),
                         gr.Plot(label=f"Model {i + 1}: segmentation at the snapshot", elem_id=f"tl-seg{i}")])
    stats = gr.Plot(label="Statistics over training", elem_id="tl-stats")
    outputs = [info, slider, stats, *[p for r in rows for p in r]]

    def on_slider(analysis, names, last, index):
        skipped = [md(n) for n in not_applicable_lines(page.explorer, page.slots(names), "timeline")]
        names = page.timelines.available(page.slots(names))
        if analysis is None or not names:
            return {info: "<br>".join(["None of the selected models has a training timeline: select one that has (e.g. dgmn-full)."]
                                      + skipped) if analysis is not None else "Load or pick an image first."}
        try:
            steps = sorted({s for n in names for s in page.timelines.steps(n)})
        except InputError as exc:
            return {info: f"⚠ {md(exc)}"}
        step = steps[min(max(int(index or 0), 0), len(steps) - 1)]
        out = {p: None for r in rows for p in r}
        clicked = page.clicked_on(analysis, last)
        for row, name in zip(rows, names):
            snap = page.timelines.analyse(analysis, name, step)
            card = page.explorer.card(name)
            shown = page.timelines.at(name, step)
            out[row[2]] = viz.segmentation_figure(analysis.image, analysis.results[snap].prediction, card["classes"], card["palette"], 0.6,
                                                  f"{name} at step {shown}: segmentation")
            if clicked:
                out[row[0]] = viz.answer_figure(analysis.image, f"{name} at step {shown}", page.timelines.answer(analysis, name, step, last.y, last.x), (last.y, last.x))
                if name in last.models:
                    out[row[1]] = viz.answer_figure(analysis.image, f"{name} (final)", last.models[name], (last.y, last.x))
        out[stats] = viz.timeline_stats_figure({n: page.timelines.stats(n) for n in names}, step)
        out[slider] = gr.update(maximum=len(steps) - 1, label=f"Training step: {step} (snapshot {steps.index(step) + 1} of {len(steps)})")
        problems = [p for n in names for p in page.timelines.problems(n)]
        out[info] = (f"Step **{step}**" + ("" if clicked else " — click a pixel to see its graph at each step") +
                     ("".join(f"<br>⚠ {md(p)}" for p in problems)) + "".join(f"<br>{n}" for n in skipped))
        return out

    slider.release(on_slider, [page.analysis, page.models, page.last_click, slider], outputs, trigger_mode="always_last", api_visibility="private")
    for event in page.click_events + page.analysis_events + page.reanalysis_events:
        event.then(on_slider, [page.analysis, page.models, page.last_click, slider], outputs, api_visibility="private")
    page.handlers["timeline"] = on_slider


def attribution_section(page: Page) -> None:
    """Saliency / Integrated Gradients of the clicked pixel, per model, on request (with a time limit)."""
    with gr.Row():
        method = gr.Radio(list(METHOD_LABELS), value="Saliency", label="Attribution of the clicked pixel")
        button = gr.Button("Compute attributions", variant="primary")
    with gr.Row():
        plots = [gr.Plot(label=f"Model {i + 1}: attribution", elem_id=f"attr{i}") for i in range(SLOTS)]

    def on_attribute(analysis, names, last, method, progress=gr.Progress()):
        """Attribution of the clicked pixel's predicted class, per model (Integrated Gradients runs on request)."""
        if not page.clicked_on(analysis, last):
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


def diagnostics_section(page: Page) -> None:
    """Walk diagnostics of each DGMN model, and offset diagnostics of each DCN model (refreshed after every analysis)."""
    with gr.Row():
        plots = [gr.Plot(label=f"Model {i + 1}: walks", elem_id=f"diag{i}") for i in range(SLOTS)]

    def on_diagnostics(analysis, names):
        """Walk (DCN: offset) lengths per rate, nodes outside the map and warnings, for the first DGMN or DCN layer of each model."""
        out = {}
        for plot, name in zip(plots, page.slots(names)):
            res = analysis.results.get(name) if analysis is not None and name else None
            layer = next(iter(res.walk_layers()), None) if res else None
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


def cost_section(page: Page) -> None:
    """The context module's MACs of each selected model against the input size (counted, not run)."""
    gr.Markdown("The paper's efficiency claim: Non-local compares every position with every other (cost grows with the "
                "square of the pixels), DGMN samples S×9 nodes per position (cost grows with the pixels). At the small "
                "feature maps of the shipped models Non-local is cheaper; the curves show where that turns.")
    button = gr.Button("Show the cost of the selected models", elem_id="cost-button")
    plot = gr.Plot(label="Context module cost by input size", elem_id="cost")
    cache: dict[str, dict | None] = {}

    def on_cost(names):
        curves, skipped = {}, []
        for name in [n for n in (names or []) if n]:
            note = not_applicable(name, page.explorer.card(name), "cost")
            if note:
                skipped.append(note)
                continue
            if name not in cache:
                cache[name] = macs_by_size(page.explorer.model(name))
            if cache[name] is not None:
                curves[name] = cache[name]
        if not curves:
            return {page.status: " · ".join(skipped or ["None of the selected models has a context module whose cost can be counted."]),
                    plot: None}
        kinds = {n: describe_context(page.explorer.card(n).get("architecture", {})) for n in curves}
        dg = next((curves[n] for n in curves if kinds[n].startswith("DGMN")), None)
        nl = next((curves[n] for n in curves if kinds[n] == "Non-local"), None)
        return {plot: viz.cost_figure(curves, crossover(dg, nl) if dg and nl else None),
                page.status: " · ".join(["Cost counted on the meta device (no compute)."] + skipped)}

    button.click(on_cost, [page.models], [plot, page.status], api_visibility="private")
    page.handlers["cost"] = on_cost


def export_section(page: Page) -> None:
    """The last inspection as JSON and as a standalone HTML report (plotly.js inlined; works offline)."""
    button = gr.Button("Export JSON + HTML")
    files = gr.File(label="Exported files", file_count="multiple", interactive=False)
    page.inspection_json.render()

    def on_export(analysis, names, last):
        if not page.clicked_on(analysis, last):
            return {page.status: "Click a pixel first; the export holds what you clicked.", files: None}
        preds = {n: analysis.results[n].prediction for n in last.models}
        cards = {n: page.explorer.card(n) for n in last.models}
        flows = clicked_class_flows(page.explorer, analysis, last)
        html = viz.report_html(analysis.image, last, (last.y, last.x), preds, cards)
        figures = "".join(viz.flow_bar_figure(analysis.derived[("class_view", n, f["class"])].flow, f["class"], cards[n]["palette"])
                          .to_html(full_html=False, include_plotlyjs=False, default_width="640px", default_height="360px") for n, f in flows.items())
        html = html.replace("<h2>Inspection (JSON)</h2>", "<h2>Where the clicked pixel's class looks</h2>" + figures + "<h2>Inspection (JSON)</h2>", 1)
        paths = write_inspection(last, html, extra={"context_flow": flows})
        return {page.status: "Exported. For a PNG of any panel, use the camera icon in the panel's toolbar.", files: paths}

    button.click(on_export, [page.analysis, page.models, page.last_click], [page.status, files], api_visibility="private")
    page.handlers["export"] = on_export


def api_endpoints(page: Page) -> None:
    """The public endpoints (for ``gradio_client``): ``inspect_xy``, ``segment`` and ``what_if``. Inputs and outputs
    are a public contract: (image file, x, y, list of model names), (image file, list of model names) and
    (image file, x, y, model name, edits, scope)."""
    endpoints = Endpoints(page.explorer)

    def inspect_xy(image_file: FileData, x: float, y: float, models: list[str]) -> dict:
        """inspect_xy(image file, x, y, list of model names) → {model: {class, layers: {...}}} (JSON); x, y in the image's pixels."""
        try:
            return endpoints.inspect(image_file, y, x, models)  # the endpoint's (x, y) → (y, x), once
        except InputError as exc:
            raise gr.Error(str(exc), print_exception=False) from None  # a user's mistake: no traceback in the log

    def segment(image_file: FileData, models: list[str]) -> dict:
        """segment(image file, list of model names) → {model: {classes, palette, shape, png_base64, pixels}}."""
        try:
            return endpoints.segment(image_file, models)
        except InputError as exc:
            raise gr.Error(str(exc), print_exception=False) from None  # a user's mistake: no traceback in the log

    def timeline(image_file: FileData, x: float, y: float, model: str) -> list[dict]:
        """timeline(image file, x, y, model name) → per training snapshot {step, class, probabilities, layers}."""
        try:
            return endpoints.timeline(image_file, y, x, model)  # (x, y) → (y, x), once
        except InputError as exc:
            raise gr.Error(str(exc), print_exception=False) from None  # a user's mistake: no traceback in the log

    def what_if(image_file: FileData, x: float, y: float, model: str, edits: list[dict], scope: str) -> dict:
        """what_if(image file, x, y, model name, edits, scope "pixel" | "image") → {model, scope, edits, pixel,
        before, after, changed_pixels[, label_map, iou, graph]}; edits such as [{"op": "drop_rate", "rate": 1}]."""
        try:
            return endpoints.what_if(image_file, y, x, model, edits, scope)  # (x, y) → (y, x), once
        except (InputError, EditError) as exc:
            raise gr.Error(str(exc), print_exception=False) from None  # a user's mistake: no traceback in the log

    gr.api(inspect_xy, api_name="inspect_xy")
    gr.api(segment, api_name="segment")
    gr.api(what_if, api_name="what_if")
    gr.api(timeline, api_name="timeline")
    page.handlers.update(inspect_xy=inspect_xy, segment=segment, what_if_endpoint=what_if, timeline_endpoint=timeline)


def in_memory_rows(explorer: Explorer) -> list[dict]:
    """Rows of the model table for models registered in memory (``dgmn.explore``)."""
    return [custom_summary(n, explorer.model(n)) for n in explorer.available() if n in explorer.registered]
