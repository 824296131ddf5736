"""What the report's captions and `cnnlab visualize --actmax` say of the images they used, on a
run whose test split is small (digits: 359 images): how many test images actmax compared
with, what the probes and actmax used, a layer narrower than its channel budget, and the
training option behind a missing history."""

from __future__ import annotations

import re

from cnnlab.cli import main
from cnnlab.data import load_dataset
from cnnlab.train.source import parse_model_ref
from tiny_nets import imported_run, tiny_net_source

NETS = tiny_net_source("make", width=3)


def test_actmax_names_the_number_of_test_images_it_compared_with(tmp_path, capsys):
    """Each channel's line said 'best of 1000 test images' whatever the split held."""
    imported_run(tmp_path, NETS, data="digits")
    capsys.readouterr()
    args = ["visualize", str(tmp_path / "run"), "--actmax", "0", "--steps", "2", "--out"]
    assert main([*args, str(tmp_path / "figs")]) == 0
    counts = set(re.findall(r"best of (\d+) test images", capsys.readouterr().out))
    assert counts == {str(len(load_dataset("digits", "test").labels))}  # 359


def test_the_reports_captions_name_the_images_the_probes_and_actmax_used(tmp_path):
    """The report's probe caption said 'trained on the first 2000 training images ... tested
    on the first 1000 test images' and actmax's 'any of 512 test images' for digits, whose
    splits hold 1438 and 359 (truth: the data set's own sizes, smaller than the budgets)."""
    imported_run(tmp_path, NETS, data="digits")
    assert main(["report", str(tmp_path / "run")]) == 0
    page = (tmp_path / "run" / "report.html").read_text()
    n_train = len(load_dataset("digits", "train").labels)
    n_test = len(load_dataset("digits", "test").labels)
    assert f"trained on the first {n_train} training images" in page
    assert f"tested on the first {n_test} test images" in page
    assert f"any of {n_test} test images gives" in page


def test_the_reports_actmax_shows_a_layer_narrower_than_its_channel_budget(tmp_path):
    """A stage of 3 channels (the budget asks 4) made the part 'Not shown: channel 3 is
    outside layer ...'; it shows the 3 the layer has."""
    imported_run(tmp_path, NETS, data="digits")  # its one stage has 3 channels
    assert main(["report", str(tmp_path / "run")]) == 0
    page = (tmp_path / "run" / "report.html").read_text()
    assert "is outside layer" not in page
    assert "to excite the first 4 channels (all, where it has fewer)" in page


def test_the_reports_missing_history_names_the_training_option_of_the_command_line(tmp_path):
    """'train with diagnose_every > 0' is the Python name; the page is read by users of
    `cnnlab train`, whose option is --diagnose-every."""
    from cnnlab.train import TrainConfig, train

    (tmp_path / "nets.py").write_text(NETS)
    source = parse_model_ref(f"{tmp_path / 'nets.py'}:make")
    train(source, "digits", tmp_path / "run", TrainConfig(epochs=1, tta=False))
    assert main(["report", str(tmp_path / "run")]) == 0
    page = (tmp_path / "run" / "report.html").read_text()
    assert "cnnlab train --diagnose-every N" in page


def test_the_reports_probes_of_a_net_with_one_resolution_follow_its_blocks(tmp_path):
    """One point per map size (the stages) gave a net whose maps keep one size after the stem
    (isotropic, as ConvNeXt-isotropic or this one conv) one probe and no depth; it probes
    the model's blocks, as `cnnlab probe` does."""
    imported_run(tmp_path, NETS, data="digits")
    assert main(["report", str(tmp_path / "run")]) == 0
    page = (tmp_path / "run" / "report.html").read_text()
    table = page[page.index("probe test accuracy") :].split("</table>")[0]
    rows = re.findall(r"<tr><td>([^<]*)</td>", table)
    assert rows[0] == "input" and len(rows) >= 4, rows  # was input and `1 ReLU`


def test_the_feature_maps_caption_says_each_map_has_its_own_scale(tmp_path):
    """Each map is drawn with its own colour range (plots.feature_maps: imshow scales each to
    its min and max); the caption said only 'First 8 channels of each layer', inviting a
    comparison of brightness between maps. Truth: matplotlib's own scaling of two maps of
    different ranges in the report's figure function."""
    from unittest import mock

    import numpy as np

    from cnnlab.report import plots

    maps = np.stack([np.zeros((4, 4)), np.zeros((4, 4))])
    maps[0, 0, 0], maps[1, 0, 0] = 1.0, 100.0
    with mock.patch("matplotlib.axes.Axes.imshow", autospec=True) as shown:
        plots.feature_maps([("a", maps)], channels=2)
    assert all("vmin" not in c.kwargs and "norm" not in c.kwargs for c in shown.call_args_list)
    imported_run(tmp_path, NETS, data="digits")
    assert main(["report", str(tmp_path / "run")]) == 0
    page = (tmp_path / "run" / "report.html").read_text()
    assert "each map scaled to its own range" in page
