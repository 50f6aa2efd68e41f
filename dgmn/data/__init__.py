"""Datasets: ContextScenes (procedural, needs long-range context), Cityscapes layout, image/mask folders."""
from .context_scenes import AMBIGUOUS_PAIRS, CLASSES, DECIDING_SURFACE, PALETTE, ContextScenes, Scene, to_tensor
from .factory import DATASETS, build_dataset, eval_split
from .files import cityscapes, image_folder

__all__ = [
    "AMBIGUOUS_PAIRS", "CLASSES", "DATASETS", "DECIDING_SURFACE", "PALETTE", "ContextScenes", "Scene", "build_dataset", "cityscapes",
    "eval_split", "image_folder", "to_tensor",
]
