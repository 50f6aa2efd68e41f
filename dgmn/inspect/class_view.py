"""Where a whole class looks, on the analysed image, per model: the class's heat map and flow row of
:mod:`dgmn.inspect.context_flow`, with the labels the definition asks for (the ground truth when the image has
it, else the model's own prediction), computed once per (model, class) and kept with the analysis."""
from __future__ import annotations

from dataclasses import dataclass

from .context_flow import ClassHeat, ContextFlow, class_heat, context_flow
from .explorer import Analysis, Explorer, InputError


@dataclass
class ClassView:
    model: str
    labels: str  # "truth" | "prediction"
    heat: ClassHeat
    flow: ContextFlow


def class_view(explorer: Explorer, analysis: Analysis, name: str, class_name: str) -> ClassView | None:
    """The view of class ``class_name`` for model ``name`` (None if it has no context layer: DGMN, Non-local, DCN or CCNet;
    DGMN2 models have none)."""
    if name not in analysis.results:
        raise InputError(f"model {name!r} has not analysed this image; select it and run the analysis again")
    res = analysis.results[name]
    if not res.layers or not res.inspector.layers:  # no context layer (a DGMN2 model's blocks are not one)
        return None
    classes = explorer.card(name)["classes"]
    if class_name not in classes:
        raise InputError(f"{name} has no class {class_name!r}; its classes: {', '.join(classes)}")
    key = ("class_view", name, class_name)
    if key not in analysis.derived:
        labels_from = "truth" if analysis.truth is not None else "prediction"
        labels = analysis.truth if analysis.truth is not None else res.prediction
        heat = class_heat(res.inspector, labels, class_name, labels_from=labels_from, classes=classes)
        flow = context_flow(res.inspector, labels, labels_from=labels_from, classes=classes, targets=[class_name])
        analysis.derived[key] = ClassView(name, labels_from, heat, flow)
    return analysis.derived[key]


def clicked_class_flows(explorer: Explorer, analysis: Analysis, inspection) -> dict:
    """For an export: per model with a context layer, the flow row of the clicked pixel's class (its truth when
    known, else the model's prediction): ``{model: {"class", "layer", "labels", "positions", "row": {source: share}}}``."""
    out = {}
    for name, answer in inspection.models.items():
        cls = answer.truth if isinstance(answer.truth, str) else answer.class_name
        view = class_view(explorer, analysis, name, cls) if name in analysis.results else None
        if view is not None:
            out[name] = {"class": cls, "layer": view.flow.layer, "labels": view.labels, "positions": view.flow.positions(cls),
                         "row": view.flow.row(cls)}
    return out
