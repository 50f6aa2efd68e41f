"""The page: the image, the model picker and the status on the left; one question per tab on the right."""
from __future__ import annotations

import gradio as gr

from ..inspect.examples import ExampleSet
from ..inspect.explorer import Explorer
from ..inspect.timeline_view import TimelineView
from . import sections
from .sections import SLOTS, Page

DEFAULT_MODELS = ("dgmn-full", "fcn-nonlocal", "fcn")
ATTRIBUTION_TIME_LIMIT_S = 60  # Integrated Gradients stops (with a message) when a request runs longer


# the tabs after "Graph", in order: (label, id, the section that fills it)
TABS = (
    ("What if…", "what-if", sections.what_if_section),
    ("Where a class looks", "class-flow", sections.class_flow_section),
    ("Training", "training", sections.training_section),
    ("Attribution", "attribution", sections.attribution_section),
    ("Diagnostics", "diagnostics", sections.diagnostics_section),
    ("Cost", "cost", sections.cost_section),
    ("Export", "export", sections.export_section),
)


def page_models(explorer: Explorer, default_models=None) -> list[str]:
    """The models the page shows first: ``default_models`` (else :data:`DEFAULT_MODELS`) that exist, else the first
    available ones."""
    available = explorer.available()
    wanted = list(default_models) if default_models is not None else list(DEFAULT_MODELS)
    return [m for m in wanted if m in available][:SLOTS] or available[:SLOTS]


def build_page(explorer: Explorer, examples: ExampleSet | None = None, default_models=None,
               attribution_time_limit: float = ATTRIBUTION_TIME_LIMIT_S) -> tuple[gr.Blocks, Page]:
    """The app and its :class:`Page` (whose ``handlers`` tests call directly)."""
    page = Page(explorer, ExampleSet.default() if examples is None else examples, attribution_time_limit, TimelineView(explorer))
    defaults = page_models(explorer, default_models)
    with gr.Blocks(title="DGMN Explorer") as demo:
        sections.header(page, sections.in_memory_rows(explorer))
        with gr.Row():
            with gr.Column(scale=1, min_width=320):
                sections.input_column(page, defaults)
            with gr.Column(scale=3):
                with gr.Tabs(elem_id="tabs"):
                    with gr.Tab("Graph", id="graph"):
                        sections.graph_section(page)
                        sections.segmentation_section(page)
                        sections.link_events(page, demo)  # restoring a link analyses and clicks like the events above
                    for label, tab_id, section in TABS:
                        with gr.Tab(label, id=tab_id):
                            section(page)
        sections.api_endpoints(page)
    return demo, page


def build_app(explorer: Explorer, examples: ExampleSet | None = None, default_models=None) -> gr.Blocks:
    """The DGMN Explorer app over ``explorer``'s models (not launched)."""
    return build_page(explorer, examples, default_models)[0]
