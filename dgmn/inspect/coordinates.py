"""The one mapping between image pixels and feature positions, used by the inspector and by every figure.

Pixels are (y, x) everywhere in the library. A feature map of size (h, w) computed from an (H, W) image is
read the way bilinear upsampling with ``align_corners=False`` reads it: feature position (fy, fx) has its
centre at image pixel

    Y = (fy + ½)·H/h − ½,    X = (fx + ½)·W/w − ½

and image pixel (Y, X) sits at feature position fy = (Y + ½)·h/H − ½, fx = (X + ½)·w/W − ½.

A model family that upsamples with ``align_corners=True`` (DGMN2's heads, as every published DGMN2 configuration
sets it) reads its maps corner to corner instead, and the functions take ``align_corners=True`` for it:

    Y = fy·(H − 1)/(h − 1),    fy = Y·(h − 1)/(H − 1)    (0 when a side is 1 long)

For DGMN2 this is also where each feature position's receptive field is centred: its 3×3 stride-2 convolutions
with padding 1 centre position i at 2i, so at stride S position i sits at S·i, which is the formula above whenever
(H − 1)/(h − 1) = S, as on mmseg's 769-pixel crops (769 → 193 → 97 → 49 → 25).
The functions take Python floats, NumPy arrays or tensors alike (plain arithmetic, broadcast).
"""
from __future__ import annotations


def _corner_scale(n_to: int, n_from: int) -> float:
    return (n_to - 1) / (n_from - 1) if n_from > 1 else 0.0


def image_to_feature(y, x, feature_size, image_size, align_corners: bool = False):
    """Image pixel (y, x) → feature position (fy, fx), both continuous."""
    (h, w), (H, W) = feature_size, image_size
    if align_corners:
        return y * _corner_scale(h, H), x * _corner_scale(w, W)
    return (y + 0.5) * h / H - 0.5, (x + 0.5) * w / W - 0.5


def feature_to_image(fy, fx, feature_size, image_size, align_corners: bool = False):
    """Feature position (fy, fx) → the image pixel (Y, X) at its centre, both continuous."""
    (h, w), (H, W) = feature_size, image_size
    if align_corners:
        return fy * _corner_scale(H, h), fx * _corner_scale(W, w)
    return (fy + 0.5) * H / h - 0.5, (fx + 0.5) * W / w - 0.5


def nearest_index(y: float, x: float, size) -> tuple[int, int]:
    """A continuous position rounded to the nearest cell of a (rows, cols) grid, clamped inside it."""
    return min(max(int(round(y)), 0), size[0] - 1), min(max(int(round(x)), 0), size[1] - 1)


def nearest_feature(y: float, x: float, feature_size, image_size, align_corners: bool = False) -> tuple[int, int]:
    """The feature position (iy, ix) nearest to image pixel (y, x): the one whose graph the pixel shows."""
    return nearest_index(*image_to_feature(y, x, feature_size, image_size, align_corners), feature_size)


def feature_cells(feature_size, image_size) -> dict:
    """Where the cells of an (h, w) map lie over the image, for a heat map: the first centre and the
    spacing along each axis, ``{"y0", "dy", "x0", "dx"}`` in image pixels."""
    y0, x0 = feature_to_image(0, 0, feature_size, image_size)
    (h, w), (H, W) = feature_size, image_size
    return {"y0": y0, "dy": H / h, "x0": x0, "dx": W / w}


def bilinear_footprint(y: float, x: float, feature_size, image_size) -> list[tuple[int, int, float]]:
    """The feature positions from which bilinear upsampling (``align_corners=False``, as ``F.interpolate``)
    computes image pixel (y, x), with their weights: at most 4 ``(iy, ix, weight)``, weights > 0 summing to 1.
    Source coordinates below 0 are clamped to 0, as PyTorch does."""
    (h, w), (H, W) = feature_size, image_size
    out = {}
    fy, fx = (max(v, 0.0) for v in image_to_feature(y, x, feature_size, image_size))
    y0, x0 = min(int(fy), h - 1), min(int(fx), w - 1)
    ly, lx = fy - y0, fx - x0
    for iy, wy in ((y0, 1 - ly), (min(y0 + 1, h - 1), ly)):
        for ix, wx in ((x0, 1 - lx), (min(x0 + 1, w - 1), lx)):
            if wy * wx > 0:
                out[(iy, ix)] = out.get((iy, ix), 0.0) + wy * wx
    return [(iy, ix, wt) for (iy, ix), wt in out.items()]


def inside_box(box, feature_size, image_size):
    """(h, w) bool array: the feature positions whose centre (image pixels) lies in ``box`` = [x0, y0, x1, y1],
    x0 ≤ X < x1 and y0 ≤ Y < y1."""
    import numpy as np

    x0, y0, x1, y1 = box
    ys, xs = feature_to_image(np.arange(feature_size[0], dtype=float), np.arange(feature_size[1], dtype=float), feature_size, image_size)
    return ((ys >= y0) & (ys < y1))[:, None] & ((xs >= x0) & (xs < x1))[None, :]
