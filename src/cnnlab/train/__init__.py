"""Training: one config, one loop, one run directory.

config (TrainConfig, a reason per knob; schedule, optimizer, precision), loop (`train`),
inputs (the model and data of a run, checked), guard (divergence, Ctrl-C/SIGTERM), checkpoint
(atomic safetensors), resume, distributed (DDP under torchrun), evaluate (accuracy, TTA,
predict), source (models from the user's code) and rundir (the one owner of a run directory).
"""

from cnnlab.errors import ConfigError, RankLost, TrainingDiverged
from cnnlab.train.config import (
    TrainConfig,
    autocast_dtype,
    bf16_supported,
    learning_rate,
    make_optimizer,
)
from cnnlab.train.distributed import cpu_name, machine
from cnnlab.train.loop import TrainingInterrupted, train

__all__ = [
    "ConfigError",
    "RankLost",
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
