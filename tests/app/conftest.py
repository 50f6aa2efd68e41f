"""Helpers for the app's tests (the tiny checkpoints are in tests/conftest.py)."""
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
