"""Parallelism reaches every network of every domain: FSDP2 over 2 real processes gives the loss
and gradients of one process, and activation checkpointing the gradients of a plain backward,
with every block recomputed."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from diffsuite.core.training.distributed import DistInfo
from diffsuite.core.training.parallelize import ParallelOptions, find_blocks, parallelize
from tests.training.parallel_networks import IDS, build

SCRIPT = Path(__file__).with_name("run_parallel_check.py")
ALONE = DistInfo(0, 1, 0, torch.device("cpu"), False)


@pytest.fixture(scope="module")
def fsdp_report(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("fsdp")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(SCRIPT), str(out),
           *IDS]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return json.loads((out / "fsdp.json").read_text())


@pytest.mark.parametrize("name", IDS)
def test_fsdp_on_two_processes_gives_the_loss_and_gradients_of_one(fsdp_report, name):
    r = fsdp_report[name]
    assert r["blocks"] >= 2 and r["sharded_blocks"] == r["blocks"], r
    assert r["loss_fsdp"] == pytest.approx(r["loss_1"], rel=1e-5), r
    assert r["grad_rel_diff"] < 1e-4, r


@pytest.mark.parametrize("name", IDS)
def test_activation_checkpointing_recomputes_every_block_and_keeps_the_gradients(name):
    model, loss = build(name)
    ref = copy.deepcopy(model)
    loss(ref).backward()
    blocks = find_blocks(model)
    parallelize(model, ParallelOptions(activation_checkpointing=True), ALONE)
    calls = [0] * len(blocks)
    for i, b in enumerate(blocks):
        b.register_forward_pre_hook(lambda *_, i=i: calls.__setitem__(i, calls[i] + 1))
    loss(model).backward()
    assert calls == [2] * len(blocks), f"forward calls per block (2 = recomputed in backward): {calls}"
    grads = dict(ref.named_parameters())
    for n, p in model.named_parameters():
        if grads[n].grad is None:
            assert p.grad is None, n
            continue
        torch.testing.assert_close(p.grad, grads[n].grad, rtol=1e-5, atol=1e-7, msg=n)


def test_audio_unet_blocks_are_its_residual_and_attention_blocks():
    """The U-Net holds its blocks in lists of lists, beside convolutions and Identity: none of those
    is a block, every ResBlock is."""
    from diffsuite.domains.audio.unet import AttentionBlock, ResBlock

    model, _ = build("audio_unet")
    blocks = find_blocks(model)
    res = [m for m in model.modules() if isinstance(m, ResBlock)]
    assert {id(b) for b in blocks} == {id(m) for m in model.modules() if isinstance(m, (ResBlock, AttentionBlock))}
    assert len(res) >= 6


def test_without_named_blocks_the_leaves_of_nested_lists_are_found():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.levels = torch.nn.ModuleList([torch.nn.ModuleList([torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)]),
                                               torch.nn.ModuleList([torch.nn.Linear(2, 2)])])
            self.between = torch.nn.ModuleList([torch.nn.Identity(), torch.nn.Identity()])

    net = Net()
    assert find_blocks(net) == [net.levels[0][0], net.levels[0][1], net.levels[1][0]]
