"""``python -m dgmn.bench load`` and ``python -m dgmn.bench soak --minutes N``: the app under concurrent use.

Both start the app (``python -m dgmn.app``) on a free loopback port in a subprocess (the shipped checkpoints), talk to it
with ``gradio_client`` only over 127.0.0.1, and stop it afterwards; every loop is bounded in count and time.

* load: 16 concurrent sessions, each with its own image, 50 calls each: ``inspect_xy`` mixed with ``what_if``
  (about one call in three; graph edits and occlusions at a pixel, one in four over the whole image) and
  ``timeline`` (one call in ten, for the models that ship a training timeline).
  Reports errors and p50/p95 latency per endpoint, and checks every answer against the answer computed
  locally (:class:`dgmn.inspect.endpoints.Endpoints`, no server) for that session's own image (no
  cross-session leakage): the same classes, probabilities within 1e-4, changed pixels within 2.
* soak: sessions cycle through 24 images (more than the server's 16-entry analysis cache, so entries are
  evicted) with ``segment`` (20%), ``timeline`` (5%, if a model has one), ``what_if`` (one in three of the rest)
  and ``inspect_xy`` for N minutes; reports the server's
  resident memory after a warm-up (first 20% of the time), at the end, and at each minute.
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
    """What must match between the server's and a local ``inspect_xy`` answer: classes and the first nodes' positions."""
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


def same_what_if(got: dict, want: dict) -> bool:
    """Whether two ``what_if`` answers agree: model, scope, pixel and classes exactly, probabilities within 1e-4,
    changed pixels within 2 (another thread count may sum in another order and flip a tie)."""
    if any(got.get(k) != want.get(k) for k in ("model", "scope", "pixel")):
        return False
    for k in ("before", "after"):
        g, w = got[k], want[k]
        if g["class"] != w["class"] or set(g["probabilities"]) != set(w["probabilities"]):
            return False
        if max(abs(g["probabilities"][c] - w["probabilities"][c]) for c in w["probabilities"]) > 1e-4:
            return False
    return abs(got["changed_pixels"] - want["changed_pixels"]) <= 2 and ("label_map" in got) == ("label_map" in want)


# what_if edits per model (the load and the soak pick among them); boxes are (x0, y0, x1, y1) in a 256×128 image
EDITS = {
    "dgmn-full": [[{"op": "drop_rate", "rate": 1}], [{"op": "no_walks"}], [{"op": "uniform_affinity", "rate": 0}],
                  [{"op": "drop_node", "rate": 2, "node": 4}], [{"op": "no_context"}]],
    "fcn-nonlocal": [[{"op": "mask_attention", "box": [0, 64, 256, 128]}], [{"op": "no_context"}]],
    "fcn": [[{"op": "occlude", "box": [96, 32, 160, 96], "fill": "mean"}], [{"op": "occlude", "box": [0, 0, 64, 64], "fill": "blur"}]],
}
WHAT_IF_SHARE = 1 / 3  # of the load's calls
IMAGE_SCOPE_SHARE = 1 / 4  # of its what_if calls


def what_if_call(rng: random.Random, x: int, y: int) -> tuple:
    """("what_if", x, y, model, edits, scope): a random model, one of its edits, pixel or (sometimes) image scope."""
    model = rng.choice(MODELS)
    return ("what_if", x, y, model, rng.choice(EDITS[model]), "image" if rng.random() < IMAGE_SCOPE_SHARE else "pixel")


TIMELINE_SHARE = 1 / 10  # of the load's calls, where a shipped model has a training timeline


def timeline_models() -> list[str]:
    """The compared models that ship a training timeline (the timeline endpoint's requests use these)."""
    from ..models import has_timeline

    return [m for m in MODELS if has_timeline(m)]


def same_timeline(got: list, want: list) -> bool:
    """Whether two ``timeline`` answers agree: the same steps and classes, probabilities within 1e-4."""
    if [(g["step"], g["class"]) for g in got] != [(w["step"], w["class"]) for w in want]:
        return False
    return all(max(abs(g["probabilities"][c] - w["probabilities"][c]) for c in w["probabilities"]) <= 1e-4
               for g, w in zip(got, want))


def plan_call(rng: random.Random, x: int, y: int, timelines: list[str]) -> tuple:
    """One request of the load's mix: ``timeline`` (1 in 10, if any model has one), ``what_if`` (1 in 3 of the
    rest) or ``inspect_xy``."""
    if timelines and rng.random() < TIMELINE_SHARE:
        return ("timeline", x, y, rng.choice(timelines))
    return what_if_call(rng, x, y) if rng.random() < WHAT_IF_SHARE else ("inspect_xy", x, y)


def call(client, path: str, request: tuple):
    """One endpoint call: ("inspect_xy", x, y), ("what_if", x, y, model, edits, scope), ("timeline", x, y, model)
    or ("segment",)."""
    from gradio_client import handle_file

    if request[0] == "timeline":
        return client.predict(handle_file(path), *request[1:], api_name="/timeline")
    if request[0] == "inspect_xy":
        return client.predict(handle_file(path), request[1], request[2], MODELS, api_name="/inspect_xy")
    if request[0] == "segment":
        return client.predict(handle_file(path), MODELS, api_name="/segment")
    return client.predict(handle_file(path), *request[1:], api_name="/what_if")


def expected(endpoints, path: str, request: tuple):
    """The answer to ``request`` computed locally (no server), as the comparison needs it."""
    if request[0] == "inspect_xy":
        return fingerprint(endpoints.inspect(path, request[2], request[1], MODELS))
    if request[0] == "timeline":
        return endpoints.timeline(path, request[2], request[1], request[3])
    _, x, y, model, edits, scope = request
    return endpoints.what_if(path, y, x, model, edits, scope)


def matches(request: tuple, answer, want) -> bool:
    if request[0] == "timeline":
        return same_timeline(answer, want)
    return fingerprint(answer) == want if request[0] == "inspect_xy" else same_what_if(answer, want)


def percentiles(latencies: list[float]) -> tuple[float, float]:
    """(p50, p95) in ms (nearest rank); NaN for none."""
    lat = sorted(latencies)
    if not lat:
        return float("nan"), float("nan")
    return 1e3 * statistics.median(lat), 1e3 * lat[int(0.95 * (len(lat) - 1))]


def run_load(sessions: int = 16, calls: int = 50, time_limit: float = 900) -> list[dict]:
    from gradio_client import Client

    from ..inspect.endpoints import Endpoints
    from ..inspect.explorer import Explorer

    folder = Path(tempfile.mkdtemp(prefix="dgmn-load-"))
    paths = images(sessions, folder)
    local = Endpoints(Explorer(), cache_items=sessions, cache_mb=1024)
    rng = random.Random(0)
    timelines = timeline_models()
    plans = []
    for _ in range(sessions):
        points = [(rng.randrange(256), rng.randrange(128)) for _ in range(calls)]
        plans.append([plan_call(rng, x, y, timelines) for x, y in points])
    wants = [[expected(local, p, r) for r in plan] for p, plan in zip(paths, plans)]
    server = Server()
    latencies: dict[str, list[float]] = {"inspect_xy": [], "what_if": [], "timeline": []}
    errors, mismatches = [], []
    lock = threading.Lock()
    deadline = time.time() + time_limit

    def session(i):
        client = Client(server.url, verbose=False)
        for j, request in enumerate(plans[i]):
            if time.time() > deadline:
                with lock:
                    errors.append("time limit")
                return
            t0 = time.perf_counter()
            try:
                answer = call(client, paths[i], request)
            except Exception as exc:  # counted and reported, never hidden
                with lock:
                    errors.append(f"session {i} call {j} ({request[0]}): {exc}")
                continue
            dt = time.perf_counter() - t0
            with lock:
                latencies[request[0]].append(dt)
                if not matches(request, answer, wants[i][j]):
                    mismatches.append((i, j, request[0]))

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
    row = dict(test="load", sessions=sessions, calls=sum(map(len, latencies.values())) + len(errors), errors=len(errors),
               mismatched=len(mismatches))
    for endpoint, lat in latencies.items():
        p50, p95 = percentiles(lat)
        row.update({f"{endpoint}_calls": len(lat), f"{endpoint}_p50_ms": p50, f"{endpoint}_p95_ms": p95})
    row.update(wall_s=wall, server_rss_mb=server_rss, first_error=errors[0] if errors else "",
               first_mismatch=str(mismatches[0]) if mismatches else "")
    return [row]


def run_soak(minutes: float = 10, sessions: int = 4) -> list[dict]:
    from gradio_client import Client

    folder = Path(tempfile.mkdtemp(prefix="dgmn-soak-"))
    paths = images(24, folder)
    server = Server()
    stop_at = time.time() + 60 * minutes
    warm_at = time.time() + 12 * minutes  # 20% of the time
    samples, errors, counts = [], [], {"inspect_xy": 0, "what_if": 0, "timeline": 0, "segment": 0}
    timelines = timeline_models()
    lock = threading.Lock()

    def session(i):
        client = Client(server.url, verbose=False)
        rng = random.Random(i)
        while time.time() < stop_at:
            p, r = rng.choice(paths), rng.random()
            x, y = rng.randrange(256), rng.randrange(128)
            request = (("segment",) if r < 0.2 else ("timeline", x, y, rng.choice(timelines)) if timelines and r < 0.25
                       else plan_call(rng, x, y, []))
            try:
                call(client, p, request)
            except Exception as exc:
                with lock:
                    errors.append(f"{request[0]}: {exc}")
            with lock:
                counts[request[0]] += 1

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
    return [dict(test="soak", minutes=minutes, sessions=sessions, calls=sum(counts.values()),
                 **{f"{k}_calls": v for k, v in counts.items()}, errors=len(errors),
                 rss_after_warmup_mb=base, rss_peak_after_warmup_mb=peak, rss_end_mb=end_rss,
                 growth_pct=100 * (end_rss - base) / base if warm else float("nan"),
                 rss_each_minute_mb=" ".join(f"{r:.0f}" for r in each_minute(samples)), first_error=errors[0] if errors else "")]


def each_minute(samples: list[tuple[float, float]]) -> list[float]:
    """The resident memory (MB) sampled nearest each whole minute after the first sample: plateau or growth."""
    if not samples:
        return []
    t0, out = samples[0][0], []
    for m in range(1, int((samples[-1][0] - t0) // 60) + 1):
        out.append(min(samples, key=lambda s: abs(s[0] - t0 - 60 * m))[1])
    return out
