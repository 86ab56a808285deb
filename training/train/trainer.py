"""The training engine shared by every `lightlip-train` recipe (lip-sync expert, teacher, student).

A recipe (see `Recipe`) says what is trained and how a batch becomes a loss; the `Trainer` owns
everything around it: devices and `torchrun` process groups, seeds, the optimizer and LR schedule, mixed
precision, tqdm progress, TensorBoard, periodic validation, atomic best/last checkpoints and `--resume`.

Run directory layout:
    config.yaml                 effective config of the run
    checkpoints/last.pt         full training state after the latest validation
    checkpoints/best.pt         full training state at the best validation score
    model.pt                    the best model in the project's checkpoint format (what the node loads)
    model_last.pt               the final model in the project's checkpoint format
    tensorboard/                scalars and sample image grids
    summary.json                steps, wall time, validation metrics, per-rank weight fingerprints
"""
from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import threadpoolctl
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from lightlip_ros.atomic_files import atomic_write, atomic_write_text
from lightlip_ros.errors import LightLipError, first_line
from lightlip_ros.models import weight_fingerprint

from ..data.layout import DataError
from .config import write_config

CHECKPOINT_VERSION = 1


class TrainingError(LightLipError, RuntimeError):
    """A run cannot start or continue for a reason the user can fix (reported as one line)."""


# --------------------------------------------------------------------------------------------------
# Processes and devices


@dataclass
class DistributedContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup_distributed(device_name: str = "auto") -> DistributedContext:
    """Join the process group `torchrun` describes in the environment (nccl on GPU, gloo on CPU)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_name == "auto":
        device_name = "cuda" if torch.cuda.is_available() else "cpu"
    if device_name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TrainingError(f"device '{device_name}' requested but CUDA is not available")
        device = torch.device("cuda", local_rank if world_size > 1 else torch.device(device_name).index or 0)
        torch.cuda.set_device(device)
    else:
        device = torch.device(device_name)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistributedContext(rank, world_size, local_rank, device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------------------------------
# Checkpoints


def save_training_state(state, path) -> Path:
    """torch.save through atomic_write: a run killed while saving keeps its previous checkpoint."""
    with atomic_write(path) as temporary:
        torch.save(state, temporary)
    return Path(path)


def load_training_state(path, map_location="cpu") -> dict:
    """A training checkpoint written by `Trainer` (full state; it holds RNG states, so not weights-only)."""
    path = Path(path)
    if path.is_dir():  # a run directory: continue from its last checkpoint
        path = path / "checkpoints" / "last.pt"
    if not path.is_file():
        raise TrainingError(f"no training checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as error:  # truncated or foreign files raise several exception types
        raise TrainingError(f"{path}: not a readable training checkpoint ({type(error).__name__}: "
                            f"{first_line(error)})") from error
    if not isinstance(state, dict) or state.get("checkpoint_version") != CHECKPOINT_VERSION:
        raise TrainingError(f"{path}: not a lightlip-train checkpoint (use --init for model files)")
    state["path"] = str(path)
    return state


# --------------------------------------------------------------------------------------------------
# Data order that survives a resume


class ResumableSampler(DistributedSampler):
    """DistributedSampler (deterministic shuffle from seed + epoch, one shard per rank) that can start
    part-way through an epoch, so a resumed run sees the same samples a straight run would."""

    def __init__(self, dataset, num_replicas: int, rank: int, seed: int, shuffle: bool = True):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
                         drop_last=True)
        self.start_index = 0

    def __iter__(self):
        indices = list(super().__iter__())[self.start_index:]
        return iter(indices)

    def __len__(self):
        return self.num_samples - self.start_index


def dataset_pair(dataset_class, config: dict, train_options=None, val_options=None):
    """(train, validation) data sets of the data reader, from the run's `data` section, with extra
    keyword arguments for either. Validation samples are fixed (epoch 0 always); training windows change
    every epoch (the trainer sets it)."""
    data, seed = config["data"], int(config["train"]["seed"])
    try:
        train = dataset_class(data["root"], data["train_split"], seed=seed,
                              samples_per_clip=int(data["samples_per_clip"]), **(train_options or {}))
        val = dataset_class(data["root"], data["val_split"], seed=seed + 1,
                            samples_per_clip=int(data["val_samples_per_clip"]), **(val_options or {}))
    except DataError as error:
        raise TrainingError(f"data: {error}") from error
    return train, val


# --------------------------------------------------------------------------------------------------
# Recipes


class Recipe:
    """What one `lightlip-train` subcommand trains. Subclasses implement the methods below.

    The model `build_model` returns is the module the optimizer updates and DDP wraps (for distillation
    it holds the student and its feature adapters); frozen networks (teacher, expert) live on the recipe.
    """

    name = "recipe"
    monitor = "val/loss"  # lower is better; decides best.pt and model.pt

    def __init__(self, config: dict, device: torch.device):
        self.config = config
        self.device = device

    def datasets(self):
        """-> (train dataset, validation dataset)."""
        raise NotImplementedError

    def build_model(self) -> nn.Module:
        raise NotImplementedError

    def training_step(self, model: nn.Module, batch) -> tuple:
        """-> (loss tensor, {name: float} to log)."""
        raise NotImplementedError

    def validate(self, model: nn.Module, batches) -> dict:
        """Metrics over the validation batches (model in eval mode, no grad), keys 'val/...'."""
        raise NotImplementedError

    def sample_grid(self, model: nn.Module, batch):
        """An image tensor (3,H,W) RGB in [0,1] for TensorBoard, or None."""
        return None

    def export(self, model: nn.Module, path, metadata: dict) -> None:
        """Write the trained network (not the training state) in the project's checkpoint format."""
        raise NotImplementedError

    def on_validation(self, metrics: dict) -> None:
        """React to validation results (e.g. switch a loss on); runs on every rank with rank 0's metrics."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


# --------------------------------------------------------------------------------------------------
# The loop


def _single_threaded_worker(worker_id: int) -> None:
    """DataLoader workers compute mel spectrograms with NumPy: keep its BLAS to one thread, as torch keeps
    its own in workers. Idle BLAS threads spin and slowed every small tensor operation of a worker ~10x
    (25 vs 4 ms per augmented sample on 2 cores)."""
    threadpoolctl.threadpool_limits(1)


def _move(batch, device):
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {key: _move(value, device) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_move(value, device) for value in batch)
    return batch


def lr_multiplier(step: int, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """Linear warm-up, then constant or cosine decay to 10% of the base rate."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))
    raise TrainingError(f"unknown train.schedule '{schedule}' (constant or cosine)")


