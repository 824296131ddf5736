"""The explorer's answers where something is missing, as a person meets them: a mistyped
address in the browser, an image the server no longer keeps (a restart under an open page),
a run imported without --data, a lint of the whole model. Truths: the HTTP status and body,
the summary's own lints.
"""

from __future__ import annotations

import textwrap

import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import save_file

from cnnlab.design.summary import summary
from cnnlab.explorer import create_app
from cnnlab.train.importing import import_run
from cnnlab.train.rundir import load_run
from cnnlab.train.source import parse_model_ref

pytestmark = pytest.mark.usefixtures("one_thread")

# one 3×3 conv before a functional mean: the head sees 3 px of a 28-px input, a lint that no
# row holds (the pooling is no module)
NET = """
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.head = nn.Conv2d(1, 4, 3, padding=1), nn.Linear(4, 3)

        def forward(self, x):
            return self.head(self.conv(x).relu().mean((2, 3)))

    def make_net():
        return Net()
"""


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """A run imported without --data (classes, mean and std given): no test images."""
    tmp = tmp_path_factory.mktemp("imported")
    (tmp / "net.py").write_text(textwrap.dedent(NET))
    source = parse_model_ref(f"{tmp / 'net.py'}:make_net", [])
    torch.manual_seed(0)
    save_file(source.build().state_dict(), tmp / "w.safetensors")
    import_run(source, tmp / "w.safetensors", tmp / "run", None, classes=["a", "b", "c"],
               mean=[0.5], std=[0.25], input_shape=[1, 28, 28])  # fmt: skip
    return tmp / "run"


def test_a_mistyped_address_in_a_browser_gets_a_page_with_the_way_back(client):
    """A browser showed `{"error":"Not Found"}` for /explorer or an old bookmark."""
    r = client.get("/explorer<b>", headers={"Accept": "text/html,application/xhtml+xml"})
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert '<a href="/">' in r.text and "/explorer&lt;b&gt;" in r.text  # the path as text
    assert r.headers["content-security-policy"].startswith("default-src 'self'")


@pytest.mark.parametrize("path", ["/api/no-such-route", "/static/none.js", "/explorer"])
def test_the_api_and_a_script_still_get_json(client, path):
    accept = "text/html" if path != "/explorer" else "application/json"
    r = client.get(path, headers={"Accept": accept})
    assert r.status_code == 404 and r.json() == {"error": "Not Found"}


def test_an_image_no_longer_kept_says_the_page_may_send_it_again(client):
    """The page sends its image again on this answer (a restart forgets every image)."""
    r = client.get("/api/features", params={"image": "0123456789abcdef", "layer": "0"})
    assert r.status_code == 404 and r.json()["resend"] is True
    assert "no longer kept" in r.json()["error"]
    other = client.get("/api/top", params={"layer": "nope", "channel": 0})
    assert "resend" not in other.json()


def test_a_run_without_data_says_so(imported):
    """`data` was the string 'None', which the page showed as 'data None'."""
    client = TestClient(create_app(imported))
    model = client.get("/api/model").json()
    assert model["data"] is None and model["test_images"] == 0


def test_a_lint_of_the_whole_model_keeps_its_layer(imported):
    """A lint tied to no row lost its layer, and the page wrote 'rf-small (undefined)'."""
    run = load_run(imported)
    codes = {(w.layer, w.code) for w in summary(run.model, run.input_shape).warnings}
    assert ("(model)", "rf-small") in codes  # the truth: the summary's own lint
    lints = TestClient(create_app(imported)).get("/api/model").json()["architecture"]["lints"]
    assert {(lint["layer"], lint["code"]) for lint in lints} == codes


CONTAINER = """
    from torch import nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())

        def forward(self, x):
            return self.body(x)

    def make_net():
        return nn.Sequential(Block(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
"""


def test_every_map_layer_has_its_kind(tmp_path):
    """A block whose forward only calls its nn.Sequential has no row in the summary, and the
    page listed its map as '0.body 4×28×28' with no kind. Truth: the modules' own types."""
    (tmp_path / "net.py").write_text(textwrap.dedent(CONTAINER))
    source = parse_model_ref(f"{tmp_path / 'net.py'}:make_net", [])
    net = source.build()
    save_file(net.state_dict(), tmp_path / "w.safetensors")
    import_run(source, tmp_path / "w.safetensors", tmp_path / "run", None, classes=["a", "b"],
               mean=[0.5], std=[0.25], input_shape=[1, 28, 28])  # fmt: skip
    model = TestClient(create_app(tmp_path / "run")).get("/api/model").json()
    truth = {name: type(m).__name__ for name, m in net.named_modules()}
    assert model["kinds"] == {call: truth[call] for call in model["maps"]}
    assert model["kinds"]["0.body"] == "Sequential" and model["kinds"]["0"] == "Block"
