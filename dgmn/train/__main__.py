"""Train a segmenter: ``python -m dgmn.train --config configs/<name>.yaml [--out DIR] [--resume] [--set key=value ...]``.

Fixed seeds, the paper's poly learning-rate schedule, random scale/crop/flip, tqdm progress with the loss
and the running training mIoU, a checkpoint every ``train.checkpoint_every`` steps (``DIR/last.*``), resume
from it with ``--resume``, and a final checkpoint ``DIR/<name>.safetensors`` + ``DIR/<name>.json`` with its
model card (metrics on the held-out split included). Multi-GPU / multi-node with ``torchrun``
(DistributedDataParallel; SyncBatchNorm on CUDA; gloo on CPU); ``train.batch_size`` is per process.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
import yaml

from ..data import build_dataset, eval_split
from ..data.augment import IGNORE
from ..data.stream import TrainStream
from ..evaluate.metrics import ConfusionMatrix, evaluate_model
from ..models import SegmenterConfig, build_segmenter, save_model
from ..modules import count_macs
from .timeline import TimelineWriter, timeline_steps

VALIDATION_SEED = 2000  # ContextScenes seed of the validation split (seed selection and timelines); never the held-out one

DEFAULTS = {
    "name": "model",
    "model": {"backbone": "small", "backbone_cfg": {}, "context": "none", "channels": 64, "context_cfg": {}},
    "data": {"dataset": "context-scenes", "root": None, "train_seed": 1, "size": 128, "crop": 128, "scale": [0.75, 1.25], "flip": True},
    "eval": {"seed": 1000, "images": 500, "batch_size": 16},
    "train": {
        "steps": 4000, "batch_size": 16, "optimizer": "adamw", "lr": 0.003, "momentum": 0.9, "weight_decay": 1e-4,
        "poly_power": 0.9, "seed": 0, "checkpoint_every": 500, "log_every": 20, "threads": 0, "workers": 1,
        "timeline_steps": "log", "timeline_images": 32,
    },
}


def merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(path: str | Path, overrides: list[str] = ()) -> dict:
    try:
        cfg = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SystemExit(f"dgmn.train: cannot read config {path}: {exc}")
    unknown = set(cfg) - set(DEFAULTS)
    if unknown:
        raise SystemExit(f"dgmn.train: unknown config sections {sorted(unknown)} in {path}; known: {sorted(DEFAULTS)}")
    cfg = merge(DEFAULTS, cfg)
    for item in overrides:
        key, _, value = item.partition("=")
        if not _:
            raise SystemExit(f"dgmn.train: --set takes key=value (e.g. train.steps=100), got {item!r}")
        node = cfg
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.safe_load(value)
    return cfg


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                              cwd=Path(__file__).resolve().parents[2]).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def poly_lr(base: float, step: int, steps: int, power: float) -> float:
    """The paper's schedule: lr = base · (1 − step/steps)^power."""
    return base * (1 - step / steps) ** power


def make_optimizer(model: torch.nn.Module, t: dict) -> torch.optim.Optimizer:
    if t["optimizer"] == "sgd":
        return torch.optim.SGD(model.parameters(), lr=t["lr"], momentum=t["momentum"], weight_decay=t["weight_decay"])
    if t["optimizer"] == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=t["lr"], weight_decay=t["weight_decay"])
    raise SystemExit(f"dgmn.train: train.optimizer must be sgd or adamw, got {t['optimizer']!r}")


def save_optimizer(opt: torch.optim.Optimizer, path: Path, step: int) -> None:
    from safetensors.torch import save_file

    tensors = {}
    for idx, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            tensors[f"{idx}.{k}"] = (v if torch.is_tensor(v) else torch.tensor(v)).detach().cpu().contiguous()
    save_file(tensors, str(path), metadata={"step": str(step)})


def load_optimizer(opt: torch.optim.Optimizer, path: Path) -> int:
    from safetensors import safe_open

    sd = opt.state_dict()
    state: dict = {}
    with safe_open(str(path), "pt") as f:
        step = int(f.metadata()["step"])
        for key in f.keys():
            idx, name = key.split(".", 1)
            state.setdefault(int(idx), {})[name] = f.get_tensor(key)
    sd["state"] = state
    opt.load_state_dict(sd)
    return step


def card_for(cfg: dict, dataset, model: torch.nn.Module, macs: bool = True, **extra) -> dict:
    m, d, e = cfg["model"], cfg["data"], cfg["eval"]
    size = (d["size"], d["size"]) if isinstance(d["size"], int) else tuple(d["size"])
    return {
        "name": cfg["name"],
        "architecture": SegmenterConfig.from_model_section(m, len(dataset.classes)).to_architecture(),
        "classes": list(dataset.classes),
        "palette": [list(c) for c in dataset.palette],
        "normalization": {"mean": list(dataset.mean), "std": list(dataset.std)},
        "dataset": {"name": d["dataset"], "train_seed": d["train_seed"], "size": list(size), "root": d.get("root")},
        "eval_split": {"dataset": d["dataset"], "seed": e["seed"], "images": e["images"], "size": list(size)},
        "params": sum(p.numel() for p in model.parameters()),
        "macs": count_macs(model, (1, 3, *size)) if macs else None,
        "macs_input": [1, 3, *size],
        **extra,
    }


