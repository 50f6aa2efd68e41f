"""DGMN Explorer, the Gradio app: the top layer, wiring only (layout and events). Everything it computes is in
:mod:`dgmn.inspect`, everything it draws in :mod:`dgmn.viz`.

``build_app(explorer)`` builds the page; ``python -m dgmn.app`` / ``dgmn-explorer`` serves it;
``dgmn.explore(model, classes)`` opens it on your own model. Gradio is imported when one of these is first asked
for, so that ``dgmn-explorer`` can check its port before any heavy import.
"""
from importlib import import_module

__all__ = ["build_app", "build_page", "explore", "launch"]
_HOME = {"build_app": ".blocks", "build_page": ".blocks", "explore": ".explore", "launch": ".launch"}


def __getattr__(name: str):
    if name in _HOME:
        return getattr(import_module(_HOME[name], __name__), name)
    raise AttributeError(f"module 'dgmn.app' has no attribute {name!r}")
