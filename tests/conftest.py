"""Fixtures shared by the test modules: one thread for tiny models, and the explorer's run,
app and server."""

from __future__ import annotations

import pytest
import torch


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
