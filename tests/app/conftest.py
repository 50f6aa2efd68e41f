"""Helpers for the app's tests (the tiny checkpoints are in tests/conftest.py)."""
import contextlib

import pytest


def plots(out: dict, prefix: str) -> list:
    """The values a handler gave the plots whose elem_id starts with ``prefix`` (e.g. "seg"), in slot order."""
    found = {k.elem_id: v for k, v in out.items() if getattr(k, "elem_id", None) and k.elem_id.startswith(prefix)
             and k.elem_id[len(prefix):].isdigit()}
    return [found[k] for k in sorted(found)]


def select(index):
    """What Gradio passes a .select handler: a click at [x, y] on an image, or the index of a gallery item."""
    import gradio as gr

    return gr.SelectData(None, {"index": index, "value": None, "selected": True})


@pytest.fixture()
def make_page(tiny_checkpoints):
    """make_page(examples=[(path, truth)], checkpoints=None, **build_page options) → the app's Page (handlers)."""
    from dgmn.app import build_page
    from dgmn.inspect.examples import ExampleSet
    from dgmn.inspect.explorer import Explorer

    def make(examples=(), checkpoints=None, **kw):
        return build_page(Explorer(checkpoints or tiny_checkpoints), ExampleSet(list(examples)), **kw)[1]

    return make


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(demo):
    """Launch ``demo`` on a free loopback port (queue as the app has it); yields its URL, closes it after."""
    demo.queue(default_concurrency_limit=2)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, ssr_mode=False, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()
