"""The explain and diagnose functions given what a practitioner naturally gives them by
mistake: each is one error naming the fix, or the right result, checked against torch's own
ops, scikit-learn or the call that was meant."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from cnnlab import explain
from cnnlab.errors import ExplainError

pytestmark = pytest.mark.usefixtures("one_thread")

MEAN, STD = 0.3, 0.3


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3),
    ).eval()  # fmt: skip


def pixels(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (n, 1, 8, 8) whose class is where they are bright, and the classes."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.randint(0, 60, (n, 1, 8, 8), generator=gen)
    for i, c in enumerate(y.tolist()):
        x[i, 0, :, 2 * c : 2 * c + 3] += 180
    return x.to(torch.uint8), y


def normalise(x: torch.Tensor) -> torch.Tensor:
    return (x.float() / 255 - MEAN) / STD


def test_uint8_images_to_a_probe_are_refused_and_preprocess_is_the_normalised_probe():
    # uint8 was scaled to [0, 1], not normalised: a run's digits net, at chance on such
    # images, probed 88 % at its head where its own inputs give 97 %, with no word
    model, train, test = net(), pixels(60, 0), pixels(30, 1)
    with pytest.raises(ExplainError, match=r"got torch.uint8 .*pass preprocess="):
        explain.linear_probe(model, train, test, epochs=5)
    told = explain.linear_probe(model, train, test, epochs=5, preprocess=normalise)
    meant = explain.linear_probe(
        model, (normalise(train[0]), train[1]), (normalise(test[0]), test[1]), epochs=5
    )
    assert told == meant


def test_uint8_data_for_activation_maximization_is_refused():
    x, _ = pixels(8, 0)
    with pytest.raises(ExplainError, match=r"got torch.uint8 .*pass preprocess="):
        explain.activation_maximization(net(), "1", [0], steps=1, data=x)
    told = explain.activation_maximization(net(), "1", [0], steps=1, data=x, preprocess=normalise)
    meant = explain.activation_maximization(net(), "1", [0], steps=1, data=normalise(x))
    assert torch.equal(told.images, meant.images) and torch.equal(told.data_max, meant.data_max)


def probe(train, test) -> dict[str, float]:
    return explain.linear_probe(net(), train, test, epochs=5)


def test_boolean_and_complex_labels_are_told_the_fix_and_the_fix_probes():
    # complex labels raised torch's 'min is not supported for complex' from the message
    (x, y), (xt, yt) = pixels(60, 0), pixels(30, 1)
    x, xt, yb = normalise(x), normalise(xt), y == 1  # one class against the rest
    with pytest.raises(ExplainError, match=r"got booleans; give y\.long\(\)"):
        probe((x, yb), (xt, yt == 1))
    told = probe((x, yb.long()), (xt, (yt == 1).long()))
    meant = probe((x, torch.where(y == 1, 1, 0)), (xt, torch.where(yt == 1, 1, 0)))
    assert told == meant
    with pytest.raises(ExplainError, match="got torch.complex64; give the integer class"):
        probe((x, y.to(torch.complex64)), (xt, yt))


def test_labels_given_as_whole_floats_or_numpy_probe_as_class_indices():
    (x, y), test = pixels(60, 0), pixels(30, 1)
    x = normalise(x)
    test = (normalise(test[0]), test[1])
    meant = probe((x, y), test)
    assert probe((x, y.float()), test) == meant  # as scikit-learn takes 0.0, 1.0, 2.0
    assert probe((x, y.numpy()), (test[0], test[1].numpy())) == meant  # numpy: not 'no labels'


@pytest.mark.parametrize(
    "labels, told",
    [
        (lambda y: nn.functional.one_hot(y, 3), r"got shape \(60, 3\); give y\.argmax\(1\)"),
        (lambda y: nn.functional.one_hot(y, 3).float(), r"give y\.argmax\(1\) \(one-hot rows\)"),
        (lambda y: y[:, None], r"got shape \(60, 1\); give y\.reshape\(-1\)"),
        # truncated by .long(): the probe scored 0.5 as class 0, with no word
        (lambda y: y.float() / 2, "got the fractional label 0.5"),
        # every probe scored 100 %
        (lambda y: torch.zeros_like(y), "at least 2 classes in the training labels"),
    ],
)
def test_labels_that_are_no_class_indices_are_told_the_fix(labels, told):
    # one-hot and column labels were told 'linear probes need labels: pass (images, labels)'
    (x, y), test = pixels(60, 0), pixels(30, 1)
    with pytest.raises(ExplainError, match=told):
        probe((normalise(x), labels(y)), (normalise(test[0]), test[1]))


def by_hand_saliency(model: nn.Module, x: torch.Tensor, target=None) -> torch.Tensor:
    """max over channels of |∂ logit_target / ∂ x| (None: the predicted class), autograd's."""
    x = x.detach().requires_grad_()
    logits = model(x)
    target = logits.argmax(1) if target is None else target
    logits.gather(1, target[:, None]).sum().backward()
    return x.grad.abs().amax(1)


