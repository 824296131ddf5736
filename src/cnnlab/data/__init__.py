"""Data for cnnlab: Fashion-MNIST (IDX), image folders, bundled digits, generated shapes, the
one image-file reader every command uses (`read_image`), and the in-memory batch pipeline
(split, normalization, augmentation, `Loader`).

    ds = load_dataset("fashion-mnist", "train")          # ImageSet, uint8 (N, 1, 28, 28)
    train, val = train_val_split(ds, 0.1, seed=0)
    mean, std = normalization_stats(train)
    loader = Loader(to_float(train.images, mean, std), train.labels, 512, augment=Augment())
"""

from cnnlab.data.augment import Augment, erase, erase_masks, hflip, translate
from cnnlab.data.download import FASHION_MNIST_MD5, FASHION_MNIST_URL, download_fashion_mnist
from cnnlab.data.fashion import FASHION_MNIST_CLASSES, fashion_mnist, find_fashion_mnist
from cnnlab.data.folder import image_folder
from cnnlab.data.idx import read_idx, read_idx_images, read_idx_labels, read_idx_pair
from cnnlab.data.image import (
    MAX_IMAGE_PIXELS,
    open_image,
    read_image,
    read_images,
    read_images_sized,
)
from cnnlab.data.imageset import ImageSet, conform, convert_channels, resize_crop
from cnnlab.data.loader import Loader
from cnnlab.data.sets import DATASET_NAMES, load_dataset, load_splits
from cnnlab.data.split import normalization_stats, to_float, train_val_split
from cnnlab.data.synthetic import DIGIT_CLASSES, SHAPE_CLASSES, digits, shapes

__all__ = [
    "DATASET_NAMES",
    "DIGIT_CLASSES",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_MD5",
    "FASHION_MNIST_URL",
    "MAX_IMAGE_PIXELS",
    "SHAPE_CLASSES",
    "Augment",
    "ImageSet",
    "Loader",
    "conform",
    "convert_channels",
    "digits",
    "download_fashion_mnist",
    "erase",
    "erase_masks",
    "fashion_mnist",
    "find_fashion_mnist",
    "hflip",
    "image_folder",
    "load_dataset",
    "load_splits",
    "normalization_stats",
    "open_image",
    "read_idx",
    "read_idx_images",
    "read_idx_labels",
    "read_idx_pair",
    "read_image",
    "read_images",
    "read_images_sized",
    "resize_crop",
    "shapes",
    "to_float",
    "train_val_split",
    "translate",
]
