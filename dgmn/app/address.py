"""Where the app listens: whether a port is free, the one-line messages for a busy port and for the address.

Free of Gradio and PyTorch, so that ``dgmn-explorer`` on a busy port answers at once, before any heavy import."""
from __future__ import annotations

import socket


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
