"""`cnnlab serve` as a person starts it: a port already taken is said before the run is
loaded. Truth: the kernel's refusal of a second bind, and whether the app was ever made."""

from __future__ import annotations

import socket

import cnnlab.explorer


def test_a_port_in_use_is_said_before_the_run_is_loaded(tmp_path, capsys, monkeypatch):
    """The model was loaded and the test images ranked (seconds to minutes on a real run)
    before the bind said the port was taken."""
    from cnnlab.cli import main

    made = []
    monkeypatch.setattr(cnnlab.explorer, "create_app", lambda run: made.append(run))
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = taken.getsockname()[1]
        assert main(["serve", str(tmp_path), "--port", str(port)]) == 2
    finally:
        taken.close()
    err = capsys.readouterr().err.strip()
    assert made == [] and err.startswith("cnnlab serve: error: cannot bind") and "\n" not in err


def test_a_run_that_cannot_load_frees_the_port(tmp_path, capsys):
    """The port is bound first; a run that fails to load leaves it free for the next try."""
    from cnnlab.cli import main

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    assert main(["serve", str(tmp_path / "none"), "--port", str(port)]) == 2
    assert "not a run directory" in capsys.readouterr().err
    again = socket.socket()
    again.bind(("127.0.0.1", port))  # free: no socket of the failed serve holds it
    again.close()