SHAPES = {  # what was given, what the error tells, how to follow it
    "one grey (H, W) image": (lambda x: x[0, 0], r"x\[None, None\]", lambda x: x[None, None]),
    # told x.unsqueeze(0): (1, B, H, W), B channels for a 1-channel net
    "grey (B, H, W) images": (lambda x: x[:, 0], r"x\.unsqueeze\(1\)", lambda x: x.unsqueeze(1)),
    "(B, H, W, C) images": (
        lambda x: x.permute(0, 2, 3, 1),
        r"look channels-last .* x\.permute\(0, 3, 1, 2\)",
        lambda x: x.permute(0, 3, 1, 2),
    ),
}


@pytest.mark.parametrize("given", SHAPES)
def test_images_of_a_common_other_shape_are_told_the_fix_that_works(given):
    shape, told, follow = SHAPES[given]
    model, x = net(), normalise(pixels(4, 0)[0])
    if given == "(B, H, W, C) images":  # a 3-channel net: torch counts the height as channels
        model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 36, 3)).eval()
        x = x.expand(-1, 3, -1, -1).contiguous()
    wrong = shape(x)
    with pytest.raises(ExplainError, match=told):
        explain.saliency(model, wrong)
    expected = by_hand_saliency(model, x[:1] if given.startswith("one") else x)
    torch.testing.assert_close(explain.saliency(model, follow(wrong)), expected)


def test_actmax_takes_one_channel_as_an_int_and_refuses_fractions_and_a_reversed_range():
    # an int raised TypeError 'int' object is not iterable; 1.5 was cast to channel 1; a
    # (high, low) range clamped every pixel to one value, with no word
    model, run = net(), explain.activation_maximization
    one = run(model, "1", 3, steps=2, input_size=(1, 8, 8))
    meant = run(model, "1", [3], steps=2, input_size=(1, 8, 8))
    assert one.channels == (3,) and torch.equal(one.images, meant.images)
    with pytest.raises(ExplainError, match=r"whole channel indices, got \[1.5\]"):
        run(model, "1", [1.5], steps=2, input_size=(1, 8, 8))
    with pytest.raises(ExplainError, match=r"low < high, got \(1, -1\)"):
        run(model, "1", [0], steps=2, input_size=(1, 8, 8), value_range=(1, -1))


PAIR = (torch.randn(6, 1, 8, 8), torch.arange(6) % 2)
LAYER_CALLS = {
    "gradcam": lambda m, layer: explain.gradcam(m, torch.randn(2, 1, 8, 8), layer=layer),
    "feature_maps": lambda m, layer: explain.feature_maps(m, torch.randn(2, 1, 8, 8), [layer]),
    "effective_receptive_field": lambda m, layer: explain.effective_receptive_field(
        m, layer, (1, 8, 8), n=1
    ),
    "activation_maximization": lambda m, layer: explain.activation_maximization(
        m, layer, [0], steps=1, input_size=(1, 8, 8)
    ),
    "linear_probe": lambda m, layer: explain.linear_probe(m, PAIR, PAIR, layers=[layer], epochs=1),
}


@pytest.mark.parametrize("call", LAYER_CALLS)
def test_a_sequential_index_given_as_an_int_is_told_its_str_name(call):
    # 'unknown layer 2; valid layer names: 0, 1, 2, 3, ...': 2 among them
    with pytest.raises(ExplainError, match=r"layer 2 is given as int; .* give '2'"):
        LAYER_CALLS[call](net(), 2)
    LAYER_CALLS[call](net(), "2")  # as told


@pytest.mark.parametrize("dtype", [torch.long, torch.float32])
def test_one_hot_targets_are_told_argmax(dtype):
    # told 'target has 6 entries for a batch of 2 images' (long), or to give integer class
    # indices (float), whose .long() then has 6 entries
    model, x = net(), torch.randn(2, 1, 8, 8)
    target = torch.tensor([2, 0])
    onehot = nn.functional.one_hot(target, 3).to(dtype)
    for call in (explain.saliency, explain.gradcam):
        with pytest.raises(
            ExplainError, match=r"shape \(2, 3\), a one-hot row per image; give target\.argmax\(1\)"
        ):
            call(model, x, target=onehot)
    told = explain.saliency(model, x, target=onehot.argmax(1))
    torch.testing.assert_close(told, by_hand_saliency(model, x, target))


