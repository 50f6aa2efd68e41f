"""Building the fused CPU kernel: compiled once per machine and cached, never a silent wait.

The C++ source (``csrc/dynamic_aggregate.cpp``) is compiled with ``torch.utils.cpp_extension.load`` the first
time a CPU op needs it (about 20–40 s on 2 cores) and cached in ``$TORCH_EXTENSIONS_DIR`` (default
``~/.cache/torch_extensions``), in a folder named by the hash of the source and the compiler flags; a later process
only loads it (about a second). Two ways to get it:

* **in the foreground** (the default: scripts, training, the command-line tools): the first op that needs the
  kernel builds it and waits, after one line on stderr that says so (none when it is only loaded from the cache);
* **in the background** (:meth:`KernelBuild.start`, what the app calls at start): a thread builds it while the ops
  answer with the pure-PyTorch reference (same numbers to float tolerance, slower); they switch to the kernel when
  it is ready. :meth:`KernelBuild.status` says which of the two answers, for the page to show.

A cache folder that cannot be written (a read-only home, a locked-down CI) is replaced by a temporary folder, with one
message; without a C++ compiler, or when the build fails, the ops use the reference with one ``RuntimeWarning`` that
says what is slower and how to fix it. Nothing here raises.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch

SOURCE = Path(__file__).with_name("csrc") / "dynamic_aggregate.cpp"
BUILD_SECONDS = "about 20–40 s on 2 cores"
FALLBACK = ("dynamic_aggregate falls back to the slower pure-PyTorch reference (the same numbers; measured on 2 cores: "
            "the shipped dgmn-full about 3× slower on a 128×256 image, a 512-channel DGMN layer at 97×97 about 8×)")
NO_KERNEL_FIX = ("Install a C++ compiler (e.g. `apt-get install g++`, or Xcode's command-line tools on macOS) and "
                 "restart to enable it.")


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def extension_root() -> Path:
    """Where ``torch.utils.cpp_extension`` keeps built extensions: ``$TORCH_EXTENSIONS_DIR``, else its default
    root with the Python/accelerator subfolder (``~/.cache/torch_extensions/py311_cpu``)."""
    root = os.environ.get("TORCH_EXTENSIONS_DIR")
    if root:
        return Path(root)
    from torch.utils.cpp_extension import get_default_build_root

    accel = f"cu{torch.version.cuda.replace('.', '')}" if torch.version.cuda else "cpu"
    return Path(get_default_build_root()) / f"py{sys.version_info.major}{sys.version_info.minor}_{accel}"


def writable_folder(folder: Path) -> Optional[str]:
    """None if ``folder`` can be created and written, else the reason (an ``OSError``'s message)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".dgmn-write-test-"):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


@dataclass(frozen=True)
class KernelStatus:
    """What answers CPU ops now. ``state``: "not built" (nothing asked for it yet), "building", "ready" or
    "unavailable" (no compiler, or the build failed: the reference answers for good)."""

    state: str
    detail: str = ""  # the reason when unavailable; the build folder otherwise
    seconds: float = 0.0  # how long the build has run (building) or took (ready)

    @property
    def fast(self) -> bool:
        return self.state == "ready"

    def line(self) -> str:
        """One line for a page or a log."""
        if self.state == "building":
            return (f"⏳ Compiling the fast CPU kernel (first start on this machine, {BUILD_SECONDS}; {self.seconds:.0f} s "
                    "so far). Answers meanwhile come from the slower pure-PyTorch op: the same numbers, a little later.")
        if self.state == "unavailable":
            return f"⚠ The fast CPU kernel is unavailable ({self.detail}): answers come from the slower pure-PyTorch op. {NO_KERNEL_FIX}"
        if self.state == "ready":
            return f"✓ The fast CPU kernel is ready ({self.seconds:.1f} s)."
        return "The fast CPU kernel is built on first use."


class KernelBuild:
    """One C++ extension: built at most once per process, cached on disk across processes.

    ``build`` (default: ``torch.utils.cpp_extension.load`` of :data:`SOURCE`) takes the extension's name and build
    folder and returns the module; tests replace it (a slow build, a failing one)."""

    def __init__(self, name: str, build: Optional[Callable[[str, Path], object]] = None,
                 what: str = "the fused CPU kernel", fallback: str = FALLBACK):
        self.name = name
        self._build = build
        self.what, self.fallback = what, fallback  # the warning: "{what} is unavailable (why); {fallback}"
        self._lock = threading.Lock()
        self._module = None
        self._failure: Optional[str] = None
        self._thread: Optional[threading.Thread] = None
        self._started = 0.0
        self._seconds = 0.0
        self._folder: Optional[Path] = None
        self._warned = False

    # --- what callers use -------------------------------------------------------------------------------------
    def get(self):
        """The module, or None when the reference must answer: no compiler / a failed build (warned once), or a
        background build still running. Builds in the foreground (one line on stderr) when nothing started it."""
        if self._module is not None or self._failure is not None:
            return self._module
        thread = self._thread
        if thread is not None and thread.is_alive():
            return None  # the background build is running: the reference answers meanwhile
        with self._lock:
            if self._module is None and self._failure is None:
                self._run(announce=True)
        if self._failure is not None:
            self._warn()
        return self._module

    def start(self) -> KernelStatus:
        """Build (or load from the cache) in a background thread; returns at once. Calls of :meth:`get` answer None
        until it is ready."""
        with self._lock:
            if self._module is None and self._failure is None and self._thread is None:
                self._started = time.perf_counter()
                self._thread = threading.Thread(target=self._background, name=f"build {self.name}", daemon=True)
                self._thread.start()
        return self.status()

    @property
    def started_in_background(self) -> bool:
        """Whether :meth:`start` was called (the process prefers the reference to waiting for a build)."""
        return self._thread is not None

    def wait(self, timeout: Optional[float] = None) -> KernelStatus:
        """Block until a background build ends (or ``timeout`` seconds pass)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.status()

    def status(self) -> KernelStatus:
        if self._module is not None:
            return KernelStatus("ready", str(self._folder or ""), self._seconds)
        if self._failure is not None:
            return KernelStatus("unavailable", self._failure, self._seconds)
        if self._thread is not None:
            return KernelStatus("building", str(self._folder or ""), time.perf_counter() - self._started)
        return KernelStatus("not built")

    def reset(self) -> None:
        """Forget the module (tests); the disk cache stays."""
        with self._lock:
            self._module, self._failure, self._thread, self._folder, self._warned = None, None, None, None, False

    # --- the build --------------------------------------------------------------------------------------------
    def folder(self) -> Path:
        """The build folder: the extension cache, or a fresh temporary folder (with one message) if it cannot
        be written."""
        wanted = extension_root() / self.name
        reason = writable_folder(wanted)
        if reason is None:
            return wanted
        tmp = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        _say(f"dgmn: the kernel cache {wanted} cannot be written ({reason}); building in {tmp} instead, which is not "
             "kept after this process (set TORCH_EXTENSIONS_DIR to a writable folder to keep the kernel).")
        return tmp

    def cached(self, folder: Path) -> bool:
        return (folder / f"{self.name}.so").exists()

    def _background(self) -> None:
        try:  # this thread, and the compiler it starts, yield the CPU to the threads answering requests
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except (AttributeError, OSError):  # not Linux, or not permitted: build at normal priority
            pass
        with self._lock:
            if self._module is None and self._failure is None:
                self._run(announce=False)
        if self._failure is not None:
            self._warn()

    def _run(self, announce: bool) -> None:
        """Build or load (holding the lock); sets ``_module`` or ``_failure``."""
        start = time.perf_counter()
        cxx = os.environ.get("CXX", "c++")
        if shutil.which(cxx) is None:
            self._failure = f"no C++ compiler ({cxx!r}) on PATH"
            return
        try:
            self._folder = folder = self.folder()
            if announce and not self.cached(folder):
                _say(f"dgmn: compiling the fused CPU kernel (first use on this machine, {BUILD_SECONDS}; cached in {folder})…")
            self._module = (self._build or _load)(self.name, folder)
        except Exception as exc:  # the compiler is there but the build failed
            text = str(exc).strip()
            self._failure = f"building the C++ kernel failed: {text.splitlines()[-1] if text else type(exc).__name__}"
        self._seconds = time.perf_counter() - start

    def _warn(self) -> None:
        if self._warned:
            return
        self._warned = True
        warnings.warn(f"dgmn: {self.what} is unavailable ({self._failure}); {self.fallback}. {NO_KERNEL_FIX}",
                      RuntimeWarning, stacklevel=4)


def _flags() -> list[str]:
    flags = ["-O3", "-fopenmp"]
    if os.environ.get("DGMN_PORTABLE_BUILD", "") != "1":
        flags.append("-march=native")
    return flags


def build_source(source: Path, name: str, folder: Path):
    """Compile ``source`` as the extension ``name`` in ``folder`` (or load it from there when it is up to date).

    The source is copied into ``folder`` first, so the compile command is the same wherever the package lives: two
    copies of the project (a clone, an installed wheel, a test's scratch copy) share one cached build instead of
    rebuilding it for each other. Builds of one folder take turns under an ``flock`` (released by the system when a
    process dies); holding it, a ``lock`` file of PyTorch's left in the folder can only come from a process that was
    killed while building, and is removed — otherwise every later process would wait for it forever."""
    from torch.utils.cpp_extension import load

    with open(folder / ".dgmn-build.lock", "w") as turn:
        try:
            import fcntl

            fcntl.flock(turn, fcntl.LOCK_EX)  # waits while another live process builds here
        except ImportError:  # not POSIX: PyTorch's own lock file alone
            pass
        else:
            (folder / "lock").unlink(missing_ok=True)  # a killed build's; no live process is building here
        copy = folder / source.name
        code = source.read_bytes()
        if not copy.is_file() or copy.read_bytes() != code:  # rewritten only when it differs: no needless rebuild
            tmp = copy.with_suffix(".tmp")
            tmp.write_bytes(code)
            tmp.replace(copy)
        return load(name=name, sources=[str(copy)], extra_cflags=_flags(), extra_ldflags=["-fopenmp"],
                    build_directory=str(folder), verbose=False)


def _load(name: str, folder: Path):
    """Compile (or load) the dynamic-aggregation kernel (:func:`build_source`)."""
    return build_source(SOURCE, name, folder)


def extension_name() -> str:
    """``dgmn_dynamic_aggregate_cpu_<hash>``: the hash of the source and the flags, so a changed kernel (another
    version of the project) builds beside the cached one instead of over it."""
    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(_flags()).encode()).hexdigest()[:10]
    return f"dgmn_dynamic_aggregate_cpu_{digest}"


CPU_KERNEL = KernelBuild(extension_name())
