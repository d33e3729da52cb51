"""The trainer's parts: data positions across world sizes, seeds, LR schedule, EMA, options,
configs, parallelize, streaming data and the export it writes."""

from __future__ import annotations

import math
import os

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn
from torch.utils.data import TensorDataset

from diffsuite.core.training import fit
from diffsuite.core.training.data import ResumableDistributedSampler
from diffsuite.core.training.distributed import DistInfo, derive_seed, slurm_environment
from diffsuite.core.training.ema import EMA
from diffsuite.core.training.export import build_from_export
from diffsuite.core.training.lr import lr_factor
from diffsuite.core.training.options import TrainerOptions
from diffsuite.core.training.parallelize import ParallelOptions, find_blocks, parallelize
from tests.training.run_trainer import compose_train

BASE = ["trainer=debug", "domain.preset=tiny", "domain.train_size=600", "trainer.progress=false",
        "trainer.batch_size=16", "trainer.lr=3e-3"]


def _consume(n: int, world: int, micro: int, start: int, steps: int, epoch: int = 0) -> list[list[int]]:
    """Indices each rank reads in `steps` micro-batches from position `start`."""
    ds = TensorDataset(torch.arange(n))
    out = []
    for r in range(world):
        s = ResumableDistributedSampler(ds, num_replicas=world, rank=r, seed=7, micro_batch=micro)
        s.set_position(epoch, start)
        out.append(list(s)[: steps * micro])
    return out


@pytest.mark.parametrize("world,micro,new_world,new_micro", [(2, 4, 1, 8), (1, 6, 3, 2), (3, 2, 2, 3)])
def test_data_position_is_a_prefix_of_one_permutation_on_any_world_size(world, micro, new_world, new_micro):
    n = 97
    perm = ResumableDistributedSampler(TensorDataset(torch.arange(n)), num_replicas=1, rank=0, seed=7,
                                       micro_batch=1).permutation()
    first = _consume(n, world, micro, 0, steps=5)
    seen = sorted(i for r in first for i in r)
    assert seen == sorted(perm[: 5 * micro * world])  # consumed = a prefix, whatever the sharding
    assert len(set(seen)) == len(seen)  # no example twice within a step
    rest = _consume(n, new_world, new_micro, start=len(seen), steps=10**6)  # resume elsewhere
    again = [i for r in rest for i in r]
    assert not set(again) & set(seen)
    assert len({len(r) for r in rest}) == 1  # every rank gets the same number of micro-batches
    assert n - len(seen) - len(again) < new_world * new_micro  # only a remainder smaller than a step is left


def test_each_rank_and_step_draws_its_own_seed():
    seeds = {derive_seed(0, step, rank, m) for step in range(50) for rank in range(4) for m in range(2)}
    assert len(seeds) == 400 and all(0 <= s < 2**63 for s in seeds)
    assert derive_seed(0, 3, 1, 0) == derive_seed(0, 3, 1, 0) != derive_seed(1, 3, 1, 0)


