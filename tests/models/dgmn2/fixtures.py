"""The DGMN2 fixtures (tests/fixtures/dgmn2): made by running DGMN2's original code on a CPU with random
reduced-width weights — mmseg checkpoints ``<head>.pth``, the original's outputs ``<head>.expected.safetensors``,
one model's attention internals ``fpn.attention.safetensors`` and ``manifest.json``."""
import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "dgmn2"
HEADS = ("fpn", "setr_naive", "setr_pup", "setr_mla")
REASON = ("DGMN2 fixtures absent: tests/fixtures/dgmn2/ (made by running the original DGMN2 code on random "
          "reduced-width weights) is not in this checkout")


def fixture(name: str) -> Path:
    path = FIXTURES / name
    if not path.is_file():
        pytest.skip(f"{REASON} ({name} missing)")
    return path


def manifest() -> dict:
    return json.loads(fixture("manifest.json").read_text())
