"""The paper's ablations seen through the what-if edits: over many scenes, the share of a class's pixels a
model still labels as that class after each image-scope edit.

    python -m dgmn.inspect.ablation --checkpoint dgmn-full --class boathouse [--seed 1000] [--images 100]

Scenes: ContextScenes' held-out split (the card's seed and size), mixed scenes that hold the class only.
Edits: none, no_context, drop_rate s for each rate alone, no_walks. Each is exactly the model with that part
of its graph switched off (:mod:`dgmn.inspect.what_if`).
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from ..data import ContextScenes
from .explorer import Explorer
from .what_if import EditError, what_if


def default_edits(explorer: Explorer, name: str) -> list[tuple[str, list[dict]]]:
    """(label, edits): the unedited model, no context, each rate alone switched off, no walks (where they apply)."""
    from ..modules import DGMN

    layer = next((m for m in explorer.model(name).modules() if isinstance(m, DGMN)), None)
    out = [("unedited", []), ("no_context", [{"op": "no_context"}])]
    if layer is not None:
        out += [(f"drop_rate {s} (dilation {d})", [{"op": "drop_rate", "rate": s}]) for s, d in enumerate(layer.dilations)]
        if layer.random_walk:
            out.append(("no_walks", [{"op": "no_walks"}]))
    return out


def class_retention(explorer: Explorer, name: str, cls: str, seed: int = 1000, images: int = 100, size=(128, 128),
                    progress=None) -> dict:
    """{label: share of the class's truth pixels still predicted as the class}, over ``images`` mixed scenes
    that hold the class, plus the pixel count."""
    classes = explorer.card(name)["classes"]
    if cls not in classes:
        raise ValueError(f"{name} has no class {cls!r}; its classes: {', '.join(classes)}")
    c = classes.index(cls)
    edits = default_edits(explorer, name)
    kept = {label: 0 for label, _ in edits}
    total, used, i = 0, 0, 0
    ds = ContextScenes(seed=seed, size=size)
    while used < images:
        sc = ds.scene(i)
        i += 1
        if not sc.mixed or not (sc.label == c).any():
            continue
        used += 1
        analysis = explorer.analyse(sc.image, [name], sc.label)
        mask = sc.label == c
        total += int(mask.sum())
        for label, e in edits:
            pred = analysis.results[name].prediction if not e else what_if(explorer, analysis, name, 0, 0, e, "image").label_map
            kept[label] += int((pred[mask] == c).sum())
        if progress:
            progress(used, images)
    return {"model": name, "class": cls, "scenes": used, "pixels": total, "seed": seed,
            "retained": {label: kept[label] / total for label in kept}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m dgmn.inspect.ablation", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--class", dest="cls", default="boathouse")
    p.add_argument("--seed", type=int, default=None, help="ContextScenes seed (default: the card's held-out split)")
    p.add_argument("--images", type=int, default=100)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    explorer = Explorer()
    try:
        split = explorer.card(args.checkpoint).get("eval_split") or {}
        seed = args.seed if args.seed is not None else int(split.get("seed", 1000))
        res = class_retention(explorer, args.checkpoint, args.cls, seed, args.images, tuple(split.get("size", (128, 128))),
                              progress=lambda k, n: print(f"\r{k}/{n} scenes", end="", file=sys.stderr))
    except (ValueError, EditError) as exc:
        print(f"dgmn.inspect.ablation: {exc}", file=sys.stderr)
        return 2
    print(file=sys.stderr)
    if args.json:
        print(json.dumps(res, indent=1))
    else:
        print(f"{res['model']}: share of {res['class']} pixels still called {res['class']} "
              f"({res['scenes']} mixed held-out scenes, seed {res['seed']}, {res['pixels']} pixels)")
        print("| edit (image scope) | retained |\n| --- | --- |")
        for label, v in res["retained"].items():
            print(f"| {label} | {100 * v:.1f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