def test_lr_schedule_warms_up_then_decays():
    f = lambda s, d: lr_factor(s, steps=100, warmup=10, decay=d, min_ratio=0.1)  # noqa: E731
    assert [f(s, "cosine") for s in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert f(10, "cosine") == pytest.approx(1.0) and f(100, "cosine") == pytest.approx(0.1)
    assert f(55, "linear") == pytest.approx(0.55) and f(99, "constant") == 1.0
    assert f(39, "rsqrt") == pytest.approx(0.5)
    cos = [f(s, "cosine") for s in range(10, 101)]
    assert all(a >= b for a, b in zip(cos, cos[1:]))
    with pytest.raises(ValueError, match="decay must be"):
        lr_factor(50, steps=100, warmup=10, decay="exp", min_ratio=0.1)


def test_ema_follows_the_weights_at_each_decay():
    net = nn.Linear(3, 2)
    ema = EMA(net, [0.5, 0.9], warmup=False)
    start = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    ema.update(net, step=0)
    for decay, shadow in zip(ema.decays, ema.shadows):
        assert torch.allclose(shadow["weight"], start + (1 - decay))
    full = ema.full_weights(net, 1)
    assert set(full) == set(net.state_dict()) and torch.allclose(full["weight"], start + 0.1)
    with pytest.raises(ValueError, match="decays must lie"):
        EMA(net, [1.0])


def test_bad_options_are_refused_by_name():
    with pytest.raises(ValueError, match=r"unknown trainer option\(s\) \['step'\]"):
        TrainerOptions.from_config({"step": 10})
    with pytest.raises(ValueError, match="batch_size=30 .* multiple of 4"):
        TrainerOptions.from_config({"batch_size": 30, "grad_accum": 2}).micro_batch(2)
    with pytest.raises(ValueError, match="cond_dropout"):
        TrainerOptions.from_config({"cond_dropout": 1.5})


@pytest.mark.parametrize("trainer", ["default", "debug"])
def test_trainer_configs_compose_and_check(trainer):
    cfg = compose_train([f"trainer={trainer}"])
    opts = TrainerOptions.from_config(cfg.trainer)
    assert opts.micro_batch(1) == opts.batch_size


def test_parallelize_keeps_parameter_names_and_results():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ModuleList([nn.Linear(8, 8), nn.Linear(8, 8)]))
    assert len(find_blocks(net)) == 2
    names = [n for n, _ in net.named_parameters()]
    alone = DistInfo(0, 1, 0, torch.device("cpu"), False)
    x = torch.randn(5, 4, requires_grad=True)

    def run(m):
        h = m[0](x)
        for b in m[1]:
            h = h + b(h)
        return h

    ref = run(net)
    ref.sum().backward()
    g_ref = x.grad.clone()
    x.grad = None
    out = parallelize(net, ParallelOptions(activation_checkpointing=True), alone)
    assert out is net and [n for n, _ in net.named_parameters()] == names
    y = run(net)
    y.sum().backward()
    assert torch.allclose(y, ref) and torch.allclose(x.grad, g_ref)


