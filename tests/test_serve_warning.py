"""`cnnlab serve` on another host warns of the port it binds, not of the 0 it was given."""


def test_serve_warning_names_no_port_0(run_dir, capsys):
    """`cnnlab serve RUN --host 0.0.0.0 --port 0` warned of "port 0" and then bound 43167."""
    from cnnlab.cli import main

    assert main(["serve", str(run_dir), "--host", "203.0.113.7", "--port", "0"]) == 2
    warning = capsys.readouterr().err.splitlines()[0]  # TEST-NET-3: an address this host lacks
    assert warning.startswith("warning: binding 203.0.113.7") and "port 0" not in warning
