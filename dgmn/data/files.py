"""Datasets read from disk: the Cityscapes layout and a generic folder of image/mask pairs.

Both return raw samples through ``raw(i)`` → (image (H, W, 3) uint8 RGB, label (H, W) uint8 with 255 =
ignore) and normalised tensors through ``dataset[i]``.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)
CITYSCAPES_PALETTE = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
    (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
    (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot read image {path}: not an image file, or corrupt")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_label(path: Path) -> np.ndarray:
    lab = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if lab is None:
        raise ValueError(f"cannot read label map {path}: not an image file, or corrupt")
    if lab.ndim == 3:
        lab = lab[..., 0]
    return lab.astype(np.uint8)


class PairDataset(torch.utils.data.Dataset):
    """A list of (image path, label path) pairs; normalised with ImageNet statistics."""

    mean, std = IMAGENET_MEAN, IMAGENET_STD

    def __init__(self, pairs: list[tuple[Path, Path]], classes, palette):
        self.pairs, self.classes, self.palette = pairs, tuple(classes), tuple(palette)

    def __len__(self) -> int:
        return len(self.pairs)

    def raw(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        img, lab = self.pairs[i]
        image, label = read_rgb(img), read_label(lab)
        if image.shape[:2] != label.shape:
            raise ValueError(f"{img.name} is {image.shape[1]}×{image.shape[0]} but its label {lab.name} is {label.shape[1]}×{label.shape[0]}")
        return image, label

    def __getitem__(self, i: int):
        image, label = self.raw(i)
        x = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
        x = (x - torch.tensor(self.mean).view(3, 1, 1)) / torch.tensor(self.std).view(3, 1, 1)
        return x, torch.from_numpy(label.astype(np.int64))


def cityscapes(root: str | Path, split: str = "train") -> PairDataset:
    """``root/leftImg8bit/<split>/<city>/*_leftImg8bit.png`` with ``root/gtFine/<split>/<city>/*_gtFine_labelTrainIds.png``."""
    root = Path(root)
    img_dir = root / "leftImg8bit" / split
    if not img_dir.is_dir():
        raise ValueError(f"Cityscapes: {img_dir} does not exist; point --data-root at the folder holding leftImg8bit/ and gtFine/")
    pairs = []
    for img in sorted(img_dir.glob("*/*_leftImg8bit.png")):
        lab = root / "gtFine" / split / img.parent.name / img.name.replace("_leftImg8bit.png", "_gtFine_labelTrainIds.png")
        if not lab.is_file():
            raise ValueError(f"Cityscapes: {lab} is missing (create the *_labelTrainIds.png files with cityscapesScripts' createTrainIdLabelImgs)")
        pairs.append((img, lab))
    if not pairs:
        raise ValueError(f"Cityscapes: no *_leftImg8bit.png images under {img_dir}/<city>/")
    return PairDataset(pairs, CITYSCAPES_CLASSES, CITYSCAPES_PALETTE)


def image_folder(root: str | Path, classes=None, palette=None) -> PairDataset:
    """``root/images/<stem>.<ext>`` with ``root/masks/<stem>.png`` (class indices, 255 = ignore)."""
    root = Path(root)
    if not (root / "images").is_dir() or not (root / "masks").is_dir():
        raise ValueError(f"folder dataset: expected {root}/images/ and {root}/masks/")
    pairs = []
    for img in sorted(p for p in (root / "images").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        lab = root / "masks" / (img.stem + ".png")
        if not lab.is_file():
            raise ValueError(f"folder dataset: {img.name} has no mask {lab}")
        pairs.append((img, lab))
    if not pairs:
        raise ValueError(f"folder dataset: no images in {root}/images/")
    if classes is None:
        n = int(max(int(np.max(read_label(lab)[read_label(lab) != 255], initial=0)) for _, lab in pairs)) + 1
        classes = tuple(f"class {i}" for i in range(n))
    if palette is None:
        rng = np.random.default_rng(0)
        palette = tuple(tuple(int(c) for c in rng.integers(0, 256, 3)) for _ in classes)
    return PairDataset(pairs, classes, palette)
