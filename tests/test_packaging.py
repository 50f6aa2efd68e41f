"""The wheel: only `dgmn` at the top, the shipped checkpoints inside, the commands declared; installed into a
scratch environment, every command answers --help and `dgmn.load_model("dgmn-full")` works from another folder."""
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ["dgmn-explorer", "dgmn-train", "dgmn-evaluate", "dgmn-inspect", "dgmn-export", "dgmn-convert"]
SHIPPED = sorted(p.relative_to(ROOT / "checkpoints").as_posix() for p in (ROOT / "checkpoints").rglob("*")
                 if p.suffix in (".json", ".safetensors"))  # the models and their training timelines (NAME.timeline/)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """Build from a copy of the source (the tree stays clean), without network (no build isolation)."""
    src = tmp_path_factory.mktemp("src") / "dgmn-src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", "__pycache__", "build", "*.egg-info", "runs", "tests", ".pytest_cache"))
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)],
                   check=True, capture_output=True, timeout=300)
    return next(out.glob("dgmn-*.whl"))


def test_wheel_contents(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"dgmn", "dgmn-0.1.0.dist-info"}  # no top-level viz, app or tests
    assert sorted(n.removeprefix("dgmn/checkpoints/") for n in names if n.startswith("dgmn/checkpoints/")) == SHIPPED
    assert "dgmn/ops/csrc/dynamic_aggregate.cpp" in names  # the CPU kernel compiles from its source on first use
    assert {"dgmn/app/__main__.py", "dgmn/viz/nodes.py", "dgmn/inspect/records.py"} <= set(names)
    size = sum(i.file_size for i in zipfile.ZipFile(wheel).infolist() if i.filename.startswith("dgmn/checkpoints/"))
    assert size < 25e6, f"checkpoints and timelines take {size / 1e6:.1f} MB in the wheel"
    entry = zipfile.ZipFile(wheel).read("dgmn-0.1.0.dist-info/entry_points.txt").decode()
    for cmd in COMMANDS:
        assert f"{cmd} = " in entry


def test_installed_commands_and_checkpoints(wheel, tmp_path):
    """A scratch venv that sees this environment's packages (torch, gradio) and gets the wheel itself."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    bin_ = venv / ("Scripts" if os.name == "nt" else "bin")
    subprocess.run([str(bin_ / "python"), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, capture_output=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DGMN_CHECKPOINTS")}
    for cmd in COMMANDS:
        r = subprocess.run([str(bin_ / cmd), "--help"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and "usage:" in r.stdout, f"{cmd} --help: {r.stderr[-500:]}"
    code = ("import dgmn, importlib.util as u; m = dgmn.load_model('dgmn-full'); "
            "print(dgmn.__file__); print(m.card['name'], m.config.context, dgmn.models.has_timeline('dgmn-full')); "
            "print(u.find_spec('viz'), u.find_spec('app'))")
    r = subprocess.run([str(bin_ / "python"), "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    where, model, missing = r.stdout.strip().splitlines()
    assert str(venv) in where and model == "dgmn-full dgmn True" and missing == "None None"
