"""A download that cannot be written is told the fix its error calls for, against a local
http.server on 127.0.0.1 (never the internet): a full disk to free space, a folder it may not
write to to download elsewhere, a directory in the file's place that it is one. Every one was
told 'free space there', and a complete file that passed its MD5 was called 'partial'."""

from __future__ import annotations

import errno
import functools
import hashlib
import http.server
import io
import os
import threading

import pytest

from cnnlab.data.download import download_file
from cnnlab.errors import DataError

BODY = b"cnnlab" * 2000
MD5 = hashlib.md5(BODY).hexdigest()


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    root = tmp_path_factory.mktemp("www")
    (root / "f.gz").write_bytes(BODY)
    handler = functools.partial(Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/f.gz"
    server.shutdown()
    server.server_close()


def _fails(number):
    def fail(*args, **kwargs):
        raise OSError(number, os.strerror(number))

    return fail


def test_a_directory_in_the_file_s_place_is_said_to_be_one(url, tmp_path):
    dest = tmp_path / "f.gz"
    dest.mkdir()
    with pytest.raises(DataError) as caught:
        download_file(url, dest, MD5, timeout=10)
    said = str(caught.value)
    assert f"{dest} is a directory: move it away" in said
    assert "free space" not in said and "partial" not in said
    assert "complete download was discarded" in said
    assert [p.name for p in tmp_path.iterdir()] == ["f.gz"]


@pytest.mark.parametrize("number", [errno.EACCES, errno.EROFS, errno.EPERM])
def test_a_folder_it_may_not_write_to_is_told_to_download_elsewhere(
    url, tmp_path, monkeypatch, number
):
    """The rename into a folder made read-only after the file was fetched and checked."""
    monkeypatch.setattr(os, "replace", _fails(number))
    with pytest.raises(DataError) as caught:
        download_file(url, tmp_path / "f.gz", MD5, timeout=10)
    said = str(caught.value)
    assert "download into a directory you can write to (cnnlab data fashion-mnist " in said
    assert "free space" not in said and "partial" not in said
    assert list(tmp_path.iterdir()) == []


def test_a_folder_it_cannot_create_a_file_in_is_told_to_download_elsewhere(url, tmp_path):
    (tmp_path / "not-a-dir").write_text("a file")
    with pytest.raises(DataError) as caught:
        download_file(url, tmp_path / "not-a-dir" / "f.gz", MD5, timeout=10)
    assert "free space" not in str(caught.value)


class FullDisk(io.FileIO):
    def write(self, data):
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))


def test_a_quota_reached_while_writing_is_told_to_free_space(url, tmp_path, monkeypatch):
    monkeypatch.setattr(os, "fdopen", lambda fd, mode: FullDisk(fd, "wb"))
    with pytest.raises(DataError) as caught:
        download_file(url, tmp_path / "f.gz", MD5, timeout=10)
    said = str(caught.value)
    assert "the partial file was discarded: free space there" in said
    assert list(tmp_path.iterdir()) == []
