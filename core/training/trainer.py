"""One trainer for every domain: ``train(cfg) -> exported weights``.

The same code runs in one CPU process (tests), on one GPU, and under ``torchrun`` on several
GPUs and nodes. Per optimizer step it draws ``grad_accum`` micro-batches per rank, computes the
domain's denoising loss (noise from the domain's hook, condition dropout for classifier-free
guidance, bf16 autocast where ``trainer.precision`` picks it: see ``precision.py``), checks that loss and gradients are finite before the optimizer
touches the weights, clips, steps AdamW with warm-up and decay, and updates the EMAs. Every
random number of a step comes from ``derive_seed(seed, step, rank, micro_step)``: ranks draw
different noise, and a resumed run draws what an uninterrupted one would have.

Outputs under ``run_dir``: ``checkpoints/step_<N>/`` (resumable), ``export/weights.safetensors``
(EMA weights + config, for ``diffsuite sample``), ``log.csv``, ``tb/``, ``train.log``,
``previews/``, ``config.yaml``, and with ``trainer.eval_every``: ``evals/step_<N>/`` (samples and
``figures.json``) and ``evals.csv`` (``core/training/periodic_eval.py``).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import signal
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

from ..domain import Batch, config_options
from .checkpoint import (checkpoint_name, checkpoint_weights, choose_checkpoint, load_checkpoint, read_trainer_state,
                         save_checkpoint, set_aside_later)
from .data import DataPosition, DataStream, dataset_sizes
from .distributed import (DistInfo, all_reduce_sum, barrier, broadcast_object, derive_seed, setup_distributed,
                          teardown_distributed)
from .ema import EMA, full_tensor
from .export import check_export, export_weights, load_exported, misfit
from ..errors import UserError
from .lr import lr_factor, lr_scheduler
from .options import TrainerOptions
from .parallelize import ParallelOptions, parallelize
from .precision import cpu_resources, resolve_precision
from .periodic_eval import make_periodic_eval
from .preview import write_preview
from .run_log import RunLog
from .stop import StopRequest

log = logging.getLogger("diffsuite.train")


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    model: nn.Module  # the trained denoiser (raw weights; under FSDP, sharded)
    ema: EMA
    export: Path | None  # exported EMA weights, when the run reached trainer.steps
    checkpoint: Path | None  # the last checkpoint written or resumed from
    stopped_by: str | None  # "SIGTERM"/"SIGINT" when a signal ended the run early
    resumed_from: Path | None  # the checkpoint this run started from


def train(cfg: DictConfig) -> Path:
    """Train `cfg.domain`'s network with `cfg.model` and `cfg.trainer`.

    Returns the exported EMA weights (``<run_dir>/export/weights.safetensors``, loadable with
    ``core.training.export.build_from_export``), or, when SIGTERM/SIGINT stopped the run early,
    the checkpoint to resume from (run the same command again: ``resume=auto`` picks it up)."""
    result = fit(cfg)
    return result.export if result.export is not None else (result.checkpoint or result.run_dir)


def fit(cfg: DictConfig) -> TrainResult:
    """`train`, returning the trained state as well (for tests and scripts)."""
    opts = TrainerOptions.from_config(cfg.trainer)
    info = setup_distributed(opts.device)
    try:
        return _fit(cfg, opts, info)
    finally:
        teardown_distributed(info)


def _setup_logging(run_dir: Path, info: DistInfo) -> logging.Handler | None:
    log.setLevel(logging.INFO)
    if not logging.getLogger().handlers and not log.handlers:  # not under hydra: print to stderr
        h = logging.StreamHandler()
        h.setFormatter(logging.Formatter(f"[%(asctime)s rank {info.rank}] %(levelname)s %(message)s", "%H:%M:%S"))
        log.addHandler(h)
    if not info.is_main:
        log.setLevel(logging.WARNING)
        return None
    fh = logging.FileHandler(run_dir / "train.log")
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(fh)
    return fh


def _container(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def _export_config(cfg: DictConfig, domain, opts: TrainerOptions, seed: int, step: int, decay: float | None) -> dict:
    # The domain's own config() records what training settled (e.g. the class names found in a
    # data folder), so sampling an export never needs the training data.
    config = {"domain": domain.config(), "model": _container(cfg.model), "trainer": asdict(opts),
              "seed": seed, "step": step, "ema_decay": decay}
    config["sample_options"] = config_options(cfg)
    return config


def _write_run_config(cfg: DictConfig, run_dir: Path, start_step: int) -> None:
    path = run_dir / ("config.yaml" if start_step == 0 else f"config.resume-{start_step:08d}.yaml")
    if not path.exists():
        path.write_text(OmegaConf.to_yaml(cfg, resolve=True))


def _cond_dropout(batch: Batch, p: float, g: torch.Generator) -> None:
    if batch.cond is None or p <= 0:
        return
    drop = torch.rand(len(batch), generator=g, device=g.device) < p  # (B,)
    if "drop" in batch.cond:
        drop = drop | batch.cond["drop"].to(drop.device, torch.bool)
    batch.cond = {**batch.cond, "drop": drop.to(batch.x.device)}


def _accepts(loss_fn: Any, keyword: str) -> bool:
    """Whether the loss takes `keyword` (generator=, step=): losses that need neither stay simple."""
    try:
        return keyword in inspect.signature(loss_fn).parameters
    except (TypeError, ValueError):
        return False


def _grad_sync(module: nn.Module, enabled: bool):
    """DDP: skip the all-reduce on accumulation micro-steps; FSDP2: skip the reduce-scatter."""
    if hasattr(module, "no_sync"):
        return contextlib.nullcontext() if enabled else module.no_sync()
    if hasattr(module, "set_requires_gradient_sync"):
        module.set_requires_gradient_sync(enabled)
    return contextlib.nullcontext()


def _gather(obj: Any, info: DistInfo) -> list[Any]:
    if not info.distributed:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def _export(cfg, domain, opts, model, ema, run_dir: Path, seed: int, step: int, info: DistInfo) -> Path | None:
    """EMA weights (first decay) -> export/weights.safetensors, further decays beside it."""
    decays = ema.decays or [None]
    first: Path | None = None
    for i, decay in enumerate(decays):
        weights = ema.full_weights(model, i)  # the model's own weights when there are no decays
        stem = "weights" if i == 0 else f"weights_ema{decay}"
        path = run_dir / "export" / f"{stem}.safetensors"
        if info.is_main:
            if path.exists():
                try:
                    same = load_exported(path)[1].get("step") == step
                except ValueError:
                    same = False
                if not same:
                    new = path.with_name(f"{stem}-step{step:08d}.safetensors")
                    log.warning("%s exists (another step); exporting to %s instead", path, new)
                    path = new
            if not path.exists():
                export_weights(path, weights, _export_config(cfg, domain, opts, seed, step, decay))
                check_export(path)  # loads as a user will: the config rebuilds the domain, the weights fit
                log.info("exported %s weights to %s", "EMA %g" % decay if decay is not None else "raw", path)
        first = first or path
    barrier(info)
    return first


def _fit(cfg: DictConfig, opts: TrainerOptions, info: DistInfo) -> TrainResult:
    run_dir = Path(broadcast_object(str(cfg.run_dir), info))  # rank 0's ${now:...} for everyone
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    barrier(info)
    handler = _setup_logging(run_dir, info)
    try:
        return _run(cfg, opts, info, run_dir)
    finally:
        if handler is not None:
            log.removeHandler(handler)
            handler.close()


@dataclass
class _Run:
    """Everything one training run holds; each phase of `_run` below reads and updates it."""
    cfg: DictConfig
    opts: TrainerOptions
    info: DistInfo
    run_dir: Path
    seed: int
    micro: int
    domain: Any
    make_denoiser: Any
    model: nn.Module  # the raw denoiser (under FSDP, sharded in place)
    train_module: nn.Module  # what a training step calls (the model, or DDP around it)
    loss_fn: Any
    pass_generator: bool  # the loss takes generator=
    pass_step: bool  # the loss takes step= (an objective whose schedule follows the training step)
    ema: EMA
    optimizer: torch.optim.Optimizer
    scheduler: Any
    resume_from: Path | None
    step: int = 0
    nonfinite_row: int = 0
    position: DataPosition | None = None  # where the data stream resumes
    stream: DataStream | None = None
    autocast: Any = None
    generator: torch.Generator | None = None
    preview: dict[str, Any] | None = None
    evaluator: Any = None  # periodic_eval.PeriodicEval when trainer.eval_every > 0
    last_ckpt: Path | None = None
    stopped_by: str | None = None

    def dcp_state(self) -> dict[str, Any]:
        msd, osd = get_state_dict(self.model, self.optimizer)
        return {"model": msd, "optim": osd, "ema": self.ema.state_dict()}


def _run(cfg: DictConfig, opts: TrainerOptions, info: DistInfo, run_dir: Path) -> TrainResult:
    """build -> resume -> data -> (step -> log/preview -> checkpoint)* -> finish (checkpoint, export)."""
    run = _build(cfg, opts, info, run_dir)
    _restore(run)
    _open_data(run)
    window = _Window()
    runlog = RunLog(run_dir, enabled=info.is_main, start_step=run.step, total_steps=opts.steps,
                    progress=opts.progress, tensorboard=opts.tensorboard)
    export = None
    with runlog, StopRequest() as stop:
        while run.step < opts.steps:
            stop_votes = _train_step(run, window, runlog, stop)
            _after_step(run, window, runlog)
            if stop_votes > 0 and run.step < opts.steps:
                _stop(run, stop, runlog)
                break
            if opts.checkpoint_every and run.step % opts.checkpoint_every == 0 and run.step < opts.steps:
                _checkpoint(run)
        if run.stopped_by is None:
            export = _finish(run)
    return TrainResult(run_dir, run.step, run.model, run.ema, export, run.last_ckpt, run.stopped_by, run.resume_from)


def _build(cfg: DictConfig, opts: TrainerOptions, info: DistInfo, run_dir: Path) -> _Run:
    """Pick the checkpoint to resume from, then build the model (identically on every rank, from
    the run seed), loss, parallel wrapper, EMA, optimizer and LR schedule."""
    seed = int(cfg.get("seed", 0) or 0)
    micro = opts.micro_batch(info.world_size)
    resume_from = choose_checkpoint(cfg.get("resume", "auto"), run_dir, info, hashes=opts.verify_checkpoints)
    torch.manual_seed(seed)
    domain = instantiate(cfg.domain)
    make_denoiser = instantiate(cfg.model.precond)
    model = make_denoiser(domain.network()).to(info.device)
    if cfg.get("init") and resume_from is None:  # before the EMA copies the weights; a resume has its own
        _warm_start(model, Path(str(cfg.init)), cfg, domain)
    loss_fn = instantiate(cfg.model.loss)
    train_module = parallelize(model, ParallelOptions(opts.parallel, opts.compile, opts.activation_checkpointing,
                                                      opts.ddp_find_unused), info)
    ema = EMA(model, opts.ema, warmup=opts.ema_warmup)
    optimizer = adamw(model.parameters(), lr=opts.lr, betas=opts.betas, eps=opts.adam_eps,
                      weight_decay=opts.weight_decay)
    scheduler = lr_scheduler(optimizer, steps=opts.steps, warmup=opts.warmup, decay=opts.decay,
                             min_ratio=opts.min_lr_ratio)
    return _Run(cfg=cfg, opts=opts, info=info, run_dir=run_dir, seed=seed, micro=micro, domain=domain,
                make_denoiser=make_denoiser, model=model, train_module=train_module, loss_fn=loss_fn,
                pass_generator=_accepts(loss_fn, "generator"),
                pass_step=_accepts(loss_fn, "step"), ema=ema, optimizer=optimizer, scheduler=scheduler,
                resume_from=resume_from, last_ckpt=resume_from)


def adamw(params, **kw) -> torch.optim.AdamW:
    """AdamW, with torch's fused kernel wherever it runs: plain float parameters on a CPU or a GPU (not
    FSDP's sharded DTensors). On a CPU torch otherwise takes a Python loop over the tensors; one optimizer
    step of the shipped networks on one thread of the development CPU took 8.5 ms fused against 24.5
    (audio S2, 217 tensors), 1.2 against 5.1 (video XS) and 0.8 against 4.0 (molecules joint, 102
    tensors: 3% of its step). The update is the same AdamW to float rounding."""
    from torch.distributed.tensor import DTensor

    params = list(params)
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() and not isinstance(p, DTensor)
                for p in params)
    return torch.optim.AdamW(params, fused=fused or None, **kw)


def _warm_start(model: nn.Module, path: Path, cfg: DictConfig, domain) -> None:
    """`init=PATH`: start from exported weights (e.g. consistency tuning of a trained model), or
    from a checkpoint folder of another run (its first EMA). It must hold this domain's network at
    this size, under the same preconditioning."""
    if path.is_dir():
        state, config = checkpoint_weights(path)  # names the folder when it is incomplete or unreadable
    else:
        state, config = load_exported(path)  # names the file when it is missing or unreadable
    want = domain.config().get("_target_")
    have = (config.get("domain") or {}).get("_target_")
    if have != want:
        raise UserError(f"init={path} holds a {have} model, not a {want} one (domain={domain.name})")
    have_p = ((config.get("model") or {}).get("precond") or {}).get("_target_")
    want_p = cfg.model.precond.get("_target_")
    if have_p != want_p:
        raise UserError(f"init={path} was trained with precond {have_p}; this run's model uses {want_p}")
    own = model.state_dict()
    problem = misfit(own, state)
    if problem:
        raise UserError(f"init={path} does not fit this run's network (another preset or domain option?): {problem}")
    with torch.no_grad():
        for k, v in own.items():
            v.copy_(state[k])
    log.info("initialised the weights from %s (its step %s)", path, config.get("step"))


def _restore(run: _Run) -> None:
    """Load the chosen checkpoint (if any) and put the LR schedule at its step."""
    opts = run.opts
    if run.resume_from is not None:
        run.step, run.position, run.nonfinite_row = _resume(run.resume_from, run.dcp_state(), run.model,
                                                            run.optimizer, run.ema, opts, run.seed, run.info)
        set_aside_later(run.run_dir, run.step, run.info)  # an older step: a new branch, later files moved aside
    scheduler = run.scheduler
    scheduler.last_epoch = run.step
    for group, base in zip(run.optimizer.param_groups, scheduler.base_lrs):
        group["lr"] = base * lr_factor(run.step, steps=opts.steps, warmup=opts.warmup, decay=opts.decay,
                                       min_ratio=opts.min_lr_ratio)
    scheduler._last_lr = [g["lr"] for g in run.optimizer.param_groups]


def _size_group(dataset, opts: TrainerOptions) -> int:
    """The global batch to group by size (data.group_by_size), or 0; says which in the log."""
    try:
        sizes = dataset_sizes(dataset)
    except ValueError as e:
        raise UserError(f"trainer.group_by_size: {e}") from None
    if opts.group_by_size is True and sizes is None:
        raise UserError(f"trainer.group_by_size=true, but the training set ({type(dataset).__name__}) has no per-item "
                        f"sizes to group by; use auto or false")
    if opts.group_by_size is False or sizes is None:
        return 0
    log.info("batches grouped by size: each global batch of %d holds items of similar size (sizes %g-%g; "
             "trainer.group_by_size=false turns it off)", opts.batch_size, sizes.min(), sizes.max())
    return opts.batch_size


def _open_data(run: _Run) -> None:
    """The data stream at the resumed position (rank 0 first, so a dataset cache is built once),
    the autocast context, the step generator and the preview settings."""
    info, opts, device = run.info, run.opts, run.info.device
    if not info.is_main:
        barrier(info)
    dataset = run.domain.dataset("train")
    if info.is_main:
        barrier(info)
        _write_run_config(run.cfg, run.run_dir, run.step)
    workers, threads = cpu_resources(opts.num_workers, device)
    log.info("threads: %s", threads)
    group = _size_group(dataset, opts)
    run.stream = DataStream(dataset, run.domain.collate, dist=info, micro_batch=run.micro, seed=run.seed,
                            num_workers=workers, pin_memory=device.type == "cuda", position=run.position, group=group)
    bf16, why = resolve_precision(opts.precision, device)
    log.info("precision: %s", why)
    run.autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)  # noqa: E731
    run.generator = torch.Generator(device)
    run.preview = _preview_settings(run.cfg, opts)
    run.evaluator = make_periodic_eval(  # with the run's own sampler group, whatever trainer.preview_sampler says
        run.domain, run.make_denoiser, run.run_dir, opts, seed=run.seed, device=device,
        sample_settings=_preview_settings(run.cfg, replace(opts, preview_sampler=None)),
        evaluate_options=config_options(run.cfg, "evaluate_options"))


@dataclass
class _Window:
    """Running sums between two log rows."""
    loss: float = 0.0
    n: int = 0
    steps: int = 0
    skipped: int = 0
    norm: float = 0.0
    lr: float = 0.0  # the LR of the last step
    t: float = 0.0

    def __post_init__(self) -> None:
        self.t = time.perf_counter()


def _train_step(run: _Run, window: _Window, runlog: RunLog, stop: StopRequest) -> float:
    """One optimizer step: gradients over the micro-batches, the finiteness check across ranks,
    AdamW, EMA, LR schedule. Returns the number of ranks that asked to stop."""
    opts, info, model = run.opts, run.info, run.model
    run.train_module.train()
    stats, draws = _accumulate_gradients(run.train_module, run.loss_fn, run.domain, run.stream, run.generator,
                                         run.autocast, step=run.step, seed=run.seed, opts=opts, info=info,
                                         pass_generator=run.pass_generator, pass_step=run.pass_step)
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), opts.clip_grad or math.inf)
    norm = full_tensor(norm).float()
    stats[3] = float(stop.requested)
    stats[4] = (~torch.isfinite(norm)).float()
    all_reduce_sum(stats, info)
    loss_sum, n_micro, bad_loss, stop_votes, bad_norm = stats.tolist()
    window.lr = run.scheduler.get_last_lr()[0]
    if bad_loss == 0 and bad_norm == 0:
        run.optimizer.step()
        run.ema.update(model, run.step)
        run.nonfinite_row = 0
        window.loss += loss_sum
        window.n += n_micro
        window.norm += norm.item()
    else:
        run.nonfinite_row += 1
        window.skipped += 1
        _report_nonfinite(run.step + 1, draws, bad_loss, norm.item(), run.nonfinite_row, opts, info, runlog,
                          run.last_ckpt)
    run.optimizer.zero_grad(set_to_none=True)
    with warnings.catch_warnings():  # the LR is a function of the step, skipped or not
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
        run.scheduler.step()
    run.step += 1
    window.steps += 1
    runlog.step()
    return stop_votes


def _after_step(run: _Run, window: _Window, runlog: RunLog) -> None:
    """What follows a step at its period: a log row, a preview (periodic evaluations go here too)."""
    opts, step = run.opts, run.step
    if step % opts.log_every == 0 or step == opts.steps:
        _log_row(runlog, window, step, run.stream.position().epoch, window.lr, opts.batch_size)
    if opts.preview_every and step % opts.preview_every == 0:
        weights = run.ema.full_weights(run.model, 0)
        if run.info.is_main:
            write_preview(run.domain, run.make_denoiser, weights, run.run_dir / "previews" / checkpoint_name(step),
                          n=opts.preview_n, steps=opts.preview_steps, seed=run.seed, device=run.info.device,
                          **run.preview)
        barrier(run.info)
    if run.evaluator is not None and run.evaluator.due(step):  # EMA weights gathered by all, scored on rank 0
        weights = run.ema.full_weights(run.model, 0)
        if run.info.is_main:
            t0 = time.perf_counter()
            run.evaluator(step, weights, runlog)
            window.t += time.perf_counter() - t0  # samples/s counts training alone
        barrier(run.info)


def _checkpoint(run: _Run) -> Path | None:
    """Write a checkpoint of this step (a collective); None before the first optimizer step,
    when a restart from scratch is the same run."""
    if not run.optimizer.state:
        return None
    pos = run.stream.position()
    sched = run.scheduler
    trainer_state = {
        "step": run.step, "data": asdict(pos), "world_size": run.info.world_size, "micro_batch": run.micro,
        "batch_size": run.opts.batch_size, "seed": run.seed, "ema_decays": run.ema.decays,
        "nonfinite_in_row": run.nonfinite_row,
        "lr_scheduler": {"last_epoch": sched.last_epoch, "base_lrs": sched.base_lrs, "last_lr": sched.get_last_lr()},
        "rng": {"scheme": "derive_seed(seed, step, rank, micro_step) per step", "seed": run.seed},
    }
    path = save_checkpoint(run.run_dir / "checkpoints", run.step, run.dcp_state(), trainer_state, run.info,
                           keep=run.opts.keep_checkpoints, hashes=run.opts.verify_checkpoints)
    run.last_ckpt = path
    return path


def _stop(run: _Run, stop: StopRequest, runlog: RunLog) -> None:
    """A signal on some rank: checkpoint this step, say how to resume, hand the signal on."""
    run.stopped_by = signal.Signals(stop.signum).name if stop.signum else "a signal on another rank"
    _checkpoint(run)
    if run.info.is_main:
        log.warning("stopped by %s at step %d; resume with resume=auto run_dir=%s", run.stopped_by, run.step,
                    run.run_dir)
    runlog.close()
    stop.hand_on()  # submitit's requeue on SIGUSR2, if it is there


def _finish(run: _Run) -> Path | None:
    """The last checkpoint (unless this step has one) and the export of the EMA weights."""
    if run.last_ckpt is None or run.last_ckpt.name != checkpoint_name(run.step):
        _checkpoint(run)
    return _export(run.cfg, run.domain, run.opts, run.model, run.ema, run.run_dir, run.seed, run.step, run.info)


def _accumulate_gradients(train_module: nn.Module, loss_fn, domain, stream: DataStream, g: torch.Generator,
                          autocast, *, step: int, seed: int, opts: TrainerOptions, info: DistInfo,
                          pass_generator: bool, pass_step: bool = False) -> tuple[torch.Tensor, list]:
    """Forward and backward over this rank's `grad_accum` micro-batches of one optimizer step.

    Returns stats (loss sum over finite micro-steps, micro-steps, non-finite losses, and two
    slots the caller fills) and the loss outputs (for the noise levels of a bad step)."""
    device = info.device
    stats = torch.zeros(5, device=device)  # loss sum, micro-steps, non-finite losses, stop votes, bad norm
    draws = []
    for m in range(opts.grad_accum):
        batch = next(stream).to(device, non_blocking=True)
        g.manual_seed(derive_seed(seed, step, info.rank, m))  # noise levels, noise, condition dropout
        torch.manual_seed(derive_seed(seed, 0x6E7, step, info.rank, m))  # dropout etc. inside the network
        _cond_dropout(batch, opts.cond_dropout, g)
        extra = {"generator": g} if pass_generator else {}
        if pass_step:
            extra["step"] = step
        with _grad_sync(train_module, m == opts.grad_accum - 1):
            with autocast():
                out = loss_fn(train_module, batch.x, batch.cond, batch.mask, noise=domain.noise_fn(batch, g), **extra)
            (out.loss / opts.grad_accum).backward()
        loss = out.loss.detach().float()
        finite = torch.isfinite(loss)
        stats[0] += torch.where(finite, loss, torch.zeros_like(loss))
        stats[1] += 1
        stats[2] += (~finite).float()
        draws.append(out)
    return stats, draws


def _resume(path: Path, state: dict, model: nn.Module, optimizer, ema: EMA, opts: TrainerOptions, seed: int,
            info: DistInfo) -> tuple[int, DataPosition, int]:
    """Load a checkpoint in place (resharding to this world size); return step, data position
    and the count of non-finite steps in a row."""
    saved_decays = [float(d) for d in read_trainer_state(path).get("ema_decays", ema.decays)]
    fresh = [d for d in ema.decays if d not in saved_decays]
    if saved_decays != ema.decays:  # load the decays both runs have; new ones start from the resumed weights
        state["ema"] = ema.state_dict_for(saved_decays)
        log.warning("trainer.ema changed on resume (%s -> %s): %s from %s, %s from the resumed weights", saved_decays,
                    ema.decays, [d for d in ema.decays if d in saved_decays] or "no EMA", path.name,
                    fresh or "none")
    saved = load_checkpoint(path, state)
    kernel = [(g.get("fused"), g.get("foreach")) for g in optimizer.param_groups]
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
    for g, (fused, foreach) in zip(optimizer.param_groups, kernel):  # the kernel is this run's choice, not the
        g["fused"], g["foreach"] = fused, foreach                     # checkpoint's (an older one had no fused)
    ema.restart(model, fresh)
    step = int(saved["step"])
    if int(saved.get("seed", seed)) != seed:
        log.warning("resuming a run trained with seed %s under seed %s: later steps differ from the original run",
                    saved.get("seed"), seed)
    if int(saved.get("batch_size", opts.batch_size)) != opts.batch_size:
        log.warning("batch_size changed on resume (%s -> %s)", saved.get("batch_size"), opts.batch_size)
    log.info("resumed from %s at step %d (was %d rank(s), now %d)", path, step, saved.get("world_size", 1),
             info.world_size)
    return step, DataPosition(**saved["data"]), int(saved.get("nonfinite_in_row", 0))


def _preview_settings(cfg: DictConfig, opts: TrainerOptions) -> dict[str, Any]:
    """Sampler, grid and sample options for previews: the run's sampler/schedule groups when present."""
    sampler = cfg.get("sampler")
    name = opts.preview_sampler or (sampler.get("name") if sampler is not None else None) or "heun"
    sampler_options = _container(sampler.get("options")) if sampler is not None and not opts.preview_sampler else None
    grid = instantiate(cfg.schedule) if cfg.get("schedule") is not None else None
    options = config_options(cfg)
    return {"sampler": name, "grid": grid, "sampler_options": sampler_options or {}, "options": options}