class Trainer:
    def __init__(self, recipe_class, config: dict, run_dir, resume=None):
        self.config = config
        self.train_cfg = config["train"]
        self.run_dir = Path(run_dir)
        self.ctx = setup_distributed(self.train_cfg.get("device", "auto"))
        threads = self.train_cfg.get("threads")
        if threads:
            torch.set_num_threads(int(threads))
        self.resume_state = load_training_state(resume) if resume else None
        seed = int(self.train_cfg["seed"])
        # Each rank draws different random windows/augmentations; model init is broadcast by DDP anyway.
        seed_everything(seed + self.ctx.rank)
        self.recipe = recipe_class(config, self.ctx.device)
        self.model = self.recipe.build_model().to(self.ctx.device)
        self.optimizer = torch.optim.AdamW(
            [p for p in self.model.parameters() if p.requires_grad], lr=float(self.train_cfg["lr"]),
            betas=tuple(self.train_cfg.get("betas", (0.9, 0.999))),
            weight_decay=float(self.train_cfg.get("weight_decay", 0.0)))
        total, warmup = int(self.train_cfg["steps"]), int(self.train_cfg.get("warmup_steps", 0))
        schedule = self.train_cfg.get("schedule", "constant")
        lr_multiplier(0, total, warmup, schedule)  # reject an unknown schedule before training starts
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_multiplier(step, total, warmup, schedule))
        self.amp = bool(self.train_cfg.get("amp", True)) and self.ctx.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.step = 0
        self.best = math.inf
        self.elapsed = 0.0
        self.last_metrics = {}
        if self.resume_state is not None:
            self._restore(self.resume_state)
        if self.ctx.distributed:
            device_ids = [self.ctx.device.index] if self.ctx.device.type == "cuda" else None
            self.ddp_model = DistributedDataParallel(self.model, device_ids=device_ids)
        else:
            self.ddp_model = self.model
        self.writer = None

    # -- state ---------------------------------------------------------------------------------

    def training_state(self) -> dict:
        return {
            "checkpoint_version": CHECKPOINT_VERSION,
            "recipe": self.recipe.name,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "recipe_state": self.recipe.state_dict(),
            "step": self.step,
            "best": self.best,
            "elapsed_s": self.elapsed,
            "rng": rng_state(),
            "config": self.config,
        }

    def _restore(self, state: dict) -> None:
        if state.get("recipe") != self.recipe.name:
            raise TrainingError(f"{state['path']} is a '{state.get('recipe')}' run, not '{self.recipe.name}'")
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as error:
            raise TrainingError(f"{state['path']}: model does not match this config "
                                f"({first_line(error)})") from error
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.recipe.load_state_dict(state["recipe_state"])
        self.step, self.best, self.elapsed = int(state["step"]), float(state["best"]), float(state["elapsed_s"])
        if self.ctx.rank == 0 or not self.ctx.distributed:
            restore_rng_state(state["rng"])
        else:  # other ranks continue their own streams, offset from rank 0's like at the start
            seed_everything(int(self.train_cfg["seed"]) + self.ctx.rank + self.step)

    # -- loop ----------------------------------------------------------------------------------

    def _loader(self, dataset, sampler, batch_size, generator=None):
        workers = int(self.train_cfg.get("num_workers", 0))
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                          pin_memory=self.ctx.device.type == "cuda", drop_last=sampler is not None,
                          generator=generator, persistent_workers=False, worker_init_fn=_single_threaded_worker)

    def fit(self) -> dict:
        ctx, cfg = self.ctx, self.train_cfg
        total_steps = int(cfg["steps"])
        batch_size = int(cfg["batch_size"])
        train_set, val_set = self.recipe.datasets()
        if len(train_set) < batch_size * ctx.world_size:
            raise TrainingError(f"training set has {len(train_set)} samples, fewer than one batch "
                                f"({batch_size} x {ctx.world_size} ranks)")
        sampler = ResumableSampler(train_set, ctx.world_size, ctx.rank, seed=int(cfg["seed"]))
        batches_per_epoch = len(sampler) // batch_size

        if ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            for torn in (self.run_dir / "checkpoints").glob(".*.tmp"):  # left by a run killed while saving
                torn.unlink()
            write_config(self.config, self.run_dir / "config.yaml")
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=self.step or None)
        progress = tqdm(total=total_steps, initial=self.step, desc=self.recipe.name, unit="step",
                        disable=not ctx.is_main or not cfg.get("progress", True), dynamic_ncols=True)
        started = time.monotonic() - self.elapsed
        running = {}
        while self.step < total_steps:
            epoch, done_in_epoch = divmod(self.step, batches_per_epoch)
            sampler.set_epoch(epoch)
            if hasattr(train_set, "set_epoch"):  # new random windows every epoch, same on resume
                train_set.set_epoch(epoch)
            sampler.start_index = done_in_epoch * batch_size
            generator = torch.Generator().manual_seed(int(cfg["seed"]) * 100003 + epoch)
            for batch in self._loader(train_set, sampler, batch_size, generator):
                scalars = self._train_step(batch)
                self.step += 1
                self.elapsed = time.monotonic() - started
                for key, value in scalars.items():
                    running.setdefault(key, []).append(value)
                if self.step % int(cfg["log_every"]) == 0 or self.step == total_steps:
                    self._log_training(running, progress)
                    running = {}
                progress.update(1)
                if self.step % int(cfg["val_every"]) == 0 or self.step == total_steps:
                    self._validate_and_save(val_set)
                if self.step >= total_steps:
                    break
        progress.close()
        return self._finish()

    def _train_step(self, batch) -> dict:
        self.ddp_model.train()
        batch = _move(batch, self.ctx.device)
        with torch.autocast(device_type=self.ctx.device.type, dtype=torch.float16, enabled=self.amp):
            loss, scalars = self.recipe.training_step(self.ddp_model, batch)
        if not torch.isfinite(loss):
            raise TrainingError(f"loss became {loss.item()} at step {self.step + 1}; lower train.lr")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        clip = self.train_cfg.get("grad_clip")
        if clip:
            self.scaler.unscale_(self.optimizer)
            scalars["grad_norm"] = float(nn.utils.clip_grad_norm_(self.model.parameters(), float(clip)))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        scalars["loss"] = float(loss.detach())
        scalars["lr"] = self.scheduler.get_last_lr()[0]
        return scalars

    def _log_training(self, running: dict, progress) -> None:
        means = {key: float(np.mean(values)) for key, values in running.items()}
        if self.ctx.distributed:  # average over ranks (every rank logs at the same steps)
            keys = sorted(means)
            values = torch.tensor([means[k] for k in keys], dtype=torch.float64)
            dist.all_reduce(values)
            means = dict(zip(keys, (values / self.ctx.world_size).tolist()))
        if self.writer is not None:
            for key, value in means.items():
                self.writer.add_scalar(f"train/{key}", value, self.step)
            progress.set_postfix(loss=f"{means['loss']:.4f}", refresh=False)

    def _sync_buffers(self) -> None:
        """Give every rank rank 0's BatchNorm statistics. DDP does this at the start of each forward; doing it
        before validation and at the end keeps saved and final weights identical on all ranks."""
        if self.ctx.distributed:
            for buffer in self.model.buffers():
                dist.broadcast(buffer, src=0)

    @torch.no_grad()
    def _validate_and_save(self, val_set) -> None:
        ctx = self.ctx
        metrics = {}
        self._sync_buffers()
        if ctx.is_main:
            model = self.model
            model.eval()
            # Same validation samples every time: fixed order and fixed RNG, restored afterwards.
            saved_rng = rng_state()
            seed_everything(int(self.train_cfg["seed"]) + 7919)
            loader = self._loader(val_set, None, int(self.train_cfg["batch_size"]),
                                  torch.Generator().manual_seed(int(self.train_cfg["seed"]) + 7919))
            batches = []
            limit = int(self.train_cfg.get("val_batches", 0)) or len(loader)
            for index, batch in enumerate(loader):
                if index >= limit:
                    break
                batches.append(_move(batch, ctx.device))
            with torch.autocast(device_type=ctx.device.type, dtype=torch.float16, enabled=self.amp):
                metrics = self.recipe.validate(model, batches)
                grid = self.recipe.sample_grid(model, batches[0]) if batches else None
            restore_rng_state(saved_rng)
            for key, value in metrics.items():
                self.writer.add_scalar(key, value, self.step)
            if grid is not None:
                self.writer.add_image("samples", grid.float().clamp(0, 1).cpu(), self.step)
            self.writer.flush()
        if ctx.distributed:  # every rank applies rank 0's validation result (e.g. switching on sync loss)
            shared = [metrics]
            dist.broadcast_object_list(shared, src=0)
            metrics = shared[0]
        self.recipe.on_validation(metrics)
        self.last_metrics = metrics
        if ctx.is_main:
            score = metrics[self.recipe.monitor]
            improved = score < self.best
            if improved:
                self.best = score
            state = self.training_state()
            save_training_state(state, self.run_dir / "checkpoints" / "last.pt")
            if improved:
                save_training_state(state, self.run_dir / "checkpoints" / "best.pt")
                self.recipe.export(self.model, self.run_dir / "model.pt", self._provenance(metrics))
            tqdm.write(f"step {self.step}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
                       + (" (best)" if improved else ""))
        if ctx.distributed:
            dist.barrier()

    def _provenance(self, metrics: dict) -> dict:
        return {"recipe": self.recipe.name, "step": self.step, "wall_time_s": round(self.elapsed, 1),
                "world_size": self.ctx.world_size, "data": self.config.get("data", {}),
                "validation": {k: round(float(v), 6) for k, v in metrics.items()}}

    def _finish(self) -> dict:
        ctx = self.ctx
        self._sync_buffers()
        fingerprint = weight_fingerprint(self.model)
        fingerprints = [fingerprint]
        if ctx.distributed:
            fingerprints = [None] * ctx.world_size
            dist.all_gather_object(fingerprints, fingerprint)
        summary = {"recipe": self.recipe.name, "steps": self.step, "wall_time_s": round(self.elapsed, 1),
                   "world_size": ctx.world_size, "device": str(ctx.device), "best": {self.recipe.monitor: self.best},
                   "final": self.last_metrics, "rank_weight_fingerprints": fingerprints}
        if ctx.is_main:
            self.recipe.export(self.model, self.run_dir / "model_last.pt", self._provenance(self.last_metrics))
            atomic_write_text(self.run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
            self.writer.close()
        if ctx.distributed:
            dist.barrier()
            dist.destroy_process_group()
        return summary
