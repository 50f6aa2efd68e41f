"""Segmentation metrics: confusion matrix, per-class IoU and mIoU (in percent), mixed-scene breakdown."""
from __future__ import annotations

import math

import torch

IGNORE = 255


class ConfusionMatrix:
    """counts[t, p]: pixels of true class t predicted as p (pixels labelled 255 are ignored)."""

    def __init__(self, num_classes: int):
        self.n = num_classes
        self.counts = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        pred, target = pred.reshape(-1).cpu(), target.reshape(-1).cpu()
        keep = (target != IGNORE) & (target >= 0) & (target < self.n)
        idx = target[keep] * self.n + pred[keep]
        self.counts += torch.bincount(idx, minlength=self.n * self.n).view(self.n, self.n)

    def iou(self) -> list[float]:
        """Per-class IoU in percent; NaN for a class that neither occurs nor is predicted."""
        c = self.counts.double()
        tp = c.diag()
        denom = c.sum(0) + c.sum(1) - tp
        return [float(100 * tp[i] / denom[i]) if denom[i] > 0 else math.nan for i in range(self.n)]

    def miou(self, classes: list[int] | None = None) -> float:
        vals = [v for i, v in enumerate(self.iou()) if (classes is None or i in classes) and not math.isnan(v)]
        return sum(vals) / len(vals) if vals else math.nan

    def pixel_accuracy(self) -> float:
        total = int(self.counts.sum())
        return 100 * float(self.counts.diag().sum()) / total if total else math.nan


@torch.no_grad()
def evaluate_model(model: torch.nn.Module, dataset, batch_size: int = 16, device="cpu", progress: bool = False,
                   on_batch=None) -> dict:
    """mIoU, per-class IoU, pixel accuracy and confusion matrix of ``model`` on ``dataset``.

    For ContextScenes the same figures are also reported on mixed scenes only (a house over road and a
    boathouse over water in one image), plus the mean IoU of every ambiguous pair.
    ``on_batch(images (B, 3, H, W), labels (B, H, W), logits (B, classes, H, W))``, if given, is called right
    after every forward (e.g. to read what hooks recorded during it).
    """
    from ..data.context_scenes import AMBIGUOUS_PAIRS, ContextScenes

    classes = list(dataset.classes)
    n = len(classes)
    total, mixed = ConfusionMatrix(n), ConfusionMatrix(n)
    is_cs = isinstance(dataset, ContextScenes)
    n_mixed = 0
    model.eval()
    indices = range(len(dataset))
    it = range(0, len(dataset), batch_size)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="evaluate", unit="batch")
    for start in it:
        batch = [_item(dataset, i, is_cs) for i in indices[start : start + batch_size]]
        x = torch.stack([b[0] for b in batch]).to(device)
        y = torch.stack([b[1] for b in batch])
        if x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        logits = model(x)
        if on_batch is not None:
            on_batch(x, y, logits)
        pred = logits.argmax(1).cpu()
        total.update(pred, y)
        for j, b in enumerate(batch):
            if b[2]:
                mixed.update(pred[j], y[j])
                n_mixed += 1
    iou = total.iou()
    out = {
        "images": len(dataset),
        "miou": total.miou(),
        "pixel_accuracy": total.pixel_accuracy(),
        "iou": {c: iou[i] for i, c in enumerate(classes)},
        "confusion": total.counts.tolist(),
    }
    if is_cs:
        m_iou = mixed.iou()
        out["pairs"] = {f"{a}/{b}": total.miou([classes.index(a), classes.index(b)]) for a, b in AMBIGUOUS_PAIRS}
        out["mixed"] = {
            "images": n_mixed,
            "miou": mixed.miou(),
            "iou": {c: m_iou[i] for i, c in enumerate(classes)},
            "pairs": {f"{a}/{b}": mixed.miou([classes.index(a), classes.index(b)]) for a, b in AMBIGUOUS_PAIRS},
        }
    return out


def _item(dataset, i: int, is_cs: bool):
    """(image tensor, label tensor, mixed flag) — a ContextScenes scene is generated once."""
    if is_cs:
        from ..data.context_scenes import to_tensor

        sc = dataset.scene(i)
        return to_tensor(sc.image, dataset.normalize), torch.from_numpy(sc.label.astype("int64")), sc.mixed
    x, y = dataset[i]
    return x, y, False
