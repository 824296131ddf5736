"""An image folder is read one image at a time: each file is decoded, converted and resized
before the next is opened, so a folder of large photos does not hold every full-size
decoded image at once (40 photos of 6 megapixels took 1.2 GB to make 40 images of 32×32)."""

import gc
import weakref

import cnnlab.data.folder as folder
from cnnlab.data import image_folder
from test_folder_gray_read import photos


def test_decoded_images_are_not_all_held(tmp_path, monkeypatch):
    refs, most = [], [0]
    real = folder.open_image

    def counting(path):
        gc.collect()
        alive = sum(ref() is not None for ref in refs)  # decoded images held as one more opens
        most[0] = max(most[0], alive)
        img = real(path)
        refs.append(weakref.ref(img))
        return img

    monkeypatch.setattr(folder, "open_image", counting)
    ds = image_folder(photos(tmp_path / "p"), size=16)
    assert len(ds) == 12 and most[0] <= 1
