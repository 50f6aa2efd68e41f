"""Datasets from a training config: ``data.dataset`` ∈ context-scenes | cityscapes | folder."""
from __future__ import annotations

from .context_scenes import ContextScenes
from .files import cityscapes, image_folder

DATASETS = ("context-scenes", "cityscapes", "folder")
STREAM_LENGTH = 10**12  # ContextScenes training scenes: each training sample is a new scene


def _size(d: dict):
    return (d["size"], d["size"]) if isinstance(d["size"], int) else tuple(d["size"])


def build_dataset(cfg: dict, split: str = "train"):
    """The training (``split='train'``) or validation dataset named by ``cfg['data']``."""
    d = cfg["data"]
    name = d["dataset"]
    if name == "context-scenes":
        return ContextScenes(seed=d["train_seed"], length=STREAM_LENGTH, size=_size(d))
    if name == "cityscapes":
        return cityscapes(_root(d), split)
    if name == "folder":
        return image_folder(_root(d))
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


def eval_split(cfg: dict, seed: int | None = None, images: int | None = None):
    """The held-out split: ContextScenes(eval.seed, eval.images) or the dataset's 'val' split."""
    d, e = cfg["data"], cfg["eval"]
    if d["dataset"] == "context-scenes":
        return ContextScenes(seed=e["seed"] if seed is None else seed, length=e["images"] if images is None else images, size=_size(d))
    if d["dataset"] == "cityscapes":
        return cityscapes(_root(d), "val")
    return build_dataset(cfg, "val")


def _root(d: dict) -> str:
    if not d.get("root"):
        raise ValueError(f"dataset {d['dataset']!r} needs data.root (the folder that holds it)")
    return d["root"]
