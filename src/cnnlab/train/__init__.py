"""Training: one config, one loop, one run directory.

config (TrainConfig, a reason per knob; schedule, optimizer, precision), fp32_layers (the
layers that stay fp32 within bf16 on the CPU), loop (`train`),
state (the loop's named state), inputs (the model and data of a run, checked), datanotes
(what the data given means for the run, said after it), measure (each
epoch's metrics row, the final test accuracy), norm_stats (BatchNorm statistics recomputed
for the evaluated weights), guard (divergence, Ctrl-C/SIGTERM), checkpoint (atomic
safetensors), resume, distributed (DDP under torchrun), evaluate (accuracy, TTA, predict),
source (models from the user's code), importing (a run for a model trained elsewhere),
run_files (a run directory's file names, hashes and record readers), rundir (writes a run)
and run (opens one: `load_run`).

    from cnnlab.train import import_run, load_run, parse_model_ref, train
    result = train(MyNet(), "digits", "runs/mine")    # any nn.Module, a spec or a preset
    run = load_run("runs/mine", model=MyNet())         # run.model, run.preprocess, run.dataset

Names load on first use (PEP 562, as the `cnnlab` package): `cnnlab train --help` builds its
options from `config.TrainConfig` without the seconds of torch's import the loop brings.
"""

from importlib import import_module

from cnnlab.errors import ConfigError, RankLost, TrainingDiverged

# Functions and classes loaded on first use, by name -> module path.
_OBJECTS = {
    "TrainConfig": "cnnlab.train.config",
    "autocast_dtype": "cnnlab.train.config",
    "bf16_supported": "cnnlab.train.config",
    "learning_rate": "cnnlab.train.config",
    "make_optimizer": "cnnlab.train.config",
    "cpu_name": "cnnlab.train.distributed",
    "machine": "cnnlab.train.distributed",
    "import_run": "cnnlab.train.importing",
    "TrainingInterrupted": "cnnlab.train.loop",
    "train": "cnnlab.train.loop",
    "Run": "cnnlab.train.rundir",
    "load_run": "cnnlab.train.rundir",
    "parse_model_ref": "cnnlab.train.source",
}

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


def __getattr__(name: str):
    if name in _OBJECTS:
        return getattr(import_module(_OBJECTS[name]), name)
    raise AttributeError(f"module 'cnnlab.train' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The lazy names too, so tab completion and introspection still list them."""
    return sorted({*globals(), *__all__})
