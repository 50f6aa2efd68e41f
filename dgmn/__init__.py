"""DGMN: Dynamic Graph Message Passing Networks (Zhang, Xu, Arnab, Torr) — op, layers, models, inspection."""
import os as _os

# On a busy 2-core machine OpenMP's active spin-wait made 2 threads 3–10× slower than 1 (measured);
# only effective when dgmn is imported before torch.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .modules import DGMN, NonLocal2d, RateGraph, count_macs  # noqa: E402
from .ops import dynamic_aggregate  # noqa: E402
from .models import build_segmenter, insert_dgmn, load_model  # noqa: E402

__all__ = ["DGMN", "NonLocal2d", "RateGraph", "build_segmenter", "count_macs", "dynamic_aggregate", "explore", "insert_dgmn",
           "load_model"]


def __getattr__(name: str):
    # ``dgmn.explore`` is the app (gradio), imported only when asked for: ``import dgmn`` stays light.
    if name == "explore":
        from .app.explore import explore

        return explore
    raise AttributeError(f"module 'dgmn' has no attribute {name!r}")
__version__ = "0.1.0"
