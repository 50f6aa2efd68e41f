"""A model's label map as the ``segment`` endpoint sends it: a lossless PNG (base64) and pixel counts."""
from __future__ import annotations

import base64

import numpy as np


def encode_label_map(prediction: np.ndarray, card: dict) -> dict:
    """(H, W) uint8 class indices → ``{"classes", "palette", "shape": [H, W], "png_base64", "pixels": {class: count}}``.

    The PNG holds the class index of every pixel as one 8-bit grey value (decode with
    ``cv2.imdecode(..., cv2.IMREAD_UNCHANGED)``); ``pixels`` counts the classes that occur."""
    import cv2

    prediction = np.ascontiguousarray(prediction, dtype=np.uint8)
    ok, png = cv2.imencode(".png", prediction)
    if not ok:
        raise ValueError(f"could not encode a label map of shape {prediction.shape} as PNG")
    classes = card["classes"]
    return {
        "classes": classes, "palette": card["palette"], "shape": list(prediction.shape),
        "png_base64": base64.b64encode(png.tobytes()).decode(),
        "pixels": {classes[c]: int((prediction == c).sum()) for c in np.unique(prediction)},
    }
