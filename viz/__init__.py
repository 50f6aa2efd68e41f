"""Compatibility for a clone: the figure builders live in :mod:`dgmn.viz` (installed with the package, so a
wheel adds no top-level name but ``dgmn``). ``import viz`` and ``from viz.report import report_html`` keep
working here; new code should import ``dgmn.viz``."""
import importlib as _importlib
import sys as _sys

from dgmn.viz import *  # noqa: F401,F403
from dgmn.viz import __all__  # noqa: F401

for _name in ("attention", "attribution", "base", "context", "diagnostics", "nodes", "report", "segmentation"):
    _sys.modules[f"{__name__}.{_name}"] = _importlib.import_module(f"dgmn.viz.{_name}")
