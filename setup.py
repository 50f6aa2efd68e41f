"""Packaging: the wheel installs one import name, ``dgmn``. The repository's ``checkpoints/`` folder becomes the
package data ``dgmn/checkpoints`` (the shipped models, about 3.5 MB, and the training timelines of two of them), so ``dgmn.load_model("dgmn-full")`` works
after ``pip install .``; the top-level ``viz/`` and ``app.py`` of a clone are shims over ``dgmn.viz`` and
``dgmn.app`` and are not installed. Metadata and commands are in pyproject.toml."""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["dgmn", "dgmn.*"]) + ["dgmn.checkpoints"],
    package_dir={"dgmn.checkpoints": "checkpoints"},
    package_data={"dgmn": ["ops/csrc/*.cpp"], "dgmn.checkpoints": ["*.json", "*.safetensors", "*.timeline/*.json", "*.timeline/*.safetensors"]},
    include_package_data=False,
)
