"""Starting the app: the queue limits and launch options every entry point uses."""
from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from ..inspect.explorer import Explorer  # noqa: E402
from .blocks import build_app  # noqa: E402

QUEUE = {"default_concurrency_limit": 2, "max_size": 32}  # at most 2 events run at once, 32 wait
LAUNCH = {"server_name": "127.0.0.1", "server_port": 7860, "share": False, "ssr_mode": False, "max_file_size": "25mb"}


def launch(explorer: Explorer, blocking: bool = True, default_models=None, **launch_options) -> gr.Blocks:
    """Build the app over ``explorer`` and serve it (loopback only unless ``server_name`` says otherwise)."""
    demo = build_app(explorer, default_models=default_models)
    demo.queue(**QUEUE)
    demo.launch(**{**LAUNCH, "prevent_thread_lock": not blocking, **launch_options})
    return demo