def train(cfg: dict, out: Path, resume: bool = False, command: str = "") -> dict:
    t = cfg["train"]
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")
    if t["threads"]:
        torch.set_num_threads(int(t["threads"]))
    torch.manual_seed(t["seed"] + rank)
    dataset = build_dataset(cfg, "train")
    model = build_segmenter(SegmenterConfig.from_model_section(cfg["model"], len(dataset.classes))).to(device)
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    opt = make_optimizer(model, t)
    step = 0
    out.mkdir(parents=True, exist_ok=True)
    if resume:
        from safetensors.torch import load_file

        if not (out / "last.safetensors").is_file():
            raise SystemExit(f"dgmn.train: --resume but {out}/last.safetensors does not exist")
        model.load_state_dict(load_file(str(out / "last.safetensors")))
        step = load_optimizer(opt, out / "last.optim.safetensors")
        print(f"resumed from {out}/last.* at step {step}", file=sys.stderr)
    net = model
    if distributed:
        if device.type == "cuda":
            net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        net = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    d = cfg["data"]
    crop = (d["crop"], d["crop"]) if isinstance(d["crop"], int) else tuple(d["crop"])
    stream = TrainStream(dataset, d["train_seed"], crop, tuple(d["scale"]) if d["scale"] else None, d["flip"],
                         start=step * t["batch_size"] * world, rank=rank, world=world)
    loader = torch.utils.data.DataLoader(stream, batch_size=t["batch_size"], num_workers=int(t["workers"]),
                                         persistent_workers=bool(t["workers"]))
    from tqdm import tqdm

    bar = tqdm(total=t["steps"], initial=step, disable=rank != 0, dynamic_ncols=True, mininterval=2.0)
    running = ConfusionMatrix(len(dataset.classes))
    seconds = cpu_seconds = 0.0
    state_path = out / "state.json"
    if resume and state_path.is_file():
        state = json.loads(state_path.read_text())
        seconds, cpu_seconds = state.get("seconds", 0.0), state.get("cpu_seconds", 0.0)
    timeline = None
    if rank == 0 and timeline_steps(t.get("timeline_steps"), t["steps"]) and not resume:
        val = eval_split(cfg, seed=VALIDATION_SEED, images=int(t.get("timeline_images") or 32)) if cfg["data"]["dataset"] == "context-scenes" else eval_split(cfg)
        timeline = TimelineWriter(out / f"{cfg['name']}.timeline", cfg["name"], timeline_steps(t.get("timeline_steps"), t["steps"]), val)
    t0, c0 = time.perf_counter(), time.process_time()
    net.train()
    batches = iter(loader)
    while step < t["steps"]:
        x, y = next(batches)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        for g in opt.param_groups:
            g["lr"] = poly_lr(t["lr"], step, t["steps"], t["poly_power"])
        if timeline is not None and timeline.wants(step):  # before this batch touches weights or BN statistics
            timeline.snapshot(model, step, card_for(cfg, dataset, model, macs=False), device)
        logits = net(x)
        loss = F.cross_entropy(logits, y, ignore_index=IGNORE)
        if timeline is not None:
            timeline.add_loss(loss.item())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if rank == 0:
            running.update(logits.detach().argmax(1), y)
            if step % t["log_every"] == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}", train_miou=f"{running.miou():.1f}")
                running = ConfusionMatrix(len(dataset.classes))
            bar.update(1)
            if step % t["checkpoint_every"] == 0 or step == t["steps"]:
                elapsed = seconds + time.perf_counter() - t0
                save_model(model, out / "last", card_for(cfg, dataset, model, macs=False, training={"step": step, "seconds": elapsed}))
                save_optimizer(opt, out / "last.optim.safetensors", step)
                state_path.write_text(json.dumps({"step": step, "seconds": elapsed, "cpu_seconds": cpu_seconds + time.process_time() - c0}))
    bar.close()
    seconds += time.perf_counter() - t0
    cpu_seconds += time.process_time() - c0  # this process's CPU time: what the run costs, whatever else the machine runs
    if timeline is not None and timeline.wants(step):
        timeline.snapshot(model, step, card_for(cfg, dataset, model, macs=False), device)
    result = {}
    if rank == 0:
        split = eval_split(cfg)
        metrics = evaluate_model(model.eval(), split, batch_size=cfg["eval"]["batch_size"], device=device)
        card = card_for(
            cfg, dataset, model,
            training={
                "command": command, "config": cfg, "steps": t["steps"], "seconds": round(seconds, 1),
                "cpu_seconds": round(cpu_seconds, 1), "cpu": cpu_name(), "threads": torch.get_num_threads(), "processes": world, "git_commit": git_commit(),
                "torch": torch.__version__,
            },
            metrics=metrics,
        )
        save_model(model, out / cfg["name"], card)
        result = {"name": cfg["name"], "miou": metrics["miou"], "seconds": round(seconds, 1), "out": str(out / cfg["name"])}
        print(json.dumps(result))
    if distributed:
        dist.barrier()
        dist.destroy_process_group()
    return result


def cpu_name() -> str:
    """The processor's model name (Linux /proc/cpuinfo, else ``platform.processor()``): float results of a fixed
    thread count reproduce exactly on the same kind of processor only, so cards record it."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m dgmn.train", description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="YAML config (see configs/)")
    p.add_argument("--out", default=None, help="output folder (default: runs/<name>)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.* (weights, optimizer, step)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config entry, e.g. train.steps=100")
    args = p.parse_args(argv)
    cfg = load_config(args.config, args.set)
    out = Path(args.out or Path("runs") / cfg["name"])
    command = "python -m dgmn.train " + " ".join(sys.argv[1:] if argv is None else argv)
    train(cfg, out, args.resume, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
