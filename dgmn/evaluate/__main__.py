"""Evaluate a checkpoint: ``python -m dgmn.evaluate --checkpoint NAME_OR_PATH [--dataset D] [--seed N] [--images N] [--json]
[--context-flow [--layer NAME]]``.

Public contract: with ``--json`` it prints one JSON object with at least ``miou`` (percent) and ``iou``
(class name → percent), plus params, MACs, pixel accuracy, the confusion matrix and, for ContextScenes,
the ambiguous pairs and the mixed-scene breakdown. Without ``--seed`` it evaluates the held-out split
named in the model card; ``--seed N`` draws a fresh ContextScenes split.

``--context-flow`` also measures, over the split's ground-truth labels, where each class's context comes
from (:mod:`dgmn.inspect.context_flow`): under ``"context_flow"`` the JSON holds ``{"layer", "labels",
"matrix": {target: {source: share}}, "positions": {target: count}, "images", "pairs"}``, where ``pairs``
gives, for the dataset's ambiguous pairs, the share each class draws from the surface that decides it.
The model still runs batched; only the measured layer runs a second time, one image at a time.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
import math
import sys

import torch

from ..closed_pipe import ends_quietly_on_closed_pipe
from ..data import DATASETS, ContextScenes, cityscapes, image_folder
from ..inspect.context_flow import ContextFlow, context_flow
from ..inspect.inspector import Inspector
from ..inspect.model_cards import describe_context
from ..models import CheckpointError, load_model
from ..modules import count_macs
from .metrics import evaluate_model


def _json_safe(o):
    if isinstance(o, float) and math.isnan(o):
        return None
    if isinstance(o, dict):
        return {k: _json_safe(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_json_safe(v) for v in o]
    return o


class FlowProbe:
    """Sums the context flow of one layer over an evaluation: ``evaluate_model(..., on_batch=probe)``.

    The model runs batched as usual; a pre-hook keeps the layer's input f (B, C, h, w) of every batch, and
    each image's f is then run through the layer alone under an :class:`Inspector` (which records one image at
    a time), so the records are the layer's own on that image and only the layer runs a second time.
    """

    def __init__(self, model: torch.nn.Module, layer: str | None, classes: list[str]):
        with Inspector(model) as ins:
            layers = ins.layers
        card = getattr(model, "card", {})
        if not layers:
            raise ValueError(f"--context-flow: {card.get('name', 'the model')} has no DGMN or Non-local layer (context module: "
                             f"{describe_context(card.get('architecture', {}))}), so there is no context flow to measure; "
                             "use a model with one (e.g. dgmn-full or fcn-nonlocal)")
        if layer is not None and layer not in layers:
            raise ValueError(f"--layer {layer!r} is not a DGMN or Non-local layer of this model; choose one of: {', '.join(layers)}")
        self.layer = layer if layer is not None else next(iter(layers))
        self.classes, self.total, self.inputs = classes, None, None
        self.inspector = Inspector(layers[self.layer])
        self._handle = layers[self.layer].register_forward_pre_hook(self._keep_input)

    def _keep_input(self, module, args) -> None:
        self.inputs = args[0].detach()

    def __call__(self, images, labels, logits) -> None:
        inputs = self.inputs
        for f, L in zip(inputs, labels):
            self.inspector.run(f)
            self.inspector.image_size = tuple(L.shape)  # the layer's input came from an image of the labels' size
            flow = replace(context_flow(self.inspector, L, labels_from="truth", classes=self.classes), layer=self.layer)
            self.total = flow if self.total is None else self.total + flow

    def close(self) -> None:
        self._handle.remove()
        self.inspector.close()


def pair_shares(flow: ContextFlow, dataset) -> dict:
    """For the dataset's declared ambiguous pairs: ``{"a/b": {class: {"surface", "share"}}}``, the share of each
    class's messages drawn from the surface that decides it (NaN if the class has no positions)."""
    surface = getattr(dataset, "deciding_surface", {})
    return {f"{a}/{b}": {c: {"surface": surface[c], "share": flow.row(c)[surface[c]]} for c in (a, b)}
            for a, b in getattr(dataset, "ambiguous_pairs", ()) if a in surface and b in surface}


def flow_table(flow: ContextFlow) -> str:
    """The flow as a text table: rows target classes (with their positions), columns source classes and "outside"."""
    sources = flow.sources
    width = [max(6, len(s)) for s in sources]
    lines = [f"  {'target':12s} {'positions':>9s}  " + "  ".join(f"{s:>{n}s}" for s, n in zip(sources, width))]
    for c, row in zip(flow.classes, flow.matrix.tolist()):
        n = flow.positions(c)
        cells = [f"{v:>{k}.3f}" if n else f"{'—':>{k}s}" for v, k in zip(row, width)]
        lines.append(f"  {c:12s} {n:9d}  " + "  ".join(cells))
    return "\n".join(lines)


