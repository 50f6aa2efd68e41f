"""README.md's code blocks run as written.

Every ```bash and ```python block of README.md runs, in the order of the file, in a scratch copy of the repository
(the tracked files; one copy for all blocks, so a block may use what an earlier one wrote, as a reader's shell
would). A block is left out only where README marks it, on the line before its fence, with
``<!-- readme-test: skip — REASON -->``; :data:`SKIPPED` names every such block, so leaving one out is a decision
this file shows. A block marked ``<!-- readme-test: app -->`` talks to the app: it runs while ``python app.py`` serves
the scratch copy, on a free port that replaces README's ``127.0.0.1:7860``.

Why our own runner and not pytest-codeblocks or sybil: both run Python blocks in the test process (ours must run in
a scratch copy, like a reader in a fresh clone, with the app serving for one block), neither runs shell blocks with a
shell's ``set -e`` semantics, and neither lists its skipped blocks by name; the runner is the few functions below.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MARK = re.compile(r"<!--\s*readme-test:\s*(skip|app)\b\s*(?:[—-]+\s*(.*?))?\s*-->")
BLOCK_TIMEOUT_S = 900

# Every block README leaves out, by name (the heading it sits under and its number there), with the reason.
SKIPPED = {
    "dgmn-explorer#1": "starts the app server, which runs until stopped (the app tests and the 'app' blocks cover it)",
    "dgmn-explorer#2": "is the test suite itself",
    "the-app#4": "dgmn.explore serves the app until stopped (tests/app/test_explore.py runs the same call with launch=False)",
    "models-training-evaluation-export#2": "long-running: trains models (10–20 min each on 2 cores)",
    "reproducing-the-shipped-checkpoints#1": "long-running: trains three models (30–45 min)",
    "the-tutorial-notebook#1": "starts Jupyter Lab, an interactive server",
    "the-tutorial-notebook#2": "runs a test of this suite (tests/test_tutorial.py) a second time",
    "install-as-a-package#1": "installs the package into the environment (tests/test_packaging.py installs the wheel in a scratch venv)",
}


@dataclass
class Block:
    name: str  # "<heading slug>#<n>": the n-th block under that heading
    language: str
    code: str
    line: int  # of the opening fence
    mark: str | None  # "skip", "app" or None
    reason: str


def slug(heading: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-")


def readme_blocks(text: str) -> list[Block]:
    """The fenced bash/python blocks of ``text`` with their names and marks."""
    blocks, heading, counts = [], "top", {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = slug(line.lstrip("#"))
        fence = re.match(r"^```(\w+)\s*$", line)
        if fence:
            j = next(k for k in range(i + 1, len(lines)) if lines[k].startswith("```"))
            if fence.group(1) in ("bash", "python"):
                counts[heading] = counts.get(heading, 0) + 1
                mark = MARK.search(lines[i - 1]) if i else None
                blocks.append(Block(f"{heading}#{counts[heading]}", fence.group(1), "\n".join(lines[i + 1:j]) + "\n",
                                    i + 1, mark.group(1) if mark else None, (mark.group(2) or "") if mark else ""))
            i = j
        i += 1
    return blocks


BLOCKS = readme_blocks(README.read_text())


def scratch_copy(dest: Path) -> Path:
    """The repository's files as a fresh clone has them (tracked, and new ones not ignored) under ``dest``."""
    try:
        files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
        files = [f.decode() for f in files if f]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: everything but build output
        files = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file() and ".git" not in p.parts
                 and "__pycache__" not in p.parts]
    for f in files:
        if (ROOT / f).is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, dest / f)
    return dest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return scratch_copy(tmp_path_factory.mktemp("readme"))


def block_env(scratch: Path) -> dict:
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", PYTHONPATH=str(scratch),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("DGMN_CHECKPOINTS", None)
    return env


def run_block(block: Block, cwd: Path, env: dict, code: str | None = None) -> subprocess.CompletedProcess:
    code = block.code if code is None else code
    cmd = ["bash", "-euo", "pipefail", "-c", code] if block.language == "bash" else [sys.executable, "-c", code]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)


class App:
    """``python app.py`` serving the scratch copy on a free port, for the blocks marked ``app``."""

    def __init__(self, cwd: Path, env: dict):
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, "app.py", "--port", str(self.port)], cwd=cwd, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + 180
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the app exited: {self.proc.stdout.read()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.5)
        self.close()
        raise RuntimeError("the app did not start within 180 s")

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def test_every_skipped_block_is_listed_here_and_nothing_else():
    marked = {b.name: b.reason for b in BLOCKS if b.mark == "skip"}
    assert set(marked) == set(SKIPPED), f"README skips {sorted(marked)}; SKIPPED lists {sorted(SKIPPED)}"
    assert all(marked.values()), "every skip marker gives its reason"
    assert len({b.name for b in BLOCKS}) == len(BLOCKS)


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.mark != "skip"], ids=lambda b: b.name)
def test_readme_block_runs(block, scratch):
    env = block_env(scratch)
    if block.mark == "app":
        app = App(scratch, env)
        try:
            res = run_block(block, scratch, env, block.code.replace("127.0.0.1:7860", f"127.0.0.1:{app.port}"))
        finally:
            app.close()
    else:
        res = run_block(block, scratch, env)
    assert res.returncode == 0, (f"README.md line {block.line} ({block.name}) failed with status {res.returncode}:\n"
                                 f"{block.code}\n--- stdout ---\n{res.stdout[-3000:]}\n--- stderr ---\n{res.stderr[-3000:]}")
