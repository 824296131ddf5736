"""A folder given where an image file is expected is refused with the fix that works (its
files, `DIR/*`), and the advice for a non-regular IDX file is not 'give an image file'."""

import os

import pytest

from cnnlab.data import read_image
from cnnlab.data.idx import read_idx
from cnnlab.errors import DataError


def test_a_directory_given_as_an_image_names_its_files(tmp_path):
    assert tmp_path.is_dir()
    with pytest.raises(DataError, match=r"is a directory, not a regular image file") as error:
        read_image(tmp_path, 1)
    assert str(error.value).endswith(f"give the files in it ({tmp_path / '*'})")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_pipe_given_as_an_idx_file_is_told_to_give_an_idx_file(tmp_path):
    os.mkfifo(tmp_path / "train-images-idx3-ubyte")
    with pytest.raises(DataError) as error:
        read_idx(tmp_path / "train-images-idx3-ubyte")
    assert str(error.value).endswith("give an IDX file") and "image file" not in str(error.value)
