"""A download whose reply stops early or is no HTTP, served by a socket on 127.0.0.1 (never
the internet): one DataError naming the URL, no file left behind."""

from __future__ import annotations

import errno
import io
import os
import socket
import threading

import pytest

from cnnlab.cli import main
from cnnlab.data.download import download_file
from cnnlab.errors import DataError

REPLIES = {
    # a chunked reply whose connection closes inside the stream: http.client's IncompleteRead
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n" + b"x" * 4096,
    # 5,000 of the 100,000 bytes announced, then the connection closes
    "short": b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 5000,
    "garbage": b"this is no HTTP reply\r\n\r\n",
}


@pytest.fixture
def serve():
    """serve(kind) -> base URL of a socket answering every request with REPLIES[kind]."""
    sockets = []

    def start(kind: str) -> str:
        listener = socket.create_server(("127.0.0.1", 0))
        sockets.append(listener)

        def answer():
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                with conn:
                    conn.recv(65536)
                    conn.sendall(REPLIES[kind])

        threading.Thread(target=answer, daemon=True).start()
        return f"http://127.0.0.1:{listener.getsockname()[1]}/"

    yield start
    for listener in sockets:
        listener.close()


@pytest.mark.parametrize(
    ("kind", "said"),
    [
        ("chunked", "was cut off after 4,096 bytes"),
        ("short", "was cut off after 5,000 of 100,000 bytes"),
        ("garbage", "failed"),
    ],
)
def test_a_reply_cut_off_or_not_http_is_one_data_error(serve, tmp_path, kind, said):
    url = serve(kind) + "f.gz"
    with pytest.raises(DataError, match=said) as caught:
        download_file(url, tmp_path / "f.gz", md5="0" * 32, timeout=5)
    assert url in str(caught.value)
    assert list(tmp_path.iterdir()) == []  # neither the file nor its .part


def test_cnnlab_data_download_cut_off_is_one_line_exit_2(serve, tmp_path, capsys):
    base = serve("chunked")
    code = main(["data", "fashion-mnist", "--download", str(tmp_path / "fm"), "--url", base])
    err = capsys.readouterr().err
    assert code == 2
    assert "cut off" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_directory_where_the_file_goes_is_one_data_error(tmp_path):
    """It was IsADirectoryError as a traceback, after the whole download."""
    source = tmp_path / "source.bin"
    source.write_bytes(b"x" * 5000)
    (tmp_path / "out" / "f.gz").mkdir(parents=True)
    with pytest.raises(DataError, match=r"cannot write .*f\.gz \(Is a directory\)"):
        download_file(source.as_uri(), tmp_path / "out" / "f.gz")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["f.gz"]  # no .part left


def full(*args):
    raise OSError(errno.ENOSPC, "No space left on device")


class FullDisk(io.FileIO):
    def write(self, data):
        full()


@pytest.mark.parametrize("where", ["write", "fsync"])
def test_a_full_disk_is_said_as_such_not_as_a_network_error(tmp_path, monkeypatch, where):
    """A full disk was 'download of URL failed (No space left on device); without a
    network, install ...'."""
    source = tmp_path / "source.bin"
    source.write_bytes(b"x" * 5000)
    if where == "write":
        monkeypatch.setattr(os, "fdopen", lambda fd, mode: FullDisk(fd, "wb"))
    else:
        monkeypatch.setattr(os, "fsync", full)
    dest = tmp_path / "new" / "f.gz"
    with pytest.raises(DataError, match="cannot write .*No space left on device") as caught:
        download_file(source.as_uri(), dest)
    assert "network" not in str(caught.value)
    assert list(dest.parent.iterdir()) == []
