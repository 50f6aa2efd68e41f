"""Starting the app: the queue limits and launch options every entry point uses (the address and port checks are in
:mod:`dgmn.app.address`)."""
from __future__ import annotations

import os
import threading

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from ..inspect.explorer import Explorer  # noqa: E402
from ..ops.kernel_build import CPU_KERNEL  # noqa: E402
from .address import PortBusy, address_line, busy_message, listen_problem  # noqa: E402
from .blocks import build_app, page_models  # noqa: E402

QUEUE = {"default_concurrency_limit": 2, "max_size": 32}  # at most 2 events run at once, 32 wait
LAUNCH = {"server_name": "127.0.0.1", "server_port": 7860, "share": False, "ssr_mode": False, "max_file_size": "25mb",
          "quiet": True}  # quiet: no Gradio banner or share hint; address_line() says where the app is


def launch(explorer: Explorer, blocking: bool = True, default_models=None, **launch_options) -> gr.Blocks:
    """Build the app over ``explorer`` and serve it (loopback only unless ``server_name`` says otherwise).

    On the CPU the fused kernel is built (or loaded from its cache) in the background: the first answers come from
    the reference op, and the page says so until the kernel is ready. Raises :class:`PortBusy` if the port is taken."""
    options = {**LAUNCH, "prevent_thread_lock": not blocking, **launch_options}
    host, port = options["server_name"], options["server_port"]
    problem = listen_problem(host, port) if port is not None else None
    if problem:
        raise PortBusy(problem)
    if explorer.device.type == "cpu":
        CPU_KERNEL.start()
    demo = build_app(explorer, default_models=default_models)
    demo.queue(**QUEUE)
    try:
        demo.launch(**{**options, "prevent_thread_lock": True})
    except OSError as exc:  # taken between the check and Gradio's bind
        if "port" in str(exc).lower():
            raise PortBusy(busy_message(port)) from None
        raise
    if options["quiet"]:
        print(address_line(host, demo.server_port), flush=True)
    # the first-call costs of the models shown first, paid now rather than by the first click
    threading.Thread(target=explorer.warm_up, args=(page_models(explorer, default_models),), daemon=True,
                     name="warm up").start()
    if blocking:
        demo.block_thread()
    return demo
