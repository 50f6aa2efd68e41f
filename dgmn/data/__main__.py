"""``python -m dgmn.data --preview OUT.png [--seed N] [--count K]``: a strip of ContextScenes samples over their labels."""
from __future__ import annotations

import argparse
import sys

import cv2
import numpy as np

from .context_scenes import ContextScenes


def preview(seed: int = 0, count: int = 8, size: int = 128) -> np.ndarray:
    ds = ContextScenes(seed=seed, size=size)
    pal = np.array(ds.palette, np.uint8)
    cols = []
    for i in range(count):
        sc = ds.scene(i)
        cols.append(np.concatenate([sc.image, pal[sc.label]], axis=0))
        cols.append(np.full((2 * size, 2, 3), 255, np.uint8))
    return np.concatenate(cols[:-1], axis=1)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m dgmn.data", description=__doc__.splitlines()[0])
    p.add_argument("--preview", required=True, help="output PNG")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--count", type=int, default=8)
    args = p.parse_args(argv)
    cv2.imwrite(args.preview, cv2.cvtColor(preview(args.seed, args.count), cv2.COLOR_RGB2BGR))
    print(f"wrote {args.preview}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
