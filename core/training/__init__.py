"""The training engine: ``train(cfg) -> run_dir`` for every domain, from one CPU process to many
GPUs on many nodes (torchrun + torch.distributed). See ``trainer.py``."""

from .trainer import TrainResult, fit, train

__all__ = ["train", "fit", "TrainResult"]
