"""A model whose outputs are already probabilities (a final softmax or sigmoid) trained with
cross-entropy, which applies log-softmax itself: training crawls and nothing said why. The
first step's logits are looked at (`guard.probability_note`) and the run says it in a note;
ordinary nets, a zero-initialised head and log-probabilities get none."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnlab
from cnnlab.cli import main
from cnnlab.train import TrainConfig, train
from cnnlab.train.guard import MIN_ROWS, loss_floor, probability_note
from test_summary_zoo import make

SAID = "the model's outputs on the first batch are probabilities, not logits"
CONFIG = TrainConfig(epochs=2, batch_size=32, precision="fp32")


class Standardise(nn.Module):
    """Each image to mean 0, std 1: zero images give 0/0, so the check before training
    (a forward of zero images, whose rows it tests for summing to 1) does not see a final
    softmax; the first step's logits do."""

    def forward(self, x):
        return (x - x.mean((1, 2, 3), keepdim=True)) / x.std((1, 2, 3), keepdim=True)


class Ended(nn.Module):
    """`body`'s outputs through `end` in forward (torch.sigmoid as a function, not a layer),
    then a `.view` that hides it behind a reshape."""

    def __init__(self, body: nn.Module, end) -> None:
        super().__init__()
        self.body, self.end = body, end

    def forward(self, x):
        y = self.body(x)
        y = y if isinstance(y, torch.Tensor) else y.logits  # Hugging Face's output object
        return self.end(y).view(len(y), -1)


def net(end: nn.Module | None = None) -> nn.Module:
    torch.manual_seed(0)
    layers = [Standardise(), nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)]
    return nn.Sequential(*layers, *([end] if end is not None else []))


@pytest.fixture(scope="module")
def plain():
    torch.manual_seed(0)
    return train(net(), "digits", config=CONFIG)


@pytest.mark.parametrize(
    ("end", "made"),
    [
        (nn.Softmax(1), "every row is ≥ 0 and sums to 1, as a final softmax makes them"),
        (nn.Sigmoid(), "every value lies between 0 and 1, as a final sigmoid makes them"),
    ],
    ids=["softmax", "sigmoid"],
)
def test_a_probability_end_is_noted_and_indeed_trains_worse(plain, end, made):
    """The note names what the outputs look like and the fix; the same net without the end
    learns better (53.8 % on digits after 2 epochs; softmax 8.6 %, sigmoid 24.5 %), and its
    loss stays above the floor the note states, ln(1 + 9/e) for 10 classes."""
    torch.manual_seed(0)
    result = train(net(end), "digits", config=CONFIG)
    (note,) = [n for n in result["notes"] if SAID in n]
    assert made in note
    kind = "softmax" if isinstance(end, nn.Softmax) else "sigmoid"
    assert f"Remove the final {kind} and return the logits" in note
    assert "Cross-entropy applies log-softmax itself" in note
    assert "apply softmax when predicting" in note
    assert f"ln(1 + 9/e) = {loss_floor(10):.3f}" in note
    assert result["test_acc"] < plain["test_acc"] - 0.2
    assert result["train_loss"] >= loss_floor(10)


def test_the_floor_is_cross_entropys_of_the_widest_gap_probabilities_allow():
    """ln(1 + (K − 1)/e) is torch's cross-entropy of one output 1 and the rest 0, the most
    confident outputs in [0, 1] can be; any other such row scores higher."""
    for k in (2, 10, 1000):
        best = torch.zeros(1, k)
        best[0, 0] = 1
        assert F.cross_entropy(best, torch.tensor([0])).item() == pytest.approx(loss_floor(k))
        other = torch.rand(64, k)
        assert (F.cross_entropy(other, other.argmax(1), reduction="none") >= loss_floor(k)).all()


def test_a_sigmoid_in_forward_behind_a_view_is_noted():
    """Also where bf16 rounds a sigmoid's value to exactly 1: it is still between 0 and 1."""
    saturated = torch.sigmoid(torch.tensor([[8.0, -1.0]], requires_grad=True)).bfloat16()
    assert saturated[0, 0] == 1
    (note,) = probability_note(saturated, torch.bfloat16)
    assert "between 0 and 1" in note and "(values 0.27 to 1)" in note
    torch.manual_seed(0)
    model = Ended(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), torch.sigmoid)
    result = train(model, "digits", config=TrainConfig(epochs=1, batch_size=32))
    assert any(SAID in n and "final sigmoid" in n for n in result["notes"])


