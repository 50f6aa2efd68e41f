"""Starting the app: the queue limits and launch options every entry point uses, a busy port, the address line."""
from __future__ import annotations

import os
import socket
import threading

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from ..inspect.explorer import Explorer  # noqa: E402
from ..ops.kernel_build import CPU_KERNEL  # noqa: E402
from .blocks import build_app, page_models  # noqa: E402

QUEUE = {"default_concurrency_limit": 2, "max_size": 32}  # at most 2 events run at once, 32 wait
LAUNCH = {"server_name": "127.0.0.1", "server_port": 7860, "share": False, "ssr_mode": False, "max_file_size": "25mb",
          "quiet": True}  # quiet: no Gradio banner or share hint; address_line() says where the app is


class PortBusy(OSError):
    """The port asked for is taken; the message names it and the option that changes it."""


def port_busy(host: str, port: int) -> bool:
    """Whether ``port`` on ``host`` cannot be bound now (something else listens there)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def busy_message(port: int) -> str:
    return (f"port {port} is already in use (another DGMN Explorer or another server?); "
            f"choose another with --port, e.g. --port {port + 1}")


def address_line(host: str, port: int) -> str:
    """The one line the app prints at start: where it is, and who can reach it."""
    if host in ("0.0.0.0", "::"):
        return (f"DGMN Explorer on port {port} of every network interface: anyone who can reach this machine can open "
                f"it (here: http://127.0.0.1:{port}). Stop with Ctrl+C.")
    return f"DGMN Explorer: http://{host}:{port} (this machine only). Stop with Ctrl+C."


def launch(explorer: Explorer, blocking: bool = True, default_models=None, **launch_options) -> gr.Blocks:
    """Build the app over ``explorer`` and serve it (loopback only unless ``server_name`` says otherwise).

    On the CPU the fused kernel is built (or loaded from its cache) in the background: the first answers come from
    the reference op, and the page says so until the kernel is ready. Raises :class:`PortBusy` if the port is taken."""
    options = {**LAUNCH, "prevent_thread_lock": not blocking, **launch_options}
    host, port = options["server_name"], options["server_port"]
    if port is not None and port_busy(host, port):
        raise PortBusy(busy_message(port))
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
