"""A CRNN whose conv columns are read sequence-first, (W, B, C·H), by an nn.LSTM, nn.GRU or
nn.MultiheadAttention without batch_first (as for CTC): the default probes left the sequence
layer out without a word, `probe --layers rnn` refused it ('gives 4 rows for 256 images'),
and where the batch size equalled the sequence's length (W = 4 images) it read the 4
columns as the 4 images. Now the images' axis is found (inspect.batch_axes: the axis whose
size follows the batch's) and moved first. Truth: torch's own output of the layer, its batch
axis moved first by torch, its hidden units second (`out.permute(1, 2, 0)`), and the batch_first
twin network."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab import explain
from cnnlab.explain.probe import extract_features, probed_layers

pytestmark = pytest.mark.usefixtures("one_thread")


class CRNN(nn.Module):
    """conv → (W, B, C·H) columns (B, W, C·H with batch_first) → sequence layer → head."""

    def __init__(self, kind: str = "lstm", batch_first: bool = False) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, 4, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2))
        self.kind, self.batch_first = kind, batch_first
        if kind == "mha":
            self.rnn = nn.MultiheadAttention(16, 2, batch_first=batch_first)
        else:
            self.rnn = getattr(nn, kind.upper())(16, 12, batch_first=batch_first)
        self.head = nn.Linear(16 if kind == "mha" else 12, 3)

    def columns(self, x):
        f = self.conv(x)  # (B, 4, 4, W=4)
        order = (0, 3, 1, 2) if self.batch_first else (3, 0, 1, 2)
        return f.permute(order).flatten(2)

    def sequence(self, x):
        """The sequence layer's own output, as torch documents it (the tuple's first item)."""
        seq = self.columns(x)
        return (self.rnn(seq, seq, seq) if self.kind == "mha" else self.rnn(seq))[0]

    def forward(self, x):
        out = self.sequence(x)
        return self.head(out[:, -1] if self.batch_first else out[-1])


def _data(n: int = 24):
    torch.manual_seed(1)
    return torch.randn(n, 1, 8, 8), torch.randint(0, 3, (n,))


def _twins(kind: str) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    seq = CRNN(kind).eval()
    first = CRNN(kind, batch_first=True).eval()
    first.load_state_dict(seq.state_dict())
    return seq, first


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("batch_size", [256, 4])  # 4: the batch is as long as the sequence
def test_a_sequence_first_rnns_features_are_its_output_images_first(kind, batch_size):
    model, _ = _twins(kind)
    x, y = _data()
    got, labels = extract_features(model, (x, y), ["rnn"], batch_size=batch_size, cap=10**6)
    with torch.no_grad():
        truth = model.sequence(x)  # (T, B, H)
    assert truth.shape[1] == len(x) and truth.shape[0] != len(x)
    assert torch.equal(labels, y)
    # images first, hidden units as the channels (test_walk_cmd_probe_recurrent)
    assert torch.allclose(got["rnn"], truth.permute(1, 2, 0).flatten(1), atol=1e-6)


def test_a_sequence_first_attentions_features_are_its_tokens_images_first():
    model, _ = _twins("mha")
    x, y = _data()
    got, _ = extract_features(model, (x, y), ["rnn"], cap=10**6)
    with torch.no_grad():
        truth = model.sequence(x)  # (L, B, C); its channels read first, as batch_first's are
    assert torch.allclose(got["rnn"], truth.permute(1, 2, 0).flatten(1), atol=1e-5)


@pytest.mark.parametrize("kind", ["lstm", "gru", "mha"])
def test_probes_of_a_sequence_first_layer_are_its_batch_first_twins(kind):
    model, twin = _twins(kind)
    x, y = _data(40)
    with torch.no_grad():
        assert torch.allclose(model(x), twin(x), atol=1e-5)  # the same network
    train, test = (x[:28], y[:28]), (x[28:], y[28:])
    got = explain.linear_probe(model, train, test, epochs=5)
    truth = explain.linear_probe(twin, train, test, epochs=5)
    assert list(got) == ["input", "conv.0", "conv.1", "conv.2", "rnn", "head"] == list(truth)
    assert got == pytest.approx(truth, abs=1e-6)


@pytest.mark.parametrize("kind", ["lstm", "mha"])
def test_activation_maximisation_of_a_sequence_first_layer_is_its_twins(kind):
    model, twin = _twins(kind)
    x, _ = _data(8)
    opts = dict(steps=4, restarts=2, data=x)
    got = explain.activation_maximization(model, "rnn", [0, 2, 3], **opts)
    truth = explain.activation_maximization(twin, "rnn", [0, 2, 3], **opts)
    assert torch.allclose(got.images, truth.images, atol=1e-5)
    assert torch.allclose(got.activation, truth.activation, atol=1e-5)
    assert torch.allclose(got.data_max, truth.data_max, atol=1e-5)


class Windows(nn.Module):
    """(B, C, 8, 8) → its four 4×4 windows as rows, (4·B, C, 4, 4): no row per image."""

    def forward(self, f):
        b, c = f.shape[:2]
        return f.unfold(2, 4, 4).unfold(3, 4, 4).permute(0, 2, 3, 1, 4, 5).reshape(-1, c, 4, 4)


class Windowed(CRNN):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 1, 1)
        self.win = Windows()

    def forward(self, x):
        rows = self.win(self.stem(x))  # (4·B, 1, 4, 4)
        x = rows.reshape(len(x), 4, 4, 4).permute(0, 2, 1, 3).reshape(len(x), 1, 8, 8)
        return super().forward(x)


def test_the_layer_choice_names_the_blocks_it_leaves_out_with_their_shapes():
    from cnnlab.explain.probe import probe_layer_choice
    from cnnlab.inspect import batch_axes

    torch.manual_seed(0)
    model = Windowed().eval()
    x, _ = _data(2)
    shapes = {}
    hooks = [
        m.register_forward_hook(lambda m, i, o, n=n: shapes.setdefault(n, o))
        for n, m in model.named_children()
    ]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    out = shapes["rnn"][0]
    # torch: `win` has 4 rows per image, `rnn` its images on axis 1
    assert shapes["win"].shape[0] == 4 * len(x) and out.shape[1] == len(x)
    choice = probe_layer_choice(model, x)
    assert choice.left_out == {"win": tuple(shapes["win"].shape)}
    assert choice.layers == ["stem", "conv.0", "conv.1", "conv.2", "rnn", "head"]
    assert probed_layers(model, x) == ["input", *choice.layers]
    assert batch_axes(model, x) == {"rnn": 1}


def test_an_attention_holding_most_weights_is_probed_whole():
    """An nn.MultiheadAttention with over 90 % of the weights was opened as a wrapper, to its
    out_proj, whose weight it uses but which it never calls: no row for it at all."""
    torch.manual_seed(0)
    model = CRNN("mha").eval()
    model.conv[0] = nn.Conv2d(1, 4, 1)  # a tiny stem: the attention holds > 90 %
    share = sum(p.numel() for p in model.rnn.parameters()) / sum(
        p.numel() for p in model.parameters()
    )
    fired = []
    model.rnn.out_proj.register_forward_hook(lambda *a: fired.append(1))
    x, y = _data(40)
    with torch.no_grad():
        model(x)
    assert share > 0.9 and not fired  # torch: out_proj is never called as a module
    got = explain.linear_probe(model, (x[:28], y[:28]), (x[28:], y[28:]), epochs=3)
    assert list(got) == ["input", "conv.0", "conv.1", "conv.2", "rnn", "head"]
