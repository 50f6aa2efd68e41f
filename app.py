"""DGMN Explorer: click a pixel, see the dynamic graph each model built for it, side by side.

    python app.py [--checkpoints DIR] [--host 127.0.0.1] [--port 7860] [--device auto|cpu|cuda]

The same app as ``dgmn-explorer`` and ``python -m dgmn.app``: its code is the package's :mod:`dgmn.app`
(installed with the wheel); this file only starts it from a clone.
"""
import sys

from dgmn.app.__main__ import main


def __getattr__(name: str):  # scripts that did `import app; app.build_app(...)` (Gradio is imported only then)
    if name == "build_app":
        from dgmn.app import build_app

        return build_app
    raise AttributeError(f"module 'app' has no attribute {name!r}")


if __name__ == "__main__":
    sys.exit(main())
