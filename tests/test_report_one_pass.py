"""The report runs its test images through the model once for the linear probes' test features
and the dead units' statistics (they read the same first images, normalised alike, in the same
batches of 256): each part's numbers equal those of its own pass, and the public functions
take the already-read features and statistics with the results of reading them inside."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab import diagnose, explain
from cnnlab.errors import ExplainError
from cnnlab.explain.probe import FeatureReader, extract_features, probed_layers
from cnnlab.inspect import Capture, preserved
from cnnlab.report import Budget
from cnnlab.report import facts as facts_module
from cnnlab.report import shared as shared_module
from cnnlab.report.facts import gather
from cnnlab.report.shared import shared_counts
from cnnlab.train.rundir import load_run

pytestmark = pytest.mark.usefixtures("one_thread")


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(8, 3),
    )  # fmt: skip


def data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g)


def shared(model, x, y, layers, batch=256):
    """Both readers on one forward per batch, as the report runs them."""
    names = probed_layers(model, x[:1], layers)
    reader = FeatureReader(model, names, x[:1])
    rec = diagnose.Recording(model, frozen_check=True)
    forwards = 0
    with rec, reader:
        for start in range(0, len(x), batch):
            xb = x[start : start + batch]
            rec.before(xb)
            model(xb)
            forwards += 1
            rec.add(len(xb))
            reader.read(xb, y[start : start + batch])
    return reader.features(), rec, forwards


def test_probes_and_dead_units_from_one_pass_equal_their_own_passes():
    model, train, (x, y) = net(), data(300, 1), data(600, 2)
    layers = ["2", "5"]
    features, rec, forwards = shared(model, x, y, layers)
    assert forwards == 3  # 600 images in batches of 256
    own = explain.linear_probe(model, train, (x, y), layers=layers, epochs=5)
    given = explain.linear_probe(
        model, train, None, layers=layers, epochs=5, test_features=features
    )
    assert given == own and list(given) == ["input", "2", "5"]
    # the features themselves: equal to extract_features' own pass
    mine, labels = features
    truth, truth_labels = extract_features(model, (x, y), ["input", "2", "5"])
    assert torch.equal(labels, truth_labels)
    assert all(torch.equal(mine[k], truth[k]) for k in truth)
    d_own = diagnose.dead_units(model, x)
    d_given = diagnose.dead_units(model, None, activations=rec)
    assert d_given == d_own and d_given.samples == 600


def test_dead_units_from_a_recording_equal_torchs_own_count():
    model = net()
    with torch.no_grad():
        model[4].bias[:3] = -100.0  # three channels of the second ReLU dead by construction
    x, y = data(300, 3)
    _, rec, _ = shared(model, x, y, ["2", "5"])
    d = diagnose.dead_units(model, None, activations=rec)
    with preserved(model), Capture(model, ["2", "5"]) as cap, torch.no_grad():
        model(x)  # one batch of all: torch's own maps
        truth = {n: (cap.tensor(n).amax((0, 2, 3)) <= 0).sum().item() for n in ("2", "5")}
        sparsity = {n: (cap.tensor(n) <= 0).double().mean().item() for n in ("2", "5")}
    assert {layer.name: layer.dead for layer in d.layers} == truth and truth["5"] >= 3
    for layer in d.layers:
        assert layer.sparsity == pytest.approx(sparsity[layer.name], abs=1e-12)


def test_test_features_of_other_layers_are_refused():
    model, train, test = net(), data(40, 1), data(20, 2)
    features = extract_features(model, test, ["input", "2"])
    with pytest.raises(ExplainError, match="test_features hold the layers"):
        explain.linear_probe(model, train, None, layers=["2", "5"], test_features=features)


@pytest.mark.parametrize(
    ("probe", "dead", "one"),
    [
        (1000, 1000, True),
        (256, 1000, True),
        (1000, 512, True),
        (512, 300, False),
        (300, 1000, False),
        (7, 9, False),
    ],  # fmt: skip
)
def test_one_pass_serves_both_only_where_they_read_the_same_batches(probe, dead, one):
    assert shared_counts(probe, dead) is one


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from explorer_runs import shapes_run

    return shapes_run(tmp_path_factory.mktemp("one_pass"), 24, batch_size=16, val_fraction=0.1)


PARTS = ("results", "probes", "dead")


def gathered(run_path, monkeypatch, budget):
    """(the facts of the results, probes and dead-unit parts, how many forwards of the model
    read the whole test set in them)."""
    loaded = load_run(run_path)
    monkeypatch.setattr(
        facts_module, "GATHERERS", {k: v for k, v in facts_module.GATHERERS.items() if k in PARTS}
    )
    test = loaded.preprocess(loaded.dataset("test").images).float()
    seen = []
    loaded.model.register_forward_pre_hook(
        lambda m, args: seen.append(args[0].shape == test.shape and torch.equal(args[0], test))
    )
    facts = gather(run_path, loaded, budget=budget, strict=True)
    return facts, sum(seen)


def values(facts):
    results = facts.parts["results"].value
    return (
        results.evaluation,
        results.probs,
        dict(facts.parts["probes"].value.accuracy),
        facts.parts["dead"].value.result,
        facts.parts["dead"].value.labels,
    )


def test_the_report_reads_the_test_images_once_for_probes_and_dead_units(run, monkeypatch):
    budget = Budget(probe_train=40, probe_epochs=3)  # probe_test, diagnose_images: every image
    one, forwards = gathered(run, monkeypatch, budget)
    monkeypatch.setattr(shared_module, "_run_shared_pass", lambda src, first: (None, None))
    apart, forwards_apart = gathered(run, monkeypatch, budget)
    # results' pass, the probes' and dead units' own two passes -> one shared
    assert (forwards_apart, forwards) == (3, 2)
    (evaluation, probs, *rest), (evaluation_apart, probs_apart, *rest_apart) = (
        values(one), values(apart)
    )  # fmt: skip
    assert evaluation == evaluation_apart and torch.equal(probs, probs_apart)
    assert rest == rest_apart


def test_counts_that_read_other_batches_keep_their_own_passes(run, monkeypatch):
    budget = Budget(probe_train=40, probe_epochs=3, probe_test=3, diagnose_images=5)
    facts, _ = gathered(run, monkeypatch, budget)
    assert facts.parts["probes"].value.test == 3 and facts.parts["dead"].value.result.samples == 5
    x = load_run(run).preprocess(load_run(run).dataset("test").images[:5]).float()
    assert facts.parts["dead"].value.result == diagnose.dead_units(load_run(run).model, x)
