"""Converters from other projects' checkpoints to ours (``<name>.safetensors`` + ``<name>.json`` model card).

``python -m dgmn.convert dgmn2 CHECKPOINT.pth --out DIR [--name NAME] [--size S] [--head H]`` (``dgmn-convert``
where installed): a published DGMN2 Cityscapes checkpoint (mmsegmentation 0.x) → a checkpoint that
``dgmn.load_model("DIR/NAME")`` loads as a :class:`dgmn.models.dgmn2.DGMN2Segmenter`. The source file is read
with ``torch.load(weights_only=True)``: tensors and plain data only, never arbitrary pickled objects.
"""
from .errors import ConvertError
from .plain_load import load_plain_checkpoint
from .dgmn2_arch import infer_dgmn2
from .dgmn2 import convert_dgmn2

__all__ = ["ConvertError", "convert_dgmn2", "infer_dgmn2", "load_plain_checkpoint"]
