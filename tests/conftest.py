"""Fixtures shared by the test modules: one thread for tiny models, the explorer's run, app
and server, and the quick lab started with the session."""

from __future__ import annotations

import signal

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def ctrl_c_honoured():
    """Ctrl-C as an interactive shell's run has it. A suite started in the background of a
    script inherits SIGINT ignored, which Python and `cnnlab train` keep ignored (their
    rule, tested in test_train_sigint_ignored.py with children started so); the tests that
    send themselves SIGINT, and their children, need it answered."""
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run faster on one thread (and do not fight other processes for cores); a
    module asks for it with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# The explorer's run, app and server (explorer_runs.py), for the modules that test them; a
# module that needs another run defines its own fixture of the same name.


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """The explorer's tiny run: bf16, trained for one epoch on 2 × 20 images of a folder named
    with HTML."""
    from explorer_runs import shapes_run

    # bf16 (on any CPU): the explorer must predict in the run's precision, as eval does
    return shapes_run(tmp_path_factory.mktemp("explorer"), 20,
                      batch_size=16, val_fraction=0.1, precision="bf16")  # fmt: skip


@pytest.fixture(scope="module")
def client(run_dir):
    """The explorer's app on `run_dir`, driven in process."""
    from fastapi.testclient import TestClient

    from cnnlab.explorer import create_app

    return TestClient(create_app(run_dir))


@pytest.fixture(scope="module")
def server(client):
    """The URL of a real uvicorn server for `client`'s app (explorer_runs.serving)."""
    from explorer_runs import serving

    with serving(client.app) as url:
        yield url


# The quick lab (test_lab_quick.py) is one child process of about 140 s of CPU on one torch
# thread, during which the test process would only wait. When that module is among the tests
# chosen, the lab starts with the session, niced so that it takes the spare core without
# slowing the tests beside it, and the module's `lab` fixture waits for it: the same command
# and the same checks, overlapped with the rest of the suite.

QUICK_LAB_MODULE = "test_lab_quick.py"


class BackgroundLab:
    """`cnnlab lab --quick --out DIR` in a child process, drained by a thread (its output
    never fills a pipe); `result()` waits: (returncode, seconds, stdout, stderr)."""

    def __init__(self, out):
        import subprocess
        import sys
        import threading
        import time

        self.out = out
        self._start = time.perf_counter()
        self._done = threading.Event()
        self.proc = subprocess.Popen(
            # nice(1), not preexec_fn: that runs Python between fork and exec, unsafe in a
            # process with threads (pytest's)
            ["nice", "-n", "10", sys.executable, "-m", "cnnlab.cli", "lab", "--quick"]
            + ["--out", str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

        def drain():
            self._stdout, self._stderr = self.proc.communicate()
            self._seconds = time.perf_counter() - self._start
            self._done.set()

        threading.Thread(target=drain, daemon=True).start()

    def result(self, timeout: float) -> tuple[int, float, str, str]:
        if not self._done.wait(timeout):
            self.stop()
            raise TimeoutError(f"the quick lab did not finish in {timeout} s")
        return self.proc.returncode, self._seconds, self._stdout, self._stderr

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self._done.wait(30)


@pytest.fixture(scope="session", autouse=True)
def quick_lab_started(request, tmp_path_factory):
    """The quick lab, started at the session's first test when test_lab_quick.py's tests are
    among those chosen (else None); killed at the session's end if still running."""
    if not any(item.path.name == QUICK_LAB_MODULE for item in request.session.items):
        yield None
        return
    lab = BackgroundLab(tmp_path_factory.mktemp("lab"))
    yield lab
    lab.stop()
