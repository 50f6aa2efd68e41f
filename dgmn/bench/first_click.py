"""``python -m dgmn.bench first-click [--runs N] [--root DIR]``: a newcomer's first minute, from process start.

Starts the app (``python -m dgmn.app``) as a fresh machine would: with an empty kernel cache (a new temporary
``TORCH_EXTENSIONS_DIR``), on a free loopback port. Then, through ``gradio_client`` like any script: ``inspect_xy`` on a
generated scene (``python -m dgmn.data scene --seed 3``) with the default models, a second ``inspect_xy`` on the same
image, a wait until the fast CPU kernel has been built (its ``.so`` appears in the cache), and ``inspect_xy`` on a new
scene (seed 4), now on the kernel. Times are seconds from the start of the process (``*_at_s``) or of the call (``*_s``).
Before each start it times a bare ``python -c "import torch, gradio"``: the floor under any start on this machine at
that minute (a shared host's speed drifts by half from one minute to the next). ``--runs N`` starts the app N times
and adds a row of medians, which the verdict reads. ``--root DIR`` runs another checkout of the project (e.g. an older
commit, for a before/after comparison).
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import cv2

from .server import free_port

MODELS = ["dgmn-full", "fcn-nonlocal", "fcn"]
COLUMNS = [("run", "run", "{}"), ("imports_s", "torch+gradio import s", "{:.1f}"),
           ("app_up_at_s", "app up at s", "{:.1f}"), ("first_click_at_s", "first answer at s", "{:.1f}"),
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


def imports_s(root: Path, env: dict) -> float:
    """Seconds a bare ``python -c "import torch, gradio"`` takes now: the floor under the app's start on this machine
    (its speed varies from minute to minute on a shared host; the app's own share is the rest)."""
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, gradio"], cwd=root, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def run(runs: int = 1, root: str | None = None) -> list[dict]:
    """``runs`` fresh starts, one row each, then (for more than one) a row of medians."""
    rows = [dict(run=str(i + 1), **run_once(root)) for i in range(runs)]
    if runs > 1:
        keys = [k for k, _, _ in COLUMNS if k != "run"]
        rows.append(dict(run="median", **{k: statistics.median(r[k] for r in rows) for k in keys}))
    return rows


def run_once(root: str | None = None) -> dict:
    from gradio_client import Client, handle_file

    root = Path(root).resolve() if root else Path(__file__).resolve().parents[2]
    work = Path(tempfile.mkdtemp(prefix="dgmn-first-click-"))
    cache = work / "torch_extensions"  # empty: as on a fresh machine
    scenes = [scene_png(work, 3), scene_png(work, 4)]
    port = free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", NO_PROXY="127.0.0.1,localhost", PYTHONPATH=str(root),
               TORCH_EXTENSIONS_DIR=str(cache))
    floor = imports_s(root, env)
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
    return dict(imports_s=floor, app_up_at_s=up, first_click_at_s=first_at, first_call_s=first, second_call_s=second,
                kernel_ready_at_s=ready_at, new_image_call_s=new_image)


def verdicts(rows: list[dict]) -> list[str]:
    r = rows[-1]  # the medians, or the one run
    ok = r["first_click_at_s"] <= 10
    what = "median of the runs" if r["run"] == "median" else "one run"
    return [f"target: first inspect_xy answered within 10 s of process start ({what}): {r['first_click_at_s']:.1f} s "
            f"{'MET' if ok else 'MISSED'}; of it {r['imports_s']:.1f} s is importing torch and gradio alone"]
