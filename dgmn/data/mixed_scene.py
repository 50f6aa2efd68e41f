"""Demonstration scenes: a mixed ContextScenes scene (buildings over both water and road) for any seed, with its
ground truth, so a teacher can bring the same scene back by its seed — the app's **New scene** and
``python -m dgmn.data scene --seed S`` give the same image for the same seed."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .context_scenes import BOATHOUSE, HOUSE, ContextScenes

SCENE_SIZE = (128, 256)
MAX_SEED = 2**31 - 1


@dataclass
class DemoScene:
    seed: int
    image: np.ndarray  # (128, 256, 3) uint8
    truth: np.ndarray  # (128, 256) uint8 class indices


def mixed_scene(seed: int, tries: int = 200) -> DemoScene:
    """The first scene of ContextScenes(seed) that has a house (over road) and a boathouse (over water)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(f"a scene seed is a whole number from 0 to {MAX_SEED}, got {seed!r}")
    ds = ContextScenes(seed=int(seed), size=SCENE_SIZE)
    for i in range(tries):
        sc = ds.scene(i)
        if {HOUSE, BOATHOUSE} <= {b[0] for b in sc.buildings}:
            return DemoScene(int(seed), sc.image, sc.label)
    raise ValueError(f"seed {seed} gave no mixed scene in {tries} tries; try another seed")
