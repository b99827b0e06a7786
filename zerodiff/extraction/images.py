"""Image reading, the readability check, and the training and extraction transforms.

Extraction transforms are deterministic: image files are resized so that the
shorter side is ``resize_size`` and centre-cropped to ``image_size`` (256 and
224 for ResNet-101), then normalised with the ImageNet mean and standard
deviation. Training transforms add seeded augmentations whose random draws
depend only on ``(seed, epoch, view, sample index)``, so they do not change with
the batch order or the number of data-loader workers.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as nn_functional
import torchvision.transforms.functional as tf
from PIL import Image
from torch.utils.data import Dataset
from tqdm import tqdm

from zerodiff.extraction.config import AugmentConfig
from zerodiff.extraction.sources import ImageSource

log = logging.getLogger("zerodiff.extraction")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_CROP_ASPECT_RANGE = (3 / 4, 4 / 3)  # torchvision's RandomResizedCrop default
_CROP_ATTEMPTS = 10


def read_image(path: Path) -> Image.Image:
    """Open an image file and decode it as RGB."""
    with Image.open(path) as image:
        return image.convert("RGB")


def find_unreadable(paths: list[Path], draft_size: int) -> list[tuple[int, Path, str]]:
    """Decode every image once and return ``(index, path, reason)`` for each one that fails.

    JPEG files are decoded in draft mode near ``draft_size`` pixels, which is
    faster and still reads the whole compressed stream, so truncated files fail.
    """
    unreadable = []
    for index, path in enumerate(tqdm(paths, desc="check images", unit="img", leave=False)):
        try:
            with Image.open(path) as image:
                image.draft("RGB", (draft_size, draft_size))
                image.load()
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
            unreadable.append((index, path, f"{type(error).__name__}: {error}"))
    return unreadable


@dataclass(frozen=True)
class ImageTransform:
    """Turns one sample into a network input tensor [channels, size, size].

    ``channels`` is the network's input width: 1 keeps single-channel arrays
    as they are, 3 repeats them (image files are always RGB). Arrays keep their
    own size unless ``resize_arrays`` is set, in which case they are resized to
    ``image_size`` and normalised like ImageNet images, as a torchvision
    ResNet expects.
    """

    channels: int
    image_size: int
    resize_size: int
    resize_arrays: bool
    augment: AugmentConfig

    def from_array(self, array: np.ndarray, generator: torch.Generator | None) -> torch.Tensor:
        """Transform a [H, W] array in [0, 1]; ``generator`` set means training augmentation."""
        image = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).unsqueeze(0)
        if generator is not None and self.augment.shift > 0:
            image = _random_shift(image, self.augment.shift, generator)
        if self.channels == 3:
            image = image.expand(3, -1, -1)
        if self.resize_arrays:
            size = [self.image_size, self.image_size]
            image = nn_functional.interpolate(image.unsqueeze(0), size=size, mode="bilinear", align_corners=False, antialias=True)[0]
            image = tf.normalize(image, IMAGENET_MEAN, IMAGENET_STD)
        return image.contiguous()

    def from_file(self, path: Path, generator: torch.Generator | None) -> torch.Tensor:
        """Read and transform an image file; ``generator`` set means training augmentation."""
        image = read_image(path)
        if generator is None:
            image = tf.center_crop(tf.resize(image, self.resize_size), [self.image_size, self.image_size])
        else:
            top, left, height, width = _random_crop_box(image.height, image.width, self.augment.crop_scale_min, generator)
            image = tf.resized_crop(image, top, left, height, width, [self.image_size, self.image_size])
            if torch.rand((), generator=generator).item() < self.augment.flip_probability:
                image = tf.hflip(image)
        return tf.normalize(tf.to_tensor(image), IMAGENET_MEAN, IMAGENET_STD)


def _random_shift(image: torch.Tensor, shift: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``shift`` pixels on each side and crop a random window of the original size."""
    height, width = image.shape[-2:]
    padded = nn_functional.pad(image, (shift, shift, shift, shift))
    top, left = torch.randint(0, 2 * shift + 1, (2,), generator=generator).tolist()
    return padded[..., top : top + height, left : left + width]


def _random_crop_box(height: int, width: int, scale_min: float, generator: torch.Generator) -> tuple[int, int, int, int]:
    """Draw a crop box covering a random area fraction in [scale_min, 1] at an aspect ratio in [3/4, 4/3].

    Same sampling rule as torchvision's ``RandomResizedCrop``, but drawn from
    ``generator``. After ten misses it falls back to the central square.
    """
    area = height * width
    log_low, log_high = math.log(_CROP_ASPECT_RANGE[0]), math.log(_CROP_ASPECT_RANGE[1])
    for _ in range(_CROP_ATTEMPTS):
        draws = torch.rand(4, generator=generator, dtype=torch.float64).tolist()
        target_area = area * (scale_min + (1.0 - scale_min) * draws[0])
        aspect = math.exp(log_low + (log_high - log_low) * draws[1])
        crop_width = int(round(math.sqrt(target_area * aspect)))
        crop_height = int(round(math.sqrt(target_area / aspect)))
        if 0 < crop_width <= width and 0 < crop_height <= height:
            top = int(draws[2] * (height - crop_height + 1))
            left = int(draws[3] * (width - crop_width + 1))
            return top, left, crop_height, crop_width
    side = min(height, width)
    return (height - side) // 2, (width - side) // 2, side, side


def augmentation_generator(seed: int, epoch: int, view: int, index: int) -> torch.Generator:
    """Return a generator for one augmented view, seeded by ``(seed, epoch, view, index)``."""
    state = np.random.SeedSequence([seed, epoch, view, index]).generate_state(1, dtype=np.uint64)[0]
    generator = torch.Generator()
    generator.manual_seed(int(state))
    return generator


class ImageDataset(Dataset):
    """Samples ``indices`` of an :class:`ImageSource` as ``(image, label, index)``.

    Without augmentation ``image`` is [C, H, W]. With ``views`` augmented views
    (``train=True``) it is [views, C, H, W]. Call :meth:`set_epoch` before each
    epoch so that every epoch draws new augmentations.
    """

    def __init__(
        self,
        source: ImageSource,
        indices: np.ndarray,
        transform: ImageTransform,
        *,
        train: bool = False,
        views: int = 1,
        seed: int = 0,
    ) -> None:
        self.source = source
        self.indices = np.asarray(indices, dtype=np.int64)
        self.transform = transform
        self.train = train
        self.views = views
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return int(self.indices.size)

    def __getitem__(self, position: int) -> tuple[torch.Tensor, int, int]:
        index = int(self.indices[position])
        label = int(self.source.labels[index])
        if not self.train:
            return self.load(index, None), label, index
        views = [self.load(index, augmentation_generator(self.seed, self.epoch, view, index)) for view in range(self.views)]
        return torch.stack(views), label, index

    def load(self, index: int, generator: torch.Generator | None) -> torch.Tensor:
        """Read and transform sample ``index`` of the source."""
        if self.source.arrays is not None:
            return self.transform.from_array(self.source.arrays[index], generator)
        return self.transform.from_file(self.source.paths[index], generator)
