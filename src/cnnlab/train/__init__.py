"""Training: one config, one loop, one run directory.

config (TrainConfig, a reason per knob; schedule, optimizer, precision), fp32_layers (the
layers that stay fp32 within bf16 on the CPU), loop (`train`),
state (the loop's named state), inputs (the model and data of a run, checked), measure (each
epoch's metrics row, the final test accuracy), norm_stats (BatchNorm statistics recomputed
for the evaluated weights), guard (divergence, Ctrl-C/SIGTERM), checkpoint (atomic
safetensors), resume, distributed (DDP under torchrun), evaluate (accuracy, TTA, predict),
source (models from the user's code), importing (a run for a model trained elsewhere),
run_files (a run directory's file names, hashes and record readers), rundir (writes a run)
and run (opens one: `load_run`).

    from cnnlab.train import import_run, load_run, parse_model_ref, train
    result = train(MyNet(), "digits", "runs/mine")    # any nn.Module, a spec or a preset
    run = load_run("runs/mine", model=MyNet())         # run.model, run.preprocess, run.dataset
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
from cnnlab.train.importing import import_run
from cnnlab.train.loop import TrainingInterrupted, train
from cnnlab.train.rundir import Run, load_run
from cnnlab.train.source import parse_model_ref

__all__ = [
    "ConfigError",
    "RankLost",
    "Run",
    "TrainConfig",
    "TrainingDiverged",
    "TrainingInterrupted",
    "autocast_dtype",
    "bf16_supported",
    "cpu_name",
    "import_run",
    "learning_rate",
    "load_run",
    "machine",
    "make_optimizer",
    "parse_model_ref",
    "train",
]
