"""YAML 1.1's other numbers in a spec. A leading zero (`stride: 010`) is octal to YAML 1.1 (8)
and decimal to a reader and YAML 1.2 (10): refused, naming the key, the text and the number
to write; it built a stride-8 conv without a word. Base-60 numbers (`1:30`, 90 to YAML 1.1)
and dates (`2026-12-01`) stay text, as in YAML 1.2: a name keeps them, a number's check
quotes them. Hex, binary and underscores read as Python reads them."""

from __future__ import annotations

import datetime

import pytest
import yaml

from cnnlab.cli import main
from cnnlab.design.build import build
from cnnlab.design.spec import load_spec
from cnnlab.errors import SpecError


def _text(args: str, name: str = "net") -> str:
    return f"name: {name}\ninput: [1, 28, 28]\nlayers:\n  - conv: {{filters: 2, {args}}}\n"


@pytest.mark.parametrize(("written", "meant"), [("010", "10"), ("-010", "-10"), ("0_12", "12")])
def test_a_leading_zero_yaml_reads_as_octal_is_refused_with_the_number_to_write(written, meant):
    octal = yaml.safe_load(written)  # PyYAML's own YAML 1.1 reading
    assert octal == int(written.replace("_", ""), 8) != int(meant)
    text = _text(f"stride: {written}")
    column = text.splitlines()[3].index(written) + 1
    with pytest.raises(SpecError) as caught:
        load_spec(text)
    assert str(caught.value) == (
        f"spec text, line 4, column {column}: stride: {written} is the octal number {octal} to "
        f'YAML 1.1; write {meant}, not {written} (or "{written}" in quotes, for text)'
    )


def test_the_number_it_says_to_write_builds_that_stride():
    conv = build(load_spec(_text("stride: 10, kernel: 1")))[0]
    assert conv.stride == (10, 10)  # torch's own conv


@pytest.mark.parametrize("written", ["0", "00", "07", "0_5"])
def test_a_leading_zero_both_readings_agree_on_is_read(written):
    conv = build(load_spec(_text(f"kernel: 9, padding: {written}")))[0]
    assert conv.padding == (int(written.replace("_", ""), 8),) * 2


def test_octal_in_a_list_is_told_with_its_key_and_in_quotes_is_text():
    with pytest.raises(SpecError, match=r"^spec text, line 1, column 12: input: 010 is the oct"):
        load_spec("input: [1, 010, 28]\nlayers: [relu]\n")
    assert load_spec(_text("stride: 1", name='"010"')).name == "010"


@pytest.mark.parametrize("written", ["0x10", "1_6", "0b10000", "+16"])
def test_hex_binary_and_underscores_read_as_python_reads_them(written):
    conv = build(load_spec(_text("stride: 1").replace("filters: 2", f"filters: {written}")))[0]
    assert conv.out_channels == int(written, 0)  # Python's reading of the literal


@pytest.mark.parametrize("written", ["1:30", "2026-12-01", "2026-12-01 10:00:00", "1:30.5"])
def test_base_60_numbers_and_dates_are_text(written):
    assert not isinstance(yaml.safe_load(f"x: {written}")["x"], str)  # YAML 1.1: not text
    spec = load_spec(_text("stride: 1", name=written))
    assert spec.name == written
    assert load_spec(spec.to_yaml()) == spec
    with pytest.raises(SpecError) as caught:
        load_spec(_text(f"stride: {written}"))
    assert str(caught.value).endswith(f"stride must be an integer >= 1, got {written!r}")


def test_a_date_in_a_description_is_its_text():
    assert isinstance(yaml.safe_load("2026-12-01"), datetime.date)  # YAML 1.1: a date
    text = _text("stride: 1").replace("name: net", "description: 2026-12-01")
    assert load_spec(text).description == "2026-12-01"


def test_the_cli_says_it_in_one_line(tmp_path, capsys):
    path = tmp_path / "net.yaml"
    path.write_text(_text("stride: 010"))
    assert main(["summary", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"cnnlab summary: error: spec file {path}, line 4, column 32: stride: 010 is the octal "
        'number 8 to YAML 1.1; write 10, not 010 (or "010" in quotes, for text)'
    ]
