"""``python -m dgmn.bench first-click [--root DIR]``: a newcomer's first minute, measured from process start.

Starts the app (``python -m dgmn.app``) as a fresh machine would: with an empty kernel cache (a new temporary
``TORCH_EXTENSIONS_DIR``), on a free loopback port. Then, through ``gradio_client`` like any script: ``inspect_xy`` on a
generated scene (``python -m dgmn.data scene --seed 3``) with the default models, a second ``inspect_xy`` on the same
image, a wait until the fast CPU kernel has been built (its ``.so`` appears in the cache), and ``inspect_xy`` on a new
scene (seed 4), now on the kernel. Times are seconds from the start of the process (``*_at_s``) or of the call (``*_s``).
``--root DIR`` runs another checkout of the project (e.g. an older commit, for a before/after comparison).
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import cv2

from .server import free_port

MODELS = ["dgmn-full", "fcn-nonlocal", "fcn"]
COLUMNS = [("app_up_at_s", "app up at s", "{:.1f}"), ("first_click_at_s", "first answer at s", "{:.1f}"),
           ("first_call_s", "first call s", "{:.2f}"), ("second_call_s", "second call s", "{:.2f}"),
           ("kernel_ready_at_s", "kernel ready at s", "{:.1f}"), ("new_image_call_s", "new image, kernel s", "{:.2f}")]


def scene_png(folder: Path, seed: int) -> str:
    """The scene written by this checkout's ``python -m dgmn.data scene`` (the same for any --root)."""
    from ..data.mixed_scene import mixed_scene

    path = folder / f"scene-{seed}.png"
    cv2.imwrite(str(path), cv2.cvtColor(mixed_scene(seed).image, cv2.COLOR_RGB2BGR))
    return str(path)


def kernel_built(cache: Path) -> bool:
    return any(cache.rglob("*.so"))


def run(repeats: int = 1, quick: bool = False, root: str | None = None) -> list[dict]:
    from gradio_client import Client, handle_file

    root = Path(root).resolve() if root else Path(__file__).resolve().parents[2]
    work = Path(tempfile.mkdtemp(prefix="dgmn-first-click-"))
    cache = work / "torch_extensions"  # empty: as on a fresh machine
    scenes = [scene_png(work, 3), scene_png(work, 4)]
    port = free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", NO_PROXY="127.0.0.1,localhost", PYTHONPATH=str(root),
               TORCH_EXTENSIONS_DIR=str(cache))
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "dgmn.app", "--port", str(port)], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the app exited with status {proc.returncode}")
            if time.perf_counter() - t0 > 300:
                raise RuntimeError("the app did not start within 300 s")
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        up = time.perf_counter() - t0
        client = Client(url, verbose=False)

        def call(image: str, x: int, y: int) -> float:
            t = time.perf_counter()
            client.predict(handle_file(image), x, y, MODELS, api_name="/inspect_xy")
            return time.perf_counter() - t

        first = call(scenes[0], 120, 40)
        first_at = time.perf_counter() - t0
        second = call(scenes[0], 60, 90)
        while not kernel_built(cache) and time.perf_counter() - t0 < 600:
            time.sleep(0.5)
        ready_at = time.perf_counter() - t0 if kernel_built(cache) else float("nan")
        time.sleep(2)  # the build thread loads the module after writing it
        new_image = call(scenes[1], 120, 40)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    return [dict(app_up_at_s=up, first_click_at_s=first_at, first_call_s=first, second_call_s=second,
                 kernel_ready_at_s=ready_at, new_image_call_s=new_image)]


def verdicts(rows: list[dict]) -> list[str]:
    r = rows[0]
    ok = r["first_click_at_s"] <= 10
    return [f"target: first inspect_xy answered within 10 s of process start: {r['first_click_at_s']:.1f} s "
            f"{'MET' if ok else 'MISSED'}"]
