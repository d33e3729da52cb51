"""Test helper, run as a script (alone or under torchrun): compose configs/train.yaml with the
overrides given on the command line, train, and write this rank's raw and EMA weights to
<run_dir>/ranks/rank<R>.safetensors so a test can compare the ranks."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # core and tests.training.training_domains


def compose_train(overrides: list[str], hydra: bool = False):
    """configs/train.yaml with overrides, as `diffsuite train` composes it."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return compose(config_name="train", overrides=overrides, return_hydra_config=hydra)


def main(overrides: list[str]) -> None:
    torch.set_num_threads(1)
    from safetensors.torch import save_file

    from diffsuite.core.training import fit

    result = fit(compose_train(overrides))
    rank = int(__import__("os").environ.get("RANK", "0"))
    local = lambda t: (t.to_local() if hasattr(t, "to_local") else t).detach().cpu().contiguous()  # noqa: E731 FSDP shard
    weights = {f"raw.{k}": local(v) for k, v in result.model.state_dict().items()}
    for i, shadow in enumerate(result.ema.shadows):
        weights.update({f"ema{i}.{k}": local(v) for k, v in shadow.items()})
    out = result.run_dir / "ranks"
    out.mkdir(exist_ok=True)
    save_file(weights, str(out / f"rank{rank}.safetensors"), metadata={"step": str(result.step),
                                                                     "stopped_by": str(result.stopped_by)})


if __name__ == "__main__":
    main(sys.argv[1:])
