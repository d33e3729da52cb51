"""Test helper, run under torchrun with 2 processes (gloo): for each network named on the command
line, the loss and gradients of one full batch in one process, against FSDP2 (``fully_shard`` on
the blocks ``find_blocks`` names and on the root) with each rank taking half the batch. Rank 0
writes the differences to <out>/fsdp.json."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main(out: Path, names: list[str]) -> None:
    torch.set_num_threads(1)
    import torch.distributed as dist
    from torch.distributed.fsdp import FSDPModule

    from diffsuite.core.training.distributed import setup_distributed, teardown_distributed
    from diffsuite.core.training.ema import full_tensor
    from diffsuite.core.training.parallelize import ParallelOptions, find_blocks, parallelize
    from tests.training.parallel_networks import build

    info = setup_distributed("cpu")
    assert info.world_size == 2
    report = {}
    try:
        for name in names:
            model, loss = build(name)
            ref = copy.deepcopy(model)
            ref_loss = loss(ref)
            ref_loss.backward()
            blocks = find_blocks(model)
            sharded = parallelize(model, ParallelOptions(parallel="fsdp"), info)
            half = 2  # build() draws a batch of 4: rank r takes rows 2r, 2r + 1
            mine = loss(sharded, slice(info.rank * half, (info.rank + 1) * half))
            mine.backward()
            total = mine.detach().clone()
            dist.all_reduce(total)
            grads = dict(ref.named_parameters())
            worst = 0.0
            for n, p in model.named_parameters():
                if p.grad is None:
                    continue
                g, r = full_tensor(p.grad), grads[n].grad
                worst = max(worst, ((g - r).abs().max() / r.abs().max().clamp_min(1e-12)).item())
            report[name] = {"loss_1": ref_loss.item(), "loss_fsdp": total.item() / 2, "grad_rel_diff": worst,
                            "blocks": len(blocks), "sharded_blocks": sum(isinstance(b, FSDPModule) for b in blocks)}
        # both ranks finish every collective before either tears gloo down: once in a CI run rank 0
        # aborted at teardown ("terminate called without an active exception") after all checks passed
        dist.barrier()
    finally:
        teardown_distributed(info)
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "fsdp.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