def test_log_softmax_and_plain_nets_get_no_note(plain):
    """Log-probabilities (≤ 0) are not the matter: cross-entropy of log_softmax outputs is
    that of the logits, so the run is the same run, to the last digit."""
    torch.manual_seed(0)
    result = train(net(nn.LogSoftmax(1)), "digits", config=CONFIG)
    assert result["test_acc"] == plain["test_acc"]
    for notes in (result["notes"], plain["notes"]):
        assert not any(SAID in n for n in notes)


def test_the_command_prints_the_note(tmp_path, capsys):
    code = tmp_path / "nets.py"
    code.write_text(
        "from torch import nn\n\n\ndef make():\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10), nn.Sigmoid())\n"
    )
    out = tmp_path / "run"
    args = ["--data", "digits", "--epochs", "1", "--batch-size", "32", "--quiet"]
    assert main(["train", "--model", f"{code}:make", *args, "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert f"note: {SAID}" in said and "Remove the final sigmoid" in said


def first_logits(model: nn.Module, shape, batch: int = 16, seed: int = 0) -> torch.Tensor:
    """The model's outputs as a first training step has them: train mode, gradients on."""
    x = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(seed))
    out = model.train()(x)
    return out if isinstance(out, torch.Tensor) else out.logits


def zero_head() -> nn.Module:
    head = nn.Linear(16, 10)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head
    )


@pytest.mark.parametrize("name", cnnlab.preset_names())
def test_no_preset_at_random_init_is_noted_and_each_with_a_softmax_or_sigmoid_is(name):
    spec = cnnlab.load_spec(name)
    for seed in range(3):
        torch.manual_seed(seed)
        model = cnnlab.build(spec)
        shape = tuple(spec.input)
        assert probability_note(first_logits(model, shape, seed=seed)) == []
        for end in (torch.sigmoid, lambda y: y.softmax(1)):
            assert probability_note(first_logits(Ended(model, end), shape, seed=seed))
        assert (
            probability_note(first_logits(Ended(model, lambda y: F.log_softmax(y, 1)), shape)) == []
        )


@pytest.mark.parametrize(
    "name", ["squeezenet", "shufflenet-v2", "ghostnet", "mobilenet-v3", "hf-dinov2", "hf-resnet"]
)
def test_zoo_models_at_random_init_are_not_noted(name):
    """SqueezeNet ends in ReLU + GAP (outputs ≥ 0); the small Dinov2's 2 outputs all lie in
    (0.05, 0.25) at seed 0, which values alone would read as a sigmoid's."""
    pytest.importorskip("transformers")
    model, shape = make(name)
    logits = first_logits(model, shape, batch=4)
    assert probability_note(logits) == []
    if name == "hf-dinov2":
        assert ((logits > 0.05) & (logits < 0.25)).all()
    assert probability_note(first_logits(Ended(model, torch.sigmoid), shape, batch=4))
    assert probability_note(first_logits(Ended(model, lambda y: y.softmax(1)), shape, batch=4))


def test_a_zero_initialised_head_is_not_noted_and_under_a_softmax_it_is():
    """All-zero logits are neither ≥ 0 rows summing to 1 nor made by a sigmoid; through a
    softmax they are 1/K each, and through a sigmoid 0.5 each."""
    assert probability_note(first_logits(zero_head(), (1, 8, 8))) == []
    for end in (torch.sigmoid, lambda y: y.softmax(1)):
        assert probability_note(first_logits(Ended(zero_head(), end), (1, 8, 8)))


def test_a_hidden_softmax_is_told_by_its_values_on_enough_rows():
    """exp/sum (or a compiled model) leaves no softmax node: rows summing to 1 then tell it,
    on MIN_ROWS rows or more, where chance cannot make them all sum to 1."""
    z = torch.randn(MIN_ROWS, 10, requires_grad=True)
    hand = z.exp() / z.exp().sum(1, keepdim=True)
    assert probability_note(hand)
    assert probability_note(hand[:2]) == []
    assert probability_note(torch.sigmoid(z).detach()) == []  # values alone: no sigmoid


def test_bf16_probabilities_are_told_within_bf16s_rounding():
    """Under bf16 autocast a softmax's rows sum to 1 only within bf16's rounding (up to 0.003
    measured), not float32's, also when the model returns them as float32."""
    torch.manual_seed(0)
    linear = nn.Linear(32, 1000)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        probabilities = linear(torch.randn(16, 32) * 3).softmax(1).float()
    assert (probabilities.sum(1) - 1).abs().max() > 1e-4
    assert probability_note(probabilities, torch.bfloat16)
