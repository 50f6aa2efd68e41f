"""DGMN Explorer, the Gradio app: the top layer, wiring only (layout and events). Everything it computes is in
:mod:`dgmn.inspect`, everything it draws in :mod:`dgmn.viz`.

``build_app(explorer)`` builds the page; ``python -m dgmn.app`` / ``dgmn-explorer`` serves it;
``dgmn.explore(model, classes)`` opens it on your own model.
"""
from .blocks import build_app, build_page
from .explore import explore
from .launch import launch

__all__ = ["build_app", "build_page", "explore", "launch"]