def _log_row(runlog: RunLog, window: _Window, step: int, epoch: int, lr: float, batch_size: int) -> None:
    elapsed = time.perf_counter() - window.t
    good = window.steps - window.skipped
    runlog.row({"step": step, "epoch": epoch, "loss": window.loss / max(window.n, 1), "lr": lr,
                "grad_norm": window.norm / max(good, 1), "samples_per_s": batch_size * window.steps / max(elapsed, 1e-9),
                "skipped": window.skipped, "elapsed_s": round(elapsed, 3)})
    window.loss, window.n, window.steps, window.skipped, window.norm = 0.0, 0, 0, 0, 0.0
    window.t = time.perf_counter()


def _report_nonfinite(step: int, draws: list, bad_loss: float, norm: float, in_row: int, opts: TrainerOptions,
                      info: DistInfo, runlog: RunLog, last_ckpt: Path | None) -> None:
    """Log a skipped step with the noise levels involved; stop the run after max_nonfinite in a row."""
    local = []
    for out in draws:
        per, sigma = out.per_sample.float().cpu(), out.sigma.float().cpu()
        bad = ~torch.isfinite(per)
        chosen = sigma[bad] if bad.any() else sigma
        local.extend(round(s, 5) for s in chosen.tolist())
    per_rank = _gather(local, info)
    what = f"non-finite loss in {int(bad_loss)} micro-batch(es)" if bad_loss else f"non-finite gradient norm ({norm})"
    sig = "; ".join(f"rank {r}: sigma {s[:8]}{' ...' if len(s) > 8 else ''}" for r, s in enumerate(per_rank))
    msg = f"step {step}: {what}; optimizer step skipped ({in_row} in a row); noise levels involved: {sig}"
    if info.is_main:
        log.warning(msg)
    if in_row >= opts.max_nonfinite:
        hint = f" The last good checkpoint is {last_ckpt}." if last_ckpt else ""
        raise FloatingPointError(
            f"training stopped at step {step}: {in_row} steps in a row had a non-finite loss or gradient "
            f"(trainer.max_nonfinite={opts.max_nonfinite}). Last: {what}; {sig}. The weights were not updated by "
            f"these steps; look for NaN/inf in the data or the network, or lower trainer.lr ({opts.lr}).{hint}")


__all__ = ["train", "fit", "TrainResult", "TrainerOptions"]
