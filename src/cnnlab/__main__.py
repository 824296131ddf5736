"""`python -m cnnlab`: the `cnnlab` command, the console script's entry (pyproject.toml
[project.scripts]). The dispatcher imports torch only for a command that needs it, so
`python -m cnnlab --help` starts as fast as `cnnlab --help`."""

from cnnlab.cli import entry

if __name__ == "__main__":
    entry()
