"""ContextScenes on the command line.

    python -m dgmn.data scene --seed S --out scene.png [--labels labels.png] [--labels-colour labels-colour.png]
    python -m dgmn.data --preview OUT.png [--seed N] [--count K]

``scene``: the mixed scene for seed S (a house over road and a boathouse over water, 128×256) — the image the app's
**New scene** shows for that seed — and, optionally, its ground truth: ``--labels`` as class indices (an 8-bit
grey PNG, 0 = sky … 7 = boat, what the ``folder`` dataset reads as masks), ``--labels-colour`` in the palette.
``--preview``: a strip of ContextScenes samples over their labels.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from .context_scenes import ContextScenes
from .mixed_scene import MAX_SEED, mixed_scene


def preview(seed: int = 0, count: int = 8, size: int = 128) -> np.ndarray:
    ds = ContextScenes(seed=seed, size=size)
    pal = np.array(ds.palette, np.uint8)
    cols = []
    for i in range(count):
        sc = ds.scene(i)
        cols.append(np.concatenate([sc.image, pal[sc.label]], axis=0))
        cols.append(np.full((2 * size, 2, 3), 255, np.uint8))
    return np.concatenate(cols[:-1], axis=1)


def write_png(path: str, array: np.ndarray) -> None:
    """Write an RGB (H, W, 3) or grey (H, W) uint8 array; a folder that does not exist or a write that fails stops
    with one line."""
    p = Path(path)
    if p.suffix.lower() != ".png":
        raise SystemExit(f"python -m dgmn.data: {path}: give a .png file name (lossless: labels must stay exact)")
    if not p.parent.is_dir():
        raise SystemExit(f"python -m dgmn.data: {path}: the folder {p.parent} does not exist")
    ok = cv2.imwrite(str(p), cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array)
    if not ok:
        raise SystemExit(f"python -m dgmn.data: could not write {path}")
    print(f"wrote {path}")


def scene_main(argv) -> int:
    p = argparse.ArgumentParser(prog="python -m dgmn.data scene",
                                description="Write the app's mixed demonstration scene for a seed, and its ground truth.")
    p.add_argument("--seed", type=int, default=3, help=f"0–{MAX_SEED}; the app's 'Scene seed' box (default 3)")
    p.add_argument("--out", default="scene.png", help="the image (PNG, default scene.png)")
    p.add_argument("--labels", default=None, help="also write the class indices (8-bit grey PNG, 0 = sky … 7 = boat)")
    p.add_argument("--labels-colour", default=None, help="also write the labels in the dataset's palette (PNG)")
    args = p.parse_args(argv)
    try:
        sc = mixed_scene(args.seed)
    except ValueError as exc:
        p.error(str(exc))
    write_png(args.out, sc.image)
    if args.labels:
        write_png(args.labels, sc.truth.astype(np.uint8))
    if args.labels_colour:
        write_png(args.labels_colour, np.array(ContextScenes(seed=0).palette, np.uint8)[sc.truth])
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["scene"]:
        return scene_main(argv[1:])
    p = argparse.ArgumentParser(prog="python -m dgmn.data", description=__doc__.splitlines()[0],
                                epilog="`python -m dgmn.data scene --help`: one demonstration scene and its labels.")
    p.add_argument("--preview", required=True, help="output PNG")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--count", type=int, default=8)
    args = p.parse_args(argv)
    write_png(args.preview, preview(args.seed, args.count))
    return 0


if __name__ == "__main__":
    sys.exit(main())
