"""Training: one config, one loop, one run directory.

config and loop (`train`), checkpoint (atomic safetensors), distributed (DDP under torchrun),
evaluate (accuracy, TTA, predict) and rundir (the one owner of a run directory's files).
"""

from cnnlab.train.loop import (
    ConfigError,
    TrainConfig,
    TrainingDiverged,
    TrainingInterrupted,
    autocast_dtype,
    bf16_supported,
    cpu_name,
    learning_rate,
    machine,
    make_optimizer,
    train,
)

__all__ = [
    "ConfigError",
    "TrainConfig",
    "TrainingDiverged",
    "TrainingInterrupted",
    "autocast_dtype",
    "bf16_supported",
    "cpu_name",
    "learning_rate",
    "machine",
    "make_optimizer",
    "train",
]
