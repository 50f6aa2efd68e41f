"""Starting the app: a busy port, the one address line (no Gradio share hint), the kernel's status on the page."""
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from dgmn.app.launch import address_line
from dgmn.ops import kernel_build
from dgmn.ops.kernel_build import KernelBuild

from .conftest import free_port
from .test_handlers import NAMES, analyse, click, scene

ROOT = Path(__file__).resolve().parents[2]


def test_a_busy_port_is_one_line_and_status_2():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = subprocess.run([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, capture_output=True, text=True,
                             timeout=120)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.strip().splitlines() == [
        f"dgmn-explorer: port {port} is already in use (another DGMN Explorer or another server?); "
        f"choose another with --port, e.g. --port {port + 1}"]


def test_the_app_prints_its_address_and_no_share_hint(tiny_checkpoints, capfd):
    from dgmn.app.launch import launch
    from dgmn.inspect.explorer import Explorer

    port = free_port()
    demo = launch(Explorer(tiny_checkpoints), blocking=False, server_port=port)
    try:
        out = capfd.readouterr()
        assert out.out.splitlines() == [f"DGMN Explorer: http://127.0.0.1:{port} (this machine only). Stop with Ctrl+C."]
        assert "share" not in out.out + out.err and "Running on" not in out.out + out.err
    finally:
        demo.close()


def test_the_address_line_says_who_can_reach_an_open_host():
    line = address_line("0.0.0.0", 8000)
    assert "anyone who can reach this machine" in line and "http://127.0.0.1:8000" in line


@pytest.fixture
def slow_kernel(monkeypatch):
    """The fast CPU kernel, built in the background by a build that waits for ``release`` (a slow compile)."""
    release = threading.Event()

    def build(name, folder):
        release.wait(120)
        return kernel_build._load(name, folder)

    kb = KernelBuild(kernel_build.CPU_KERNEL.name, build)
    monkeypatch.setattr(kernel_build, "CPU_KERNEL", kb)
    import dgmn.app.sections as sections

    monkeypatch.setattr(sections, "CPU_KERNEL", kb)
    yield kb, release
    release.set()
    kb.wait(120)


def test_while_the_kernel_compiles_the_page_says_so_and_answers_right(slow_kernel, make_page, tmp_path):
    kb, release = slow_kernel
    kb.start()
    page = make_page()
    shown = page.handlers["kernel_status"]()[page.kernel_text]
    assert shown["visible"] and "Compiling the fast CPU kernel" in shown["value"] and "slower pure-PyTorch" in shown["value"]
    img, _ = scene()
    during, _ = analyse(page, img, NAMES)  # the first analysis, on the reference op
    first = click(page, during, 60, 40)[page.last_click]
    assert kb.status().state == "building"
    release.set()
    assert kb.wait(120).state == "ready"
    assert not page.handlers["kernel_status"]()[page.kernel_text]["visible"]
    page2 = make_page()
    after, _ = analyse(page2, img, NAMES)  # the same image on the fused kernel
    second = click(page2, after, 60, 40)[page2.last_click]
    for name in NAMES:
        a, b = first.models[name].probabilities, second.models[name].probabilities
        np.testing.assert_allclose(np.asarray(list(a.values())), np.asarray(list(b.values())), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("args, says", [
    (["--host", "10.255.255.1"], "cannot listen on 10.255.255.1:"),  # an address this machine does not have
    (["--host", "no.such.host.invalid"], "cannot listen on no.such.host.invalid:"),
    (["--port", "99999"], "'99999' is not a port: give a whole number from 1 to 65535"),
    (["--port", "abc"], "'abc' is not a port"),
])
def test_where_the_app_cannot_listen_is_one_line_and_status_2(args, says):
    res = subprocess.run([sys.executable, "app.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and res.stdout == "" and "Traceback" not in res.stderr
    assert says in res.stderr and "already in use" not in res.stderr


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_cuda_is_refused_at_start():
    res = subprocess.run([sys.executable, "app.py", "--device", "cuda", "--port", str(free_port())], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and res.stderr.strip().splitlines() == [
        "dgmn-explorer: --device cuda, but PyTorch sees no CUDA device here (torch.cuda.is_available() is False); "
        "use --device cpu, or auto (the default: CUDA when there is one)"]
