"""Every error cnnlab raises on purpose, in one place.

Bad input (a spec, data, run directory, option or model reference the user can fix) is a
`CnnlabError`, also a ValueError; the CLI prints it as one line and exits 2. A training run
that diverged is not bad input: `TrainingDiverged` exits 3 with why and which knob to turn.
Anything else is a bug and keeps its traceback.
"""

EXIT_BAD_INPUT = 2  # a CnnlabError: one line on stderr
EXIT_DIVERGED = 3  # TrainingDiverged: the options were valid, the run blew up
EXIT_RANK_LOST = 4  # RankLost: another DDP rank stopped answering; the checkpoint is intact


class CnnlabError(ValueError):
    """Base of every error caused by the user's input (spec, data, run directory, option).

    A ValueError too, so `except ValueError` around a cnnlab call catches every bad input."""


class SpecError(CnnlabError, ValueError):
    """An architecture spec is malformed or describes an impossible network."""


class DataError(CnnlabError, ValueError):
    """A data set cannot be found, read or used (the message names the file)."""


class RunError(CnnlabError, ValueError):
    """A run directory is missing, incomplete, inconsistent or held by another process."""


class ConfigError(CnnlabError, ValueError):
    """A training option has an impossible value (the message names the option)."""


class ExplainError(CnnlabError, ValueError):
    """Bad input to an explain method: unknown layer, target, image shape or model output."""


class ReportError(CnnlabError, ValueError):
    """A report (or one of its sections) cannot be built; the message names what is missing."""


class TrainingDiverged(RuntimeError):
    """The training loss became NaN/inf or climbed far above where it started.

    Not a CnnlabError (the options were valid input): the CLI exits EXIT_DIVERGED, and the
    message says where it happened, which knob to turn, and what checkpoint is kept."""


class RankLost(RuntimeError):
    """Another rank of a distributed (DDP) run failed or stopped answering: its own error,
    shared with the others after work it did alone (`distributed.together`), or paused,
    killed or out of memory, so a collective timed out after CNNLAB_DDP_TIMEOUT seconds or
    its connection closed. Not a CnnlabError (the input was valid) and a RuntimeError as
    torch's own error was: `cnnlab train` exits EXIT_RANK_LOST with one line naming the rank
    and the knob."""
