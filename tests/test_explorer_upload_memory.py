"""An upload leaves no file behind, even when the server is killed while it reads one: the
bytes are held in an anonymous memory file, not a temporary file. Truth: the temporary
directory's listing after a SIGKILL."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys

import numpy as np
from PIL import Image

KILLED_MIDWAY = """
import os, signal, sys
import numpy as np
from cnnlab.explorer import upload
from tests_png import png

def killed(paths, shape):  # the server killed while the upload is being read
    os.kill(os.getpid(), signal.SIGKILL)

upload.read_for_run = killed
upload.read_upload(png, "photo.png", (1, 28, 28))
"""


def test_a_server_killed_while_reading_an_upload_leaves_no_file(tmp_path):
    """A forced stop in the middle of a read left /tmp/cnnlab-upload-XXXX behind."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(buffer, format="PNG")
    (tmp_path / "tests_png.py").write_text(f"png = {buffer.getvalue()!r}\n")
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", KILLED_MIDWAY], env=env, timeout=120)
    assert done.returncode == -signal.SIGKILL
    assert list(tmp.iterdir()) == []
