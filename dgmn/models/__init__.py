"""Models: backbones, the Dilated FCN segmenter with a context module, DGMN insertion, DGMN2 (``dgmn.models.dgmn2``),
checkpoints."""
from .backbones import SmallBackbone, build_backbone, load_torchvision_weights, resnet18, resnet50, resnet101
from .config import SegmenterConfig
from .dgmn2 import DGMN2Config, DGMN2Segmenter, slide_inference
from .checkpoint import CheckpointError, default_checkpoint_dir, list_checkpoints, load_model, save_model
from .insert import insert_dgmn
from .timeline import Timeline, has_timeline, load_timeline, timelines_available
from .segmenter import CONTEXTS, GlobalPoolContext, Segmenter, build_segmenter

__all__ = [
    "CONTEXTS", "CheckpointError", "DGMN2Config", "DGMN2Segmenter", "GlobalPoolContext", "Segmenter", "SegmenterConfig",
    "SmallBackbone", "build_backbone", "build_segmenter", "default_checkpoint_dir", "insert_dgmn", "list_checkpoints",
    "load_model", "load_timeline", "load_torchvision_weights", "resnet18", "resnet50", "resnet101", "save_model",
    "has_timeline", "slide_inference", "Timeline", "timelines_available",
]
