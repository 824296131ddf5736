"""Download path, tested only against a local http.server on 127.0.0.1 serving copies of
Debian's Fashion-MNIST files (never the internet); checksums computed here with hashlib."""

import functools
import hashlib
import http.server
import shutil
import threading
from pathlib import Path

import pytest

from cnnlab.data import FASHION_MNIST_MD5, download_fashion_mnist, fashion_mnist
from cnnlab.errors import DataError

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
NAMES = tuple(FASHION_MNIST_MD5)
pytestmark = pytest.mark.skipif(
    not all((DEBIAN / n).exists() for n in NAMES),
    reason="Debian's dataset-fashion-mnist is not installed (apt-get install it)",
)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(base URL, served directory): the four files plus a corrupted copy under bad/."""
    root = tmp_path_factory.mktemp("www")
    for name in NAMES:
        (root / name).symlink_to(DEBIAN / name)
    (root / "bad").mkdir()
    for name in NAMES:
        shutil.copy(DEBIAN / name, root / "bad" / name)
    corrupt = root / "bad" / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(corrupt.read_bytes())
    data[100] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", root
    server.shutdown()
    server.server_close()


def debian_md5() -> dict[str, str]:
    return {n: hashlib.md5((DEBIAN / n).read_bytes()).hexdigest() for n in NAMES}


def test_download_fetches_verifies_and_loads(served, tmp_path):
    base, _ = served
    dest = download_fashion_mnist(tmp_path / "fm", base, checksums=debian_md5())
    for name in NAMES:
        assert (dest / name).read_bytes() == (DEBIAN / name).read_bytes()
    assert not list(dest.glob(".*part"))  # no temporary file left behind
    assert len(fashion_mnist("test", root=dest)) == 10000


def test_fashion_mnist_download_flag_fills_an_empty_root(served, tmp_path):
    base, _ = served
    ds = fashion_mnist(
        "test", tmp_path / "new", download=True, base_url=base, checksums=debian_md5()
    )
    assert ds.images.shape == (10000, 1, 28, 28)


def test_corrupted_file_fails_md5_and_is_not_kept(served, tmp_path):
    base, _ = served
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz is corrupt: MD5") as e:
        download_fashion_mnist(tmp_path, base + "bad/", checksums=debian_md5())
    assert debian_md5()["t10k-labels-idx1-ubyte.gz"] in str(e.value)
    # the option it names is the one `cnnlab data` has
    assert "--url" in str(e.value) and "--base-url" not in str(e.value)
    assert not (tmp_path / "t10k-labels-idx1-ubyte.gz").exists()
    assert not list(tmp_path.glob(".*part"))


def test_official_checksums_reject_debians_recompressed_files(served, tmp_path):
    # Debian re-gzipped the files, so the official MD5s (the default) must not match them.
    base, _ = served
    with pytest.raises(DataError, match="MD5 .* expected 8d4fb7e6c68d591d4c3dfef9ec88bf0d"):
        download_fashion_mnist(tmp_path, base)


def test_http_error_is_a_data_error_naming_the_url(served, tmp_path):
    base, _ = served
    with pytest.raises(DataError, match=r"missing/train-images-idx3-ubyte.gz failed: HTTP 404"):
        download_fashion_mnist(tmp_path, base + "missing/")


def test_existing_good_file_is_not_fetched_again(served, tmp_path):
    base, _ = served
    sums = debian_md5()
    for name in NAMES:
        shutil.copy(DEBIAN / name, tmp_path / name)
    download_fashion_mnist(tmp_path, base + "missing/", checksums=sums)  # would 404 if fetched


def test_unreachable_server_says_how_to_do_without_network(tmp_path):
    import socket

    with socket.socket() as s:  # a port that nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist") as e:
        download_fashion_mnist(tmp_path, f"http://127.0.0.1:{port}/", timeout=5)
    assert f"127.0.0.1:{port}/train-images-idx3-ubyte.gz" in str(e.value)
    assert not list(tmp_path.iterdir())
