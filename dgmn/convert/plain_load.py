"""Reading a PyTorch checkpoint as plain data only.

``torch.load(path, map_location="cpu", weights_only=True)``: PyTorch's restricted unpickler builds tensors,
dicts, lists, tuples, strings and numbers, and refuses any other Python object (a class instance, a function
such as ``os.system`` called through ``__reduce__``) *before* building it — so nothing in the file runs. Zip
checkpoints (every ``torch.save`` since 1.6) are memory-mapped, so a 600 MB file with optimizer state costs little
memory. Whatever goes wrong becomes one :class:`ConvertError` line.

:func:`load_plain_checkpoint` returns (state dict, the other top-level entries): a ``{"state_dict": {...}, ...}``
checkpoint (mmseg's, with ``meta`` and maybe ``optimizer``) or a bare state dict.
"""
from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from .errors import ConvertError


def load_plain_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise ConvertError(f"{path}: no such file")
    size = path.stat().st_size
    if size == 0:
        raise ConvertError(f"{path.name} is empty (0 bytes); download it again")
    is_zip = zipfile.is_zipfile(path)
    if not is_zip:
        with open(path, "rb") as f:
            head = f.read(2)
        if head[:1] != b"\x80":  # every torch.save file is a zip archive or a binary pickle (PROTO opcode first)
            what = "a zip archive without its directory" if head == b"PK" else "neither a zip archive nor a pickle"
            raise ConvertError(f"{path.name} is not a readable PyTorch checkpoint ({what}); it may be truncated or "
                               "corrupt — download it again")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except Exception as exc:  # the restricted unpickler ran no code; any failure is a refusal
        raise ConvertError(_why(path, exc)) from None
    if not isinstance(obj, dict):
        raise ConvertError(f"{path.name} holds a {type(obj).__name__}, not a checkpoint (a dict with a state dict)")
    if "state_dict" in obj:
        state, rest = obj["state_dict"], {k: v for k, v in obj.items() if k != "state_dict"}
        if not isinstance(state, dict):
            raise ConvertError(f"{path.name}: its 'state_dict' is a {type(state).__name__}, not a dict of tensors")
    elif obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state, rest = obj, {}
    else:
        keys = ", ".join(map(repr, list(obj)[:5]))
        raise ConvertError(f"{path.name} holds neither a 'state_dict' nor a bare state dict (top-level keys: {keys})")
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ConvertError(f"{path.name}: state dict entry {bad[0]!r} is not a tensor; this is not a model's state dict")
    return state, rest


def _why(path: Path, exc: Exception) -> str:
    text = str(exc)
    if isinstance(exc, pickle.UnpicklingError) or "Weights only load failed" in text:
        found = re.search(r"GLOBAL ([\w.]+)", text)
        what = f"it asks for the Python object {found.group(1)}" if found else (
            "it holds data the restricted unpickler does not accept" + (
                f" ({m.group(0)})" if (m := re.search(r"Unsupported operand \d+", text)) else ""))
        return (f"refusing {path.name}: {what}; only tensors and plain data are read (torch.load weights_only=True), "
                "nothing was run — convert it to a plain state dict in a trusted environment")
    if isinstance(exc, (EOFError, RuntimeError, KeyError, ValueError, OSError)):
        first = text.split(". ")[0].strip() or type(exc).__name__
        return f"{path.name} is not a readable PyTorch checkpoint ({first}); it may be truncated or corrupt — download it again"
    return f"{path.name} could not be read as a PyTorch checkpoint ({type(exc).__name__}: {text.splitlines()[0] if text else ''})"
