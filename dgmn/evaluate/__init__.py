"""Evaluation: metrics and the ``python -m dgmn.evaluate`` CLI."""
from .metrics import ConfusionMatrix, evaluate_model

__all__ = ["ConfusionMatrix", "evaluate_model"]
