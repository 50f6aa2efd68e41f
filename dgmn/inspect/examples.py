"""Example images for the app, and reading user image files into RGB arrays with clear errors."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from ..data import ContextScenes
from .explorer import InputError, image_id, prepare_image

EXAMPLE_SEED = 2024
PHOTOS = ("astronaut", "coffee", "chelsea")  # scikit-image's bundled data (public domain / CC0)
MAX_PIXELS = 20_000 * 20_000  # larger images are refused before decoding (decompression bombs)


def example_dir() -> Path:
    d = Path(os.environ.get("DGMN_EXAMPLES_DIR", Path(tempfile.gettempdir()) / "dgmn-examples"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def example_images(scenes: int = 4) -> list[tuple[str, np.ndarray | None]]:
    """(path, ground truth or None): generated ContextScenes (with truth) and, if scikit-image is installed,
    a few of its bundled photographs (no truth). Files are written once to a temporary folder."""
    import cv2

    out = []
    ds = ContextScenes(seed=EXAMPLE_SEED, size=(128, 256))
    for i in range(scenes):
        sc = ds.scene(i)
        p = example_dir() / f"context-scene-{EXAMPLE_SEED}-{i}.png"
        if not p.exists():
            cv2.imwrite(str(p), cv2.cvtColor(sc.image, cv2.COLOR_RGB2BGR))
        out.append((str(p), sc.label))
    try:
        from skimage import data as skdata
    except ImportError:
        return out
    for name in PHOTOS:
        p = example_dir() / f"{name}.png"
        if not p.exists():
            img = getattr(skdata, name)()
            cv2.imwrite(str(p), cv2.cvtColor(np.asarray(img)[..., :3], cv2.COLOR_RGB2BGR))
        out.append((str(p), None))
    return out


class ExampleSet:
    """The app's example images: (path, ground truth or None) pairs, their captions, and the ground truth of
    an analysed image found again by its content (example files are read once, on first use)."""

    def __init__(self, items: list[tuple[str, np.ndarray | None]]):
        self.items = list(items)
        self._truths: dict[str, np.ndarray] | None = None

    @classmethod
    def default(cls) -> "ExampleSet":
        return cls(example_images())

    def __len__(self) -> int:
        return len(self.items)

    def path(self, index: int) -> str:
        return self.items[index][0]

    def captions(self) -> list[str]:
        """'scene 1', 'scene 2', … for the generated scenes (they have ground truth), else the file's name."""
        out, n = [], 0
        for path, truth in self.items:
            n += truth is not None
            out.append(f"scene {n}" if truth is not None else Path(path).stem)
        return out

    def truth_for(self, image: np.ndarray) -> np.ndarray | None:
        """The ground truth of ``image`` (as analysed) if it is one of the examples that have one, else None."""
        if self._truths is None:
            self._truths = {image_id(prepare_image(read_image_file(p))[0]): t for p, t in self.items if t is not None}
        return self._truths.get(image_id(image))


def read_image_file(path) -> np.ndarray:
    """An image file → (H, W, C) array as stored (8 or 16 bit), EXIF orientation applied, first frame of
    animations. Raises :class:`InputError` with a message for the user when the file is not a usable image."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if path is None:
        raise InputError("no image file was given; upload a PNG or JPEG")
    p = Path(getattr(path, "path", path))
    if p.is_dir():
        raise InputError(f"{p} is a folder, not an image file; give the path of one image")
    if not p.is_file():
        raise InputError(f"the file {p.name} does not exist; check the path, or upload the image again")
    if p.stat().st_size == 0:
        raise InputError(f"{p.name} is empty (0 bytes); upload the image again")
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with Image.open(p) as im:
            im.seek(0)  # animations: the first frame
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise InputError(f"{p.name} is {w}×{h} pixels, too large to decode safely; downscale it to at most "
                                 f"{int(MAX_PIXELS ** 0.5)}×{int(MAX_PIXELS ** 0.5)} and upload it again")
            if max(w, h) > 4096:
                im.draft("RGB", (4096, 4096))  # JPEG decodes a reduced version straight away (no-op otherwise)
                if max(im.size) > 4096:  # others: decode in their own mode, then shrink by an integer factor
                    im = im.reduce(int(np.ceil(max(im.size) / 4096)))
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                return np.asarray(im, dtype=np.uint16 if im.mode.startswith("I;16") else np.int32).clip(0, 65535).astype(np.uint16)
            if im.mode not in ("RGB", "RGBA", "L"):
                im = im.convert("RGBA" if "A" in im.mode or im.mode == "P" else "RGB")
            return np.asarray(im)
    except UnidentifiedImageError:
        raise InputError(f"{p.name} is not an image this app can read; upload a PNG, JPEG, GIF, BMP or WebP") from None
    except InputError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InputError(f"{p.name} could not be decoded ({exc}); it may be truncated or corrupt — export it again") from None
