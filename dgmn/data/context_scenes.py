"""ContextScenes: a procedural segmentation dataset whose ambiguous classes need long-range, position-aware context.

It reproduces the paper's motivating example (Fig. 1: to recognise a boathouse you must see the water
next to it). Every scene is generated on the fly from ``(seed, index)``: deterministic, never stored.

Rules (sizes for the default 128×128; every length scales with the image height):

* **Layout.** Sky on top (to 15–30% of the height), a grass field, and a *ground band* along the bottom
  (its top at 70–78% of the height, at least 28 px tall). The ground band is cut into 2–4 vertical
  *strips*, each all water or all road. In 85% of scenes both materials are present (*mixed* scenes).
* **Buildings.** Over most strips stands one building (14–26 px wide and tall) whose footprint lies
  inside that strip's columns, its base 22–30 px above the ground band, with grass in between.
  A building is a **boathouse** if the strip directly below it is water and a **house** if it is road.
  Houses and boathouses come from one sprite distribution (body, roof, windows and door colours, sizes),
  so only the strip below tells them apart; and since the gap is more than 20 px, a 41×41 window
  around almost every building pixel contains no water and no road. The cue is spatially specific: a
  mixed scene holds a house over road and a boathouse over water side by side, so an image-level
  summary ("is there water?") cannot label both; the positions are random and nothing ties a building
  to an image border.
* **Vehicles.** 1–3 vehicles inside the ground band, each within one strip: a **boat** on water, a **car**
  on road, both from one sprite distribution. Their surroundings are local, so they are easier.
* **Appearance.** Per-scene colour jitter of every material, textured grass (noise and tufts), water
  (waves) and road (noise and lane dashes), sky gradients, random sprite colours, global brightness and
  contrast jitter and pixel noise, so scenes cannot be memorised.

Classes: 0 sky, 1 water, 2 grass, 3 road, 4 house, 5 boathouse, 6 car, 7 boat. The ambiguous pairs are
(house, boathouse) — decided by context outside a 40-pixel window — and (car, boat) — decided by the
surface right under the vehicle. ``scene(i)`` also returns whether the scene is mixed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

CLASSES = ("sky", "water", "grass", "road", "house", "boathouse", "car", "boat")
# Colour-blind-safe palette (Okabe–Ito and Tol's muted scheme), one RGB triple per class.
PALETTE = (
    (86, 180, 233),  # sky: sky blue
    (0, 114, 178),  # water: blue
    (0, 158, 115),  # grass: bluish green
    (153, 153, 153),  # road: grey
    (230, 159, 0),  # house: orange
    (204, 121, 167),  # boathouse: reddish purple
    (240, 228, 66),  # car: yellow
    (213, 94, 0),  # boat: vermillion
)
AMBIGUOUS_PAIRS = (("house", "boathouse"), ("car", "boat"))
# The surface that decides each class of an ambiguous pair: where a context module must look to tell them apart.
DECIDING_SURFACE = {"house": "road", "boathouse": "water", "car": "road", "boat": "water"}
SKY, WATER, GRASS, ROAD, HOUSE, BOATHOUSE, CAR, BOAT = range(8)
# Per-channel mean and std of the generated images (measured on 2000 training scenes, seed 0).
MEAN = (0.47, 0.53, 0.46)
STD = (0.20, 0.17, 0.22)


@dataclass
class Scene:
    image: np.ndarray  # (H, W, 3) uint8
    label: np.ndarray  # (H, W) uint8 class indices
    mixed: bool  # both water and road strips present
    buildings: list  # (class, y0, y1, x0, x1) of every building


def _jitter(rng, rgb, amount=25):
    return np.clip(np.asarray(rgb, dtype=np.float32) + rng.uniform(-amount, amount, 3), 0, 255)


def _noise(rng, h, w, scale, amp):
    """Smooth value noise: a coarse random grid, bilinearly upsampled to (h, w)."""
    gh, gw = max(2, h // scale + 2), max(2, w // scale + 2)
    g = rng.standard_normal((gh, gw)).astype(np.float32)
    ys = np.linspace(0, gh - 1.001, h, dtype=np.float32)
    xs = np.linspace(0, gw - 1.001, w, dtype=np.float32)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    a = g[y0][:, x0] * (1 - fx) + g[y0][:, x0 + 1] * fx
    b = g[y0 + 1][:, x0] * (1 - fx) + g[y0 + 1][:, x0 + 1] * fx
    return (a * (1 - fy) + b * fy) * amp


def _sprite_building(rng, h, w):
    """A building of size (h, w): RGB float image and a boolean mask (roof + body). Class-agnostic."""
    img = np.zeros((h, w, 3), np.float32)
    mask = np.zeros((h, w), bool)
    roof_h = int(rng.integers(max(2, h // 5), max(3, h // 2)))
    body = _jitter(rng, rng.choice([(200, 80, 60), (220, 200, 150), (150, 110, 80), (230, 230, 220), (120, 60, 50)]), 30)
    roof = _jitter(rng, rng.choice([(120, 40, 30), (70, 70, 80), (160, 60, 40), (90, 60, 40)]), 25)
    img[roof_h:] = body
    mask[roof_h:] = True
    # triangular or flat roof
    if rng.random() < 0.7:
        for r in range(roof_h):
            half = (w / 2) * (r + 1) / roof_h
            c0, c1 = int(round(w / 2 - half)), int(round(w / 2 + half))
            img[r, c0:c1] = roof
            mask[r, c0:c1] = True
    else:
        img[roof_h // 2 : roof_h] = roof
        mask[roof_h // 2 : roof_h] = True
    # windows and a door
    win = _jitter(rng, rng.choice([(60, 90, 140), (240, 230, 150), (40, 40, 50)]), 20)
    bh, ww = h - roof_h, max(2, w // 6)
    for wy in range(roof_h + 2, roof_h + bh - 4, max(4, bh // 3)):
        for wx in range(2, w - ww - 1, max(ww + 2, w // 3)):
            if rng.random() < 0.8:
                img[wy : wy + max(2, ww - 1), wx : wx + ww] = win
    dw = max(2, w // 5)
    dx = int(rng.integers(1, max(2, w - dw - 1)))
    img[h - max(3, bh // 2) :, dx : dx + dw] = _jitter(rng, (70, 45, 30), 20)
    return img, mask


def _sprite_vehicle(rng, h, w):
    """A vehicle of size (h, w): hull plus cabin. Class-agnostic (used for both cars and boats)."""
    img = np.zeros((h, w, 3), np.float32)
    mask = np.zeros((h, w), bool)
    hull = _jitter(rng, rng.choice([(200, 30, 30), (240, 240, 240), (30, 30, 30), (230, 180, 20), (40, 80, 160)]), 30)
    cab_h = max(1, h // 2)
    img[cab_h:] = hull
    mask[cab_h:] = True
    c0, c1 = w // 4, w - w // 4
    img[:cab_h, c0:c1] = _jitter(rng, (150, 190, 220), 25)
    mask[:cab_h, c0:c1] = True
    mask[cab_h:, 0] = mask[cab_h:, -1] = rng.random() < 0.5  # rounded or square ends
    return img, mask


class ContextScenes(torch.utils.data.Dataset):
    """Deterministic procedural scenes: ``dataset[i]`` → (image float tensor (3, H, W) normalised, label long (H, W)).

    Args:
        seed: the split's seed; every index gives the same scene for the same seed.
        length: the number of scenes (any index below it works; scenes are generated on demand).
        size: (H, W) or an int; geometry scales with H.
        normalize: subtract ``MEAN`` and divide by ``STD``.
    """

    classes = CLASSES
    palette = PALETTE
    mean, std = MEAN, STD
    ambiguous_pairs, deciding_surface = AMBIGUOUS_PAIRS, DECIDING_SURFACE

    def __init__(self, seed: int = 0, length: int = 1000, size=128, normalize: bool = True):
        self.seed, self.length = int(seed), int(length)
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        if min(self.size) < 32:
            raise ValueError(f"ContextScenes: size must be at least 32×32, got {self.size}")
        self.normalize = normalize

    def __len__(self) -> int:
        return self.length

    def scene(self, index: int) -> Scene:
        """The raw scene: uint8 image, uint8 label map, mixed flag and building boxes."""
        rng = np.random.default_rng([self.seed, int(index)])
        H, W = self.size
        u = H / 128.0
        img = np.zeros((H, W, 3), np.float32)
        lab = np.full((H, W), GRASS, np.uint8)

        y_sky = int(H * rng.uniform(0.15, 0.30))
        y_band = min(int(H * rng.uniform(0.70, 0.78)), H - int(28 * u))
        # sky: vertical gradient
        top, bottom = _jitter(rng, (90, 150, 230), 30), _jitter(rng, (180, 210, 240), 25)
        t = np.linspace(0, 1, y_sky, dtype=np.float32)[:, None, None]
        img[:y_sky] = top * (1 - t) + bottom * t
        lab[:y_sky] = SKY
        # grass
        g = _jitter(rng, (70, 140, 60), 30)
        gh = y_band - y_sky
        img[y_sky:y_band] = g + _noise(rng, gh, W, max(2, int(6 * u)), 14)[..., None]
        tufts = rng.random((gh, W)) < 0.03
        img[y_sky:y_band][tufts] *= 0.7
        # ground strips: 2–4, each at least 28 px wide, all water or all road
        min_w = int(28 * u)
        n = min(int(rng.integers(2, 5)), W // min_w)
        widths = min_w + np.floor(rng.dirichlet(np.ones(n)) * (W - n * min_w)).astype(int)
        widths[-1] += W - widths.sum()
        edges = np.concatenate([[0], np.cumsum(widths)]).tolist()
        kinds = rng.integers(0, 2, n)
        if rng.random() < 0.85:  # mixed: both materials
            if kinds.min() == kinds.max():
                kinds[rng.integers(0, n)] = 1 - kinds[0]
        else:
            kinds[:] = kinds[0]
        mixed = bool(kinds.min() != kinds.max())
        bh = H - y_band
        water = _jitter(rng, (40, 90, 170), 25)
        road = _jitter(rng, (105, 105, 110), 20)
        for s in range(n):
            x0, x1 = edges[s], edges[s + 1]
            if kinds[s] == 1:  # water with waves
                yy = np.arange(bh, dtype=np.float32)[:, None]
                xx = np.arange(x1 - x0, dtype=np.float32)[None, :]
                waves = np.sin(xx * rng.uniform(0.3, 0.7) / u + yy * rng.uniform(0.8, 1.6) / u + rng.uniform(0, 6.3)) * 10
                img[y_band:, x0:x1] = water + (waves + _noise(rng, bh, x1 - x0, max(2, int(5 * u)), 8))[..., None]
                lab[y_band:, x0:x1] = WATER
            else:  # road with noise and a dashed lane
                img[y_band:, x0:x1] = road + _noise(rng, bh, x1 - x0, max(2, int(3 * u)), 10)[..., None]
                ly = y_band + bh // 2
                for dx in range(x0 + 2, x1 - 4, max(6, int(10 * u))):
                    img[ly : ly + max(1, int(2 * u)), dx : dx + max(2, int(5 * u))] = (230, 230, 200)
                lab[y_band:, x0:x1] = ROAD
        # buildings, one per strip with probability 0.85, footprint inside the strip's columns
        buildings = []
        for s in range(n):
            if rng.random() > 0.85:
                continue
            x0, x1 = edges[s], edges[s + 1]
            bw = int(rng.integers(int(14 * u), int(26 * u) + 1))
            bw = min(bw, x1 - x0 - 2)
            bhh = int(rng.integers(int(14 * u), int(26 * u) + 1))
            gap = int(rng.integers(int(22 * u), int(30 * u) + 1))
            base = y_band - gap
            top_y = base - bhh
            if top_y < y_sky - bhh // 2 or bw < int(10 * u):
                continue
            bx = int(rng.integers(x0 + 1, x1 - bw))
            spr, m = _sprite_building(rng, bhh, bw)
            ty0 = max(top_y, 0)
            region = img[ty0:base, bx : bx + bw]
            region[m[ty0 - top_y :]] = spr[ty0 - top_y :][m[ty0 - top_y :]]
            cls = BOATHOUSE if kinds[s] == 1 else HOUSE
            lab[ty0:base, bx : bx + bw][m[ty0 - top_y :]] = cls
            buildings.append((cls, ty0, base, bx, bx + bw))
        # vehicles inside the band, within one strip
        for _ in range(int(rng.integers(1, 4))):
            s = int(rng.integers(0, n))
            x0, x1 = edges[s], edges[s + 1]
            vw = min(int(rng.integers(int(9 * u), int(15 * u) + 1)), x1 - x0 - 2)
            vh = int(rng.integers(int(5 * u), int(8 * u) + 1))
            if vw < 4:
                continue
            vx = int(rng.integers(x0 + 1, x1 - vw))
            vy = int(rng.integers(y_band + 2, H - vh - 1))
            spr, m = _sprite_vehicle(rng, vh, vw)
            img[vy : vy + vh, vx : vx + vw][m] = spr[m]
            lab[vy : vy + vh, vx : vx + vw][m] = BOAT if kinds[s] == 1 else CAR
        # global photometric jitter and noise
        img = img * rng.uniform(0.8, 1.2) + rng.uniform(-20, 20)
        img = img + rng.normal(0, rng.uniform(2, 8), img.shape).astype(np.float32)
        return Scene(np.clip(img, 0, 255).astype(np.uint8), lab, mixed, buildings)

    def raw(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(image (H, W, 3) uint8, label (H, W) uint8) of scene ``index``."""
        sc = self.scene(index)
        return sc.image, sc.label

    def __getitem__(self, index: int):
        if not 0 <= index < self.length:
            raise IndexError(f"ContextScenes index {index} out of range [0, {self.length})")
        sc = self.scene(index)
        return to_tensor(sc.image, self.normalize), torch.from_numpy(sc.label.astype(np.int64))


def to_tensor(image: np.ndarray, normalize: bool = True, mean=MEAN, std=STD) -> torch.Tensor:
    """(H, W, 3) uint8 → (3, H, W) float, scaled to [0, 1] and normalised with ``mean``/``std`` (per channel;
    default this dataset's ``MEAN``/``STD``; a model card's ``normalization`` for a trained model)."""
    x = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float() / 255.0  # a copy: inputs may be read-only
    if normalize:
        x = (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    return x
