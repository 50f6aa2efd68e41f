"""Training augmentation: random scale, random crop (padding with the ignore label) and horizontal flip."""
from __future__ import annotations

import cv2
import numpy as np

IGNORE = 255


def random_scale_crop_flip(image: np.ndarray, label: np.ndarray, rng: np.random.Generator, crop: tuple[int, int],
                           scale=(0.75, 1.25), flip: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """image (H, W, 3) uint8, label (H, W) → (crop_h, crop_w, 3), (crop_h, crop_w); padding is 0 / ``IGNORE``."""
    s = float(rng.uniform(*scale)) if scale else 1.0
    if s != 1.0:
        h, w = label.shape
        size = (max(1, round(w * s)), max(1, round(h * s)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
        label = cv2.resize(label, size, interpolation=cv2.INTER_NEAREST)
    ch, cw = crop
    h, w = label.shape
    if h < ch or w < cw:
        ph, pw = max(0, ch - h), max(0, cw - w)
        image = np.pad(image, ((0, ph), (0, pw), (0, 0)))
        label = np.pad(label, ((0, ph), (0, pw)), constant_values=IGNORE)
        h, w = label.shape
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    image, label = image[y : y + ch, x : x + cw], label[y : y + ch, x : x + cw]
    if flip and rng.random() < 0.5:
        image, label = image[:, ::-1], label[:, ::-1]
    return np.ascontiguousarray(image), np.ascontiguousarray(label)
