"""`cnnlab serve --host` naming no address of this machine is told to change the host, not the
port: a name that resolves to nothing ('not.a.host') was a warning that anyone could reach
the explorer, then 'Name or service not known; choose another --port'; an address this
machine lacks said 'choose another --port' too. Truth: the resolver's and the kernel's
refusals (getaddrinfo, bind's EADDRNOTAVAIL)."""

from __future__ import annotations

import errno
import socket

import pytest

import cnnlab.explorer
from cnnlab.cli import main
from cnnlab.cli.serve import _bind_fix

FIX = "give --host an address of this machine (127.0.0.1, or 0.0.0.0 for all of them)"


@pytest.fixture
def made(monkeypatch) -> list:
    """The apps made: none, as a refused host is said before the run is loaded."""
    apps: list = []
    monkeypatch.setattr(cnnlab.explorer, "create_app", lambda run: apps.append(run))
    return apps


@pytest.mark.parametrize("host", ["host.invalid", "a..b"])
def test_a_host_that_resolves_to_nothing_is_one_line_naming_the_host(tmp_path, capsys, made, host):
    with pytest.raises((socket.gaierror, UnicodeError)):  # the resolver's own refusal
        socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)
    assert main(["serve", str(tmp_path), "--host", host, "--port", "0"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"cnnlab serve: error: --host {host}: "), err
    assert err[0].endswith(FIX) and made == []


def test_an_address_this_machine_lacks_is_told_to_change_the_host(tmp_path, capsys, made):
    probe = socket.socket()
    with pytest.raises(OSError) as refused:  # TEST-NET-3: the kernel's own refusal
        probe.bind(("203.0.113.7", 0))
    probe.close()
    assert refused.value.errno == errno.EADDRNOTAVAIL
    assert main(["serve", str(tmp_path), "--host", "203.0.113.7", "--port", "0"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("warning: binding 203.0.113.7")  # said before binding, as before
    assert err[1] == (
        "cnnlab serve: error: cannot bind 203.0.113.7:0: Cannot assign requested address; " + FIX
    )


@pytest.mark.parametrize(
    ("code", "port", "fix"),
    [
        (errno.EADDRINUSE, 8000, "choose another --port"),
        (errno.EACCES, 80, "ports below 1024 need privileges: choose --port 1024 or above"),
        (errno.EACCES, 8000, "choose another --port"),
        (errno.EADDRNOTAVAIL, 8000, FIX),
    ],
)
def test_each_refusal_names_what_to_change(code, port, fix):
    assert _bind_fix(OSError(code, "refused"), port).startswith(fix)
