"""``python -m dgmn.bench load`` and ``python -m dgmn.bench soak --minutes N``: the app under concurrent use.

Both start the app (``python -m dgmn.app``) on a free loopback port in a subprocess (the shipped checkpoints), talk to it
with ``gradio_client`` only over 127.0.0.1, and stop it afterwards; every loop is bounded in count and time.

* load: 8 concurrent sessions, each with its own image, 50 ``inspect_xy`` calls each; reports errors,
  p50/p95 latency, and checks every answer against the answer computed locally for that session's own
  image (no cross-session leakage).
* soak: sessions cycle through 24 images (more than the server's 16-entry analysis cache, so entries are
  evicted) with ``inspect_xy`` and ``segment`` for N minutes; reports the server's resident memory after a
  warm-up (first 20% of the time) and at the end.
"""
from __future__ import annotations

import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

MODELS = ["dgmn-full", "fcn-nonlocal", "fcn"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Server:
    """The app (``python -m dgmn.app``) on a free loopback port, in a subprocess."""

    def __init__(self):
        self.port = free_port()
        env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", NO_PROXY="127.0.0.1,localhost")
        self.proc = subprocess.Popen([sys.executable, "-m", "dgmn.app", "--host", "127.0.0.1", "--port", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        self.url = f"http://127.0.0.1:{self.port}/"
        deadline = time.time() + 120
        import urllib.request

        while time.time() < deadline:
            try:
                urllib.request.urlopen(self.url, timeout=2)
                return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError("the app did not start within 120 s")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def images(n: int, folder: Path, size=(128, 256)) -> list[str]:
    import cv2

    from ..data import ContextScenes

    paths = []
    for i in range(n):
        sc = ContextScenes(seed=500 + i, size=size).scene(0)
        p = folder / f"session-{i}.png"
        cv2.imwrite(str(p), cv2.cvtColor(sc.image, cv2.COLOR_RGB2BGR))
        paths.append(str(p))
    return paths


def fingerprint(answer: dict) -> tuple:
    """What must match between the server's and a local answer: classes and the first nodes' positions."""
    out = []
    for name in sorted(answer):
        e = answer[name]
        out.append((name, e["class"]))
        for q in e["layers"].values():
            if q["type"] == "dgmn":
                out.append(tuple(round(v, 3) for n in q["nodes"][:3] for v in n["sampled"]))
            else:
                out.append(tuple(q["feature_pixel"]) + tuple(t["feature"][0] * 1000 + t["feature"][1] for t in q["top"][:3]))
    return tuple(out)


def run_load(sessions: int = 8, calls: int = 50, time_limit: float = 600) -> list[dict]:
    from gradio_client import Client, handle_file

    from ..inspect.examples import read_image_file
    from ..inspect.explorer import Explorer, prepare_image

    folder = Path(tempfile.mkdtemp(prefix="dgmn-load-"))
    paths = images(sessions, folder)
    local = Explorer()
    rng = random.Random(0)
    plans = [[(rng.randrange(256), rng.randrange(128)) for _ in range(calls)] for _ in range(sessions)]
    expected = []
    for p, plan in zip(paths, plans):
        a = local.analyse(prepare_image(read_image_file(p))[0], MODELS)
        expected.append([fingerprint(local.inspect_xy(a, x, y, MODELS)) for x, y in plan])
    server = Server()
    latencies, errors, mismatches = [], [], []
    lock = threading.Lock()
    deadline = time.time() + time_limit

    def session(i):
        client = Client(server.url, verbose=False)
        for j, (x, y) in enumerate(plans[i]):
            if time.time() > deadline:
                with lock:
                    errors.append("time limit")
                return
            t0 = time.perf_counter()
            try:
                ans = client.predict(handle_file(paths[i]), x, y, MODELS, api_name="/inspect_xy")
            except Exception as exc:  # counted and reported, never hidden
                with lock:
                    errors.append(f"session {i} call {j}: {exc}")
                continue
            dt = time.perf_counter() - t0
            with lock:
                latencies.append(dt)
                if fingerprint(ans) != expected[i][j]:
                    mismatches.append((i, j))

    try:
        threads = [threading.Thread(target=session, args=(i,)) for i in range(sessions)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        server_rss = rss_mb(server.proc.pid)
    finally:
        server.stop()
    lat = sorted(latencies)
    return [dict(test="load", sessions=sessions, calls=len(latencies) + len(errors), errors=len(errors),
                 mismatched=len(mismatches), p50_ms=1e3 * statistics.median(lat) if lat else float("nan"),
                 p95_ms=1e3 * lat[int(0.95 * (len(lat) - 1))] if lat else float("nan"), wall_s=wall,
                 server_rss_mb=server_rss, first_error=errors[0] if errors else "")]


def run_soak(minutes: float = 10, sessions: int = 4) -> list[dict]:
    from gradio_client import Client, handle_file

    folder = Path(tempfile.mkdtemp(prefix="dgmn-soak-"))
    paths = images(24, folder)
    server = Server()
    stop_at = time.time() + 60 * minutes
    warm_at = time.time() + 12 * minutes  # 20% of the time
    samples, errors, calls = [], [], [0]
    lock = threading.Lock()

    def session(i):
        client = Client(server.url, verbose=False)
        rng = random.Random(i)
        while time.time() < stop_at:
            p = rng.choice(paths)
            try:
                if rng.random() < 0.8:
                    client.predict(handle_file(p), rng.randrange(256), rng.randrange(128), MODELS, api_name="/inspect_xy")
                else:
                    client.predict(handle_file(p), MODELS, api_name="/segment")
            except Exception as exc:
                with lock:
                    errors.append(str(exc))
            with lock:
                calls[0] += 1

    try:
        threads = [threading.Thread(target=session, args=(i,), daemon=True) for i in range(sessions)]
        for t in threads:
            t.start()
        while time.time() < stop_at:
            samples.append((time.time(), rss_mb(server.proc.pid)))
            time.sleep(5)
        for t in threads:
            t.join(timeout=120)
        end_rss = rss_mb(server.proc.pid)
    finally:
        server.stop()
    warm = [r for t, r in samples if t >= warm_at]
    base = warm[0] if warm else float("nan")
    peak = max(warm) if warm else float("nan")
    return [dict(test="soak", minutes=minutes, sessions=sessions, calls=calls[0], errors=len(errors),
                 rss_after_warmup_mb=base, rss_peak_after_warmup_mb=peak, rss_end_mb=end_rss,
                 growth_pct=100 * (end_rss - base) / base if warm else float("nan"), first_error=errors[0] if errors else "")]
