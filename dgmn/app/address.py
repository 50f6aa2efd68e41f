"""Where the app listens: whether a port is free, the one-line messages for a busy port and for the address.

Free of Gradio and PyTorch, so that ``dgmn-explorer`` on a busy port answers at once, before any heavy import."""
from __future__ import annotations

import errno
import socket


class PortBusy(OSError):
    """The app cannot listen where it was asked to (the port is taken, or the host is not this machine's); the
    message names the problem and the option that changes it."""


def bind_error(host: str, port: int) -> OSError | None:
    """Why ``port`` on ``host`` cannot be bound now, or None when it can."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.bind((host, port))
    except OSError as exc:  # socket.gaierror (a name that does not resolve) is one too
        return exc
    return None


def listen_problem(host: str, port: int) -> str | None:
    """One line saying why the app cannot listen on ``host``:``port`` and what to change, or None when it can."""
    exc = bind_error(host, port)
    if exc is None:
        return None
    if exc.errno == errno.EADDRINUSE:
        return busy_message(port)
    reason = exc.strerror or str(exc)
    return (f"cannot listen on {host}:{port} ({reason}); --host must be an address of this machine: 127.0.0.1 for "
            f"this machine only, 0.0.0.0 for every network interface")


def busy_message(port: int) -> str:
    return (f"port {port} is already in use (another DGMN Explorer or another server?); "
            f"choose another with --port, e.g. --port {port + 1}")


def address_line(host: str, port: int) -> str:
    """The one line the app prints at start: where it is, and who can reach it."""
    if host in ("0.0.0.0", "::"):
        return (f"DGMN Explorer on port {port} of every network interface: anyone who can reach this machine can open "
                f"it (here: http://127.0.0.1:{port}). Stop with Ctrl+C.")
    return f"DGMN Explorer: http://{host}:{port} (this machine only). Stop with Ctrl+C."