def test_overlay_shows_a_normalised_image_as_its_pixels_and_refuses_an_unscaled_map():
    # both were clamped to [0, 1]: the model's input lost its darks and lights, a map above 1
    # its peaks
    model, raw = net(), pixels(2, 0)[0]
    x = normalise(raw)
    cam = explain.gradcam(model, x)
    shown = raw.float() / 255
    shown = (shown - shown.amin((1, 2, 3), keepdim=True)) / (
        shown.amax((1, 2, 3), keepdim=True) - shown.amin((1, 2, 3), keepdim=True)
    )
    torch.testing.assert_close(explain.overlay(x, cam), explain.overlay(shown, cam))
    with pytest.raises(ExplainError, match=r"heatmap in \[0, 1\], as gradcam gives, got .* to 4"):
        explain.overlay(raw, cam * 4)


def generator(x: torch.Tensor, y: torch.Tensor):
    """(x, y) in two batches, from a generator: iterable once."""
    half = len(x) // 2
    yield from [(x[:half], y[:half]), (x[half:], y[half:])]


def test_a_generator_of_training_batches_is_probed_whole():
    # its first batch, read to choose the layers, was not put back: the probe was fitted on
    # the second half of the training images alone
    gen = torch.Generator().manual_seed(0)
    (x, y), (xt, yt) = pixels(60, 0), pixels(30, 1)
    x = normalise(x) + 4 * torch.randn(x.shape, generator=gen)  # each image counts
    xt = normalise(xt) + 4 * torch.randn(xt.shape, generator=gen)
    meant = probe([(x[:30], y[:30]), (x[30:], y[30:])], (xt, yt))
    assert meant != probe((x[30:], y[30:]), (xt, yt))  # the second half alone
    assert probe(generator(x, y), generator(xt, yt)) == meant


def test_activation_maximization_compares_with_every_batch_of_a_generator():
    # the first batch set the value range and was lost to the data's maxima
    x = normalise(pixels(8, 0)[0])
    x[:4] *= 3  # the strongest activations are in the first batch
    meant = explain.activation_maximization(net(), "1", [0, 1], steps=2, data=x)
    given = explain.activation_maximization(
        net(), "1", [0, 1], steps=2, data=generator(x, torch.zeros(8))
    )
    assert torch.equal(given.data_max, meant.data_max)
    assert torch.equal(given.images, meant.images)


class FeaturesAndLogits(nn.Module):
    """Returns (features (B, 8), logits (B, 3)): output=0 reads as 8-class logits."""

    def __init__(self) -> None:
        super().__init__()
        self.body, self.head = net()[:6], net()[6]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x)
        return features, self.head(features)


def test_a_tuple_output_is_told_with_the_shape_of_each_item():
    # 'pass output= (an index or a function)' alone: the features' index looked as good
    model, x = FeaturesAndLogits().eval(), torch.randn(2, 1, 8, 8)
    with pytest.raises(ExplainError, match=r"to pick the logits \(it holds 0: 2×8, 1: 2×3\)"):
        explain.saliency(model, x)
    expected = by_hand_saliency(lambda images: model(images)[1], x)
    torch.testing.assert_close(explain.saliency(model, x, output=1), expected)


@pytest.mark.parametrize("flat", [False, True])
def test_every_shape_fix_the_refusal_names_passes_the_check(flat):
    """Each x... fix named for a tensor check_images refuses, run as written (C, H, W: the
    model's 1, 8, 8), gives images it takes: a 1-D tensor was told x.flatten(0, -4), which
    raises IndexError; an empty (0, W) batch x[None, None], still empty."""
    from cnnlab.inspect import check_images

    given = [torch.randn(64), torch.randn(1, 2, 1, 8, 8), torch.randn(8, 8), torch.randn(2, 8, 8)]
    for x in given[:1] if flat else given:  # flat takes any (B, ...) of 2 dims or more
        with pytest.raises(ExplainError) as refused:
            check_images(x, flat=flat)
        fixes = re.findall(r"x(?:\.\w+\([^)]*\)|\[[^\]]*\])", str(refused.value))
        assert fixes, str(refused.value)
        for fix in fixes:
            check_images(eval(fix.replace("C, H, W", "1, 8, 8"), {"x": x}), flat=flat)
    for empty in (torch.zeros(0, 8), torch.zeros(0, 1, 8, 8))[0 if flat else 1 :]:
        with pytest.raises(ExplainError, match="the batch is empty"):
            check_images(empty, flat=flat)
    with pytest.raises(ExplainError, match="a single number is no image"):
        check_images(torch.tensor(1.0), flat=flat)
