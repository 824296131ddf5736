"""A write killed between its temp file and the rename (SIGKILL: no moment to clean up) left
`.<name>.tmp-<pid>@<host>` beside the file for good outside a run directory (the explorer's
caches, report.html). The next write of the same file removes the temp files of processes
gone from this machine, and keeps a living process's (it may be writing) and another
machine's (its PID means nothing here). Truth: a real killed child's write."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

from cnnlab.train.checkpoint import atomic_write

KILLED_MID_WRITE = """
import os, sys, time
from pathlib import Path
import cnnlab.train.checkpoint as c
def stall(file, data):
    file.write(data[:3]); file.flush(); print("writing", flush=True); time.sleep(60)
c._write_all = stall
c.atomic_write(Path(sys.argv[1]), b"new bytes")
"""


def test_a_killed_writes_temp_file_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "top-0.json"
    target.write_bytes(b"old")
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_MID_WRITE, str(target)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout.readline() == "writing\n"
    host = socket.gethostname()
    orphan = tmp_path / f".top-0.json.tmp-{child.pid}@{host}"
    assert orphan.read_bytes() == b"new"  # the half-written temp file of the child
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert orphan.exists() and target.read_bytes() == b"old"  # the kill cleaned nothing
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        living = tmp_path / f".top-0.json.tmp-{sleeper.pid}@{host}"
        living.write_bytes(b"in progress")
        other = tmp_path / f".top-1.json.tmp-{child.pid}@{host}"
        other.write_bytes(b"another file's")
        elsewhere = tmp_path / f".top-0.json.tmp-{child.pid}@not-{host}"
        elsewhere.write_bytes(b"another machine's")
        atomic_write(target, b"fresh")
        assert target.read_bytes() == b"fresh"
        assert not orphan.exists()  # its process is gone
        assert living.exists() and other.exists() and elsewhere.exists()
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            ["top-0.json", living.name, other.name, elsewhere.name]
        )
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_name_with_glob_characters_touches_only_its_own_temp_files(tmp_path):
    target = tmp_path / "a[1].json"
    look_alike = tmp_path / f".a1.json.tmp-999999999@{socket.gethostname()}"
    look_alike.write_bytes(b"x")  # matched by the pattern '.a[1].json.tmp-*' unescaped
    atomic_write(target, b"y")
    assert target.read_bytes() == b"y"
    assert sorted(os.listdir(tmp_path)) == sorted([target.name, look_alike.name])
