"""Building the fused CPU kernel: background builds answered by the reference, an unwritable cache, no compiler."""
import threading
import time
import warnings

import pytest
import torch

from dgmn.ops import dynamic_aggregate, kernel_build
from dgmn.ops.kernel_build import KernelBuild

from .test_dynamic_aggregate import make_inputs


@pytest.fixture
def inputs():
    return make_inputs(1, 8, 6, 7, (1, 2), 2, 3, torch.float32)


def patched(monkeypatch, build) -> KernelBuild:
    kb = KernelBuild(kernel_build.CPU_KERNEL.name, build)
    monkeypatch.setattr(kernel_build, "CPU_KERNEL", kb)
    return kb


def slow_real_build(release: threading.Event):
    """The real build (the disk cache makes it a load) that first waits for ``release``: a slow compile."""
    def build(name, folder):
        release.wait(60)
        return kernel_build._load(name, folder)
    return build


def test_a_background_build_lets_the_reference_answer_then_switches(monkeypatch, inputs):
    x, off, w = inputs
    ref = dynamic_aggregate(x, off, w, (1, 2), impl="reference")
    release = threading.Event()
    kb = patched(monkeypatch, slow_real_build(release))
    assert kb.start().state == "building"
    assert kb.get() is None  # no waiting while it builds
    during = dynamic_aggregate(x, off, w, (1, 2), impl="cpu")
    assert torch.equal(during, ref.contiguous(memory_format=torch.channels_last))  # the reference answered
    assert kb.status().state == "building" and "Compiling the fast CPU kernel" in kb.status().line()
    release.set()
    assert kb.wait(120).state == "ready"
    after = dynamic_aggregate(x, off, w, (1, 2), impl="cpu")
    torch.testing.assert_close(after, ref, rtol=1e-5, atol=1e-6)


def test_the_foreground_build_says_so_on_stderr_once(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    calls = []
    kb = KernelBuild("dgmn_test_kernel", lambda name, folder: calls.append(folder) or object())
    module = kb.get()
    assert module is not None and kb.get() is module and calls == [tmp_path / "dgmn_test_kernel"]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "compiling the fused CPU kernel" in err and str(tmp_path) in err


def test_a_cached_kernel_loads_without_a_message(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    (tmp_path / "dgmn_test_kernel").mkdir()
    (tmp_path / "dgmn_test_kernel" / "dgmn_test_kernel.so").write_bytes(b"")
    assert KernelBuild("dgmn_test_kernel", lambda name, folder: object()).get() is not None
    assert capsys.readouterr().err == ""


def test_an_unwritable_cache_falls_back_to_a_temporary_folder(monkeypatch, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")  # nothing can be created below a file, even as root
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(blocker / "cache"))
    folders = []
    kb = KernelBuild("dgmn_test_kernel", lambda name, folder: folders.append(folder) or object())
    assert kb.get() is not None and kb.status().state == "ready"
    err = capsys.readouterr().err
    assert f"the kernel cache {blocker / 'cache' / 'dgmn_test_kernel'} cannot be written" in err
    assert "TORCH_EXTENSIONS_DIR" in err and folders and folders[0].exists() and blocker not in folders[0].parents


def test_an_unwritable_cache_still_builds_the_real_kernel(monkeypatch, tmp_path, inputs):
    """The real compile into the temporary folder (about 30 s): the kernel works from there."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(blocker))
    # a name of its own: the same name built in two folders in one process makes PyTorch rename the build (name_v1)
    kb = KernelBuild(kernel_build.CPU_KERNEL.name + "_elsewhere")
    monkeypatch.setattr(kernel_build, "CPU_KERNEL", kb)
    x, off, w = inputs
    out = dynamic_aggregate(x, off, w, (1, 2), impl="cpu")
    assert kb.status().state == "ready"
    torch.testing.assert_close(out, dynamic_aggregate(x, off, w, (1, 2), impl="reference"), rtol=1e-5, atol=1e-6)


def test_without_a_compiler_the_reference_answers_with_one_warning(monkeypatch, inputs):
    monkeypatch.setenv("CXX", "no-such-compiler-dgmn")
    kb = patched(monkeypatch, None)
    x, off, w = inputs
    with pytest.warns(RuntimeWarning, match=r"no C\+\+ compiler \('no-such-compiler-dgmn'\).*slower pure-PyTorch reference.*Install a C\+\+ compiler"):
        a = dynamic_aggregate(x, off, w, (1, 2), impl="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once only
        b = dynamic_aggregate(x, off, w, (1, 2), impl="cpu")
    ref = dynamic_aggregate(x, off, w, (1, 2), impl="reference")
    assert torch.equal(a, ref) and torch.equal(b, ref)
    status = kb.status()
    assert status.state == "unavailable" and "no C++ compiler" in status.line() and "apt-get install g++" in status.line()


def test_a_failing_build_is_reported_not_raised(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))

    def broken(name, folder):
        raise RuntimeError("Error building extension 'x'\nfatal error: Python.h: No such file or directory")

    kb = KernelBuild("dgmn_test_kernel", broken)
    with pytest.warns(RuntimeWarning, match="building the C\\+\\+ kernel failed: fatal error: Python.h"):
        assert kb.get() is None
    assert kb.status().state == "unavailable"


def test_a_background_build_that_fails_warns_and_stays_on_the_reference(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    kb = KernelBuild("dgmn_test_kernel", lambda name, folder: 1 / 0)
    with pytest.warns(RuntimeWarning, match="ZeroDivisionError|division by zero"):
        kb.start()
        assert kb.wait(30).state == "unavailable"
    assert kb.get() is None


def test_a_build_killed_half_way_does_not_block_the_next(tmp_path):
    """A process killed while building leaves PyTorch's ``lock`` file behind; the next build must not wait for it."""
    folder = kernel_build.extension_root() / kernel_build.CPU_KERNEL.name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "lock").write_text("")  # what a killed build leaves
    done = []
    worker = threading.Thread(target=lambda: done.append(kernel_build._load(kernel_build.CPU_KERNEL.name, folder)), daemon=True)
    worker.start()
    worker.join(300)
    assert done and done[0] is not None and not (folder / "lock").exists()