def pairs_line(name: str, pairs: dict) -> str:
    """One line: the share each ambiguous class draws from the surface that decides it."""
    text = "; ".join(", ".join(f"{c} ← {v['surface']} {v['share']:.3f}" for c, v in entry.items()) for entry in pairs.values())
    return f"{name}: share drawn from the deciding surface — {text}"


@ends_quietly_on_closed_pipe
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m dgmn.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, help="a name in checkpoints/ (e.g. dgmn-full) or a path to a .safetensors/.json pair")
    p.add_argument("--dataset", choices=DATASETS, default=None, help="default: the card's evaluation dataset")
    p.add_argument("--data-root", default=None, help="folder of a cityscapes or folder dataset")
    p.add_argument("--seed", type=int, default=None, help="draw a fresh ContextScenes split with this seed")
    p.add_argument("--images", type=int, default=None, help="number of ContextScenes images (default: the card's)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--context-flow", action="store_true",
                   help="also measure where each class's context comes from (over the split's ground-truth labels)")
    p.add_argument("--layer", default=None, help="with --context-flow: the layer (default: the model's first DGMN or Non-local layer)")
    args = p.parse_args(argv)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device))
    try:
        model = load_model(args.checkpoint, device=device)
    except CheckpointError as exc:
        print(f"dgmn.evaluate: {exc}", file=sys.stderr)
        return 2
    card = model.card
    split = card.get("eval_split", {})
    dataset_name = args.dataset or split.get("dataset", "context-scenes")
    try:
        if dataset_name == "context-scenes":
            seed = args.seed if args.seed is not None else split.get("seed")
            if seed is None:
                raise ValueError("the model card names no held-out seed; pass --seed N")
            images = args.images or split.get("images", 500)
            size = tuple(split.get("size", (128, 128)))
            dataset = ContextScenes(seed=seed, length=images, size=size)
        elif dataset_name == "cityscapes":
            dataset = cityscapes(args.data_root or card.get("dataset", {}).get("root") or "", "val")
        else:
            dataset = image_folder(args.data_root or "", card["classes"], card["palette"])
    except ValueError as exc:
        print(f"dgmn.evaluate: {exc}", file=sys.stderr)
        return 2
    if list(dataset.classes) != list(card["classes"]):
        print(f"dgmn.evaluate: the dataset's classes {list(dataset.classes)} differ from the model's {card['classes']}", file=sys.stderr)
        return 2
    probe = None
    if args.context_flow:
        try:
            probe = FlowProbe(model, args.layer, list(card["classes"]))
        except ValueError as exc:
            print(f"dgmn.evaluate: {exc}", file=sys.stderr)
            return 2
    try:
        metrics = evaluate_model(model, dataset, args.batch_size, device, progress=not args.json, on_batch=probe)
    finally:
        if probe:
            probe.close()
    h, w = (dataset.size if isinstance(dataset, ContextScenes) else (512, 1024))
    result = {
        "checkpoint": card["name"], "dataset": dataset_name,
        "seed": getattr(dataset, "seed", None),
        **metrics,
        "params": sum(q.numel() for q in model.parameters()),
        "macs": count_macs(model, (1, 3, h, w)),
        "macs_input": [1, 3, h, w],
        "card_miou": (card.get("metrics") or {}).get("miou"),
    }
    if probe:
        result["context_flow"] = {**probe.total.to_json(), "images": probe.total.images, "pairs": pair_shares(probe.total, dataset)}
    if args.json:
        print(json.dumps(_json_safe(result)))
        return 0
    print(f"{card['name']} on {dataset_name} ({metrics['images']} images, seed {result['seed']}): mIoU {metrics['miou']:.2f}%  "
          f"pixel accuracy {metrics['pixel_accuracy']:.2f}%  params {result['params']:,}  MACs {result['macs'] / 1e9:.3f}G at {h}×{w}")
    for c, v in metrics["iou"].items():
        print(f"  {c:12s} {v:6.2f}")
    if "pairs" in metrics:
        for k, v in metrics["pairs"].items():
            print(f"  pair {k}: {v:.2f} (mixed scenes: {metrics['mixed']['pairs'][k]:.2f}, {metrics['mixed']['images']} images)")
    if probe:
        flow = probe.total
        print(f"context flow of layer {flow.layer!r} ({'ground-truth' if flow.labels == 'truth' else 'predicted'} labels, "
              f"{flow.images} images): per target class (row), the mean share of its messages from each source class")
        print(flow_table(flow))
        if result["context_flow"]["pairs"]:
            print(pairs_line(card["name"], result["context_flow"]["pairs"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
