"""A minimal reader for DGMN2's mmcv-style Python config files (``_base_`` inheritance, recursive dict merge).

A config file is plain Python that assigns variables; ``_base_`` (a path or list of paths, relative to the
file) names files read first. Each variable of a child file is merged into the bases': dicts merge key by key,
recursively (a dict with ``_delete_=True`` replaces instead), anything else is replaced. This is the part of
``mmcv.Config.fromfile`` that the DGMN2 segmentation configs use.
"""
from __future__ import annotations

import copy
from pathlib import Path


def _merge(base, child):
    if isinstance(base, dict) and isinstance(child, dict) and not child.get("_delete_", False):
        out = dict(base)
        for k, v in child.items():
            out[k] = _merge(base[k], v) if k in base else _strip(v)
        return out
    return _strip(child)


def _strip(v):
    if isinstance(v, dict):
        return {k: _strip(x) for k, x in v.items() if k != "_delete_"}
    return copy.deepcopy(v)


def load_config(path) -> dict:
    path = Path(path)
    ns: dict = {"__file__": str(path)}
    exec(compile(path.read_text(), str(path), "exec"), ns)
    bases = ns.get("_base_", [])
    if isinstance(bases, str):
        bases = [bases]
    cfg: dict = {}
    for b in bases:
        cfg = _merge(cfg, load_config(path.parent / b))
    own = {k: v for k, v in ns.items() if not k.startswith("_") and not callable(v)
           and type(v).__name__ != "module"}
    return _merge(cfg, own)