def test_compile_covers_every_block_of_one_class_at_many_widths(monkeypatch):
    """Blocks of one class share their forward's code, of which dynamo keeps 8 compiled versions by
    default: a U-Net's blocks at 12 widths ran the last ones eagerly. parallelize raises the limit."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    class Block(nn.Module):
        def __init__(self, a, b):
            super().__init__()
            self.lin = nn.Linear(a, b)

        def forward(self, x):
            return torch.tanh(self.lin(x))

    compile_ = nn.Module.compile
    monkeypatch.setattr(nn.Module, "compile", lambda self, **kw: compile_(self, backend="eager"))  # fast; same guards
    monkeypatch.setattr(torch._dynamo.config, "recompile_limit", 8)
    torch._dynamo.reset()
    counters.clear()
    blocks = nn.ModuleList(Block(2 + i, 3 + i) for i in range(12))
    parallelize(nn.Sequential(blocks), ParallelOptions(compile=True), DistInfo(0, 1, 0, torch.device("cpu"), False))
    h = torch.randn(3, 2)
    for b in blocks:
        h = b(h)
    assert counters["stats"]["unique_graphs"] == 12  # every width compiled, none left to eager
    torch._dynamo.reset()


def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    run = [*BASE, "trainer.steps=12", "trainer.checkpoint_every=0"]
    a, b, c = (fit(compose_train([*run, f"seed={s}", f"run_dir={tmp_path / n}"]))
               for n, s in (("a", 3), ("b", 3), ("c", 4)))
    wa, wb, wc = (r.model.state_dict() for r in (a, b, c))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def test_exported_weights_are_the_ema_and_rebuild_the_denoiser(tmp_path):
    r = fit(compose_train([*BASE, "trainer.steps=15", "trainer.ema=[0.9,0.99]", "trainer.tensorboard=true",
                           "trainer.preview_every=15", "trainer.preview_n=32", "trainer.preview_steps=8",
                           f"run_dir={tmp_path}"]))
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert (tmp_path / "previews" / "step_00000015" / "samples.png").is_file()
    assert r.export == tmp_path / "export" / "weights.safetensors"
    assert (tmp_path / "export" / "weights_ema0.99.safetensors").is_file()
    domain, denoiser, config = build_from_export(r.export)
    assert domain.name == "toy" and config["step"] == 15 and config["ema_decay"] == 0.9
    for k, v in denoiser.state_dict().items():
        assert torch.equal(v, r.ema.shadows[0][k]), k
    x = torch.randn(4, 2)
    assert denoiser(x, torch.full((4,), 0.5), {"class": torch.zeros(4, dtype=torch.long)}).shape == (4, 2)
    again = fit(compose_train([*BASE, "trainer.steps=15", "trainer.ema=[0.9,0.99]", f"run_dir={tmp_path}"]))
    assert again.export == r.export and again.step == 15  # finished run: nothing redone, nothing overwritten


def test_streaming_dataset_with_workers_and_accumulation_trains(tmp_path):
    run = [*BASE, "domain._target_=tests.training.training_domains.StreamingToyDomain", "trainer.num_workers=2",
           "trainer.grad_accum=2", "trainer.log_every=10", "trainer.steps=60"]
    r = fit(compose_train([*run, f"run_dir={tmp_path / 'a'}"]))
    rows = (tmp_path / "a" / "log.csv").read_text().splitlines()[1:]
    losses = [float(row.split(",")[2]) for row in rows]
    assert r.step == 60 and all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]


def test_slurm_example_selects_the_submitit_launcher():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")  # the optional [slurm] extra
    cfg = compose_train(["experiment=slurm_example"], hydra=True)
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.hydra.launcher.nodes * cfg.hydra.launcher.tasks_per_node == 8
    assert cfg.resume == "auto" and "${now" not in OmegaConf.to_container(cfg)["run_dir"]  # requeue finds it
    TrainerOptions.from_config(cfg.trainer)


def test_a_slurm_task_becomes_a_rank(monkeypatch):
    pytest.importorskip("submitit")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "LOCAL_WORLD_SIZE"):
        monkeypatch.setenv(k, "unset")  # recorded, so the values slurm_environment writes are undone
        monkeypatch.delenv(k)
    slurm = {"SUBMITIT_EXECUTOR": "slurm", "SLURM_NTASKS": "8", "SLURM_PROCID": "5", "SLURM_LOCALID": "1",
             "SLURM_JOB_NODELIST": "gpu[3-4]", "SLURM_JOB_NUM_NODES": "2", "SLURM_NNODES": "2",
             "SLURM_JOB_ID": "4242", "SLURM_NODEID": "1"}
    for k, v in slurm.items():
        monkeypatch.setenv(k, v)
    slurm_environment()
    assert (os.environ["RANK"], os.environ["WORLD_SIZE"], os.environ["LOCAL_RANK"]) == ("5", "8", "1")
    assert os.environ["MASTER_ADDR"] == "gpu3"
    monkeypatch.undo()
    assert "WORLD_SIZE" not in os.environ or os.environ["WORLD_SIZE"] != "8"


def test_adamw_takes_the_fused_kernel_on_a_cpu_and_matches_the_loop():
    from diffsuite.core.training.trainer import adamw

    torch.manual_seed(0)
    a = [nn.Parameter(torch.randn(5, 3)), nn.Parameter(torch.randn(3))]
    b = [nn.Parameter(p.detach().clone()) for p in a]
    fused = adamw(a, lr=1e-2, weight_decay=0.1)
    loop = torch.optim.AdamW(b, lr=1e-2, weight_decay=0.1, foreach=False)
    assert fused.param_groups[0]["fused"] is True
    for i in range(5):
        g = [torch.randn_like(p) for p in a]
        for p, q, gi in zip(a, b, g):
            p.grad, q.grad = gi.clone(), gi.clone()
        fused.step()
        loop.step()
    for p, q in zip(a, b):
        torch.testing.assert_close(p, q)


def test_a_resumed_run_keeps_its_own_optimizer_kernel(tmp_path, monkeypatch):
    # a checkpoint written by the per-tensor loop (as before the fused kernel) resumes on the fused one
    import diffsuite.core.training.trainer as T

    made = []
    plain = T.adamw
    monkeypatch.setattr(T, "adamw", lambda params, **kw: torch.optim.AdamW(params, foreach=False, **kw))
    run = [*BASE, f"run_dir={tmp_path}", "trainer.checkpoint_every=5"]
    fit(compose_train([*run, "trainer.steps=5"]))
    monkeypatch.setattr(T, "adamw", lambda params, **kw: made.append(plain(params, **kw)) or made[-1])
    r = fit(compose_train([*run, "trainer.steps=8"]))
    assert r.resumed_from is not None and r.step == 8
    assert [g["fused"] for g in made[0].param_groups] == [True] * len(made[0].param_groups)
