"""The trainer's options (``configs/trainer/*.yaml``), checked once, with an error naming any
unknown or bad key."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..errors import UserError


@dataclass
class TrainerOptions:
    steps: int = 1000
    batch_size: int = 64  # global: all ranks and accumulation steps
    grad_accum: int = 1
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    adam_eps: float = 1e-8
    warmup: int = 0
    decay: str = "constant"
    min_lr_ratio: float = 0.1
    clip_grad: float | None = 1.0
    ema: list[float] = field(default_factory=lambda: [0.999])
    ema_warmup: bool = True
    cond_dropout: float = 0.1
    precision: str = "auto"
    parallel: str = "ddp"
    ddp_find_unused: bool = False
    compile: bool = False
    activation_checkpointing: bool = False
    device: str = "auto"
    num_workers: int | str = "auto"  # data worker processes per rank; auto: see precision.cpu_resources
    group_by_size: bool | str = "auto"  # batches of similar-size items (data.group_by_size); auto: when the dataset has sizes
    max_nonfinite: int = 5
    log_every: int = 10
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    verify_checkpoints: bool = True
    preview_every: int = 0
    preview_n: int = 8
    preview_sampler: str | None = None
    preview_steps: int = 16
    eval_every: int = 1000  # periodic evaluation (core/training/periodic_eval.py); 0 = never
    eval_n: int = 16
    eval_steps: int = 32
    eval_options: dict = field(default_factory=dict)  # passed to domain.evaluate, over evaluate_options
    eval_metric: str | None = None
    eval_media: int = 4
    progress: bool = True
    tensorboard: bool = True

    @classmethod
    def from_config(cls, cfg: Any) -> "TrainerOptions":
        raw = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise UserError(f"unknown trainer option(s) {unknown}; known: {sorted(known)}")
        if "betas" in raw:
            raw["betas"] = tuple(raw["betas"])
        if "ema" in raw:
            raw["ema"] = [] if raw["ema"] is None else [raw["ema"]] if isinstance(raw["ema"], (int, float)) else list(raw["ema"])
        opts = cls(**raw)
        opts.check()
        return opts

    def check(self) -> None:
        positive = ("steps", "batch_size", "grad_accum", "max_nonfinite", "log_every", "preview_n", "preview_steps",
                    "eval_n", "eval_steps")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise UserError(f"trainer.{name} must be >= 1, got {getattr(self, name)}")
        if self.num_workers != "auto" and (isinstance(self.num_workers, bool) or not isinstance(self.num_workers, int)):
            raise UserError(f"trainer.num_workers must be auto or a whole number >= 0, got {self.num_workers!r}")
        for name in ("warmup", *(("num_workers",) if self.num_workers != "auto" else ()), "checkpoint_every", "keep_checkpoints", "preview_every", "eval_every",
                     "eval_media"):
            if int(getattr(self, name)) < 0:
                raise UserError(f"trainer.{name} must be >= 0, got {getattr(self, name)}")
        if self.eval_options is None:
            self.eval_options = {}
        if not isinstance(self.eval_options, dict):
            raise UserError(f"trainer.eval_options must be a mapping of domain.evaluate options, got {self.eval_options!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise UserError(f"trainer.lr must be a positive number, got {self.lr}")
        if not 0.0 <= self.cond_dropout < 1.0:
            raise UserError(f"trainer.cond_dropout must lie in [0, 1), got {self.cond_dropout}")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise UserError(f"trainer.precision must be auto, bf16 or fp32, got {self.precision!r}")
        if self.group_by_size not in ("auto", True, False):
            raise UserError(f"trainer.group_by_size must be auto, true or false, got {self.group_by_size!r}")
        if self.parallel not in ("ddp", "fsdp"):
            raise UserError(f"trainer.parallel must be ddp or fsdp, got {self.parallel!r}")

    def micro_batch(self, world_size: int) -> int:
        per = world_size * self.grad_accum
        if self.batch_size % per:
            raise UserError(f"trainer.batch_size={self.batch_size} (global) does not split into {world_size} rank(s) x "
                             f"{self.grad_accum} accumulation step(s); choose a multiple of {per}")
        return self.batch_size // per
