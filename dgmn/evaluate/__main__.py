"""Evaluate a checkpoint: ``python -m dgmn.evaluate --checkpoint NAME_OR_PATH [--dataset D] [--seed N] [--images N] [--json]``.

Public contract: with ``--json`` it prints one JSON object with at least ``miou`` (percent) and ``iou``
(class name → percent), plus params, MACs, pixel accuracy, the confusion matrix and, for ContextScenes,
the ambiguous pairs and the mixed-scene breakdown. Without ``--seed`` it evaluates the held-out split
named in the model card; ``--seed N`` draws a fresh ContextScenes split.
"""
from __future__ import annotations

import argparse
import json
import math
import sys

import torch

from ..data import DATASETS, ContextScenes, cityscapes, image_folder
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
    metrics = evaluate_model(model, dataset, args.batch_size, device, progress=not args.json)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
