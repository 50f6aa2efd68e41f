"""An endless, deterministic stream of augmented training samples, resumable at any sample number."""
from __future__ import annotations

import numpy as np
import torch

from .augment import random_scale_crop_flip


class TrainStream(torch.utils.data.IterableDataset):
    """Sample n (n = start, start+1, …) is scene ``rng(seed, n) % len(dataset)`` of ``dataset.raw``, augmented
    with ``rng(seed, n)``; processes of a torchrun job and DataLoader workers take interleaved numbers."""

    def __init__(self, dataset, seed: int, crop, scale=(0.75, 1.25), flip=True, start: int = 0, rank: int = 0, world: int = 1):
        self.dataset, self.seed, self.crop = dataset, int(seed), tuple(crop)
        self.scale, self.flip, self.start, self.rank, self.world = scale, flip, int(start), rank, world

    def sample(self, n: int):
        rng = np.random.default_rng([self.seed, n])
        index = n if len(self.dataset) > n and hasattr(self.dataset, "scene") else int(rng.integers(len(self.dataset)))
        image, label = self.dataset.raw(index)
        image, label = random_scale_crop_flip(image, label, rng, self.crop, self.scale, self.flip)
        x = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
        x = (x - torch.tensor(self.dataset.mean).view(3, 1, 1)) / torch.tensor(self.dataset.std).view(3, 1, 1)
        return x, torch.from_numpy(label.astype(np.int64))

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        n = self.start + self.rank * nw + wid
        step = self.world * nw
        while True:
            yield self.sample(n)
            n += step
