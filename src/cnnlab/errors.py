"""The errors cnnlab raises on bad input. The CLI prints them as one line and exits 2."""


class CnnlabError(ValueError):
    """Base of every error caused by the user's input (spec, data, run directory, option).

    A ValueError too, so `except ValueError` around a cnnlab call catches every bad input."""


class SpecError(CnnlabError, ValueError):
    """An architecture spec is malformed or describes an impossible network."""


class DataError(CnnlabError, ValueError):
    """A data set cannot be found, read or used (the message names the file)."""


class RunError(CnnlabError, ValueError):
    """A run directory is missing, incomplete or inconsistent."""
