"""Images decoded once and kept in memory, for small data sets (CSS: 12 KiB an image) read every step."""

from __future__ import annotations

import logging

import numpy as np
import torch
from PIL import Image

from tirg.data.base import RetrievalDataset

logger = logging.getLogger(__name__)


class DecodedImages:
    """`dataset.load_image` for every image of the split, decoded once into uint8 HxWx3 tensors.

    Calling it with an image id gives the same RGB image the file gives, so the transforms (and any
    random augmentation) still run per step on it exactly as before; only the PNG/JPEG decoding,
    which starves a GPU on small images, is done once. Memory: height x width x 3 bytes per image,
    in each training process.
    """

    def __init__(self, dataset: RetrievalDataset):
        self.pixels = [torch.from_numpy(np.array(dataset.load_image(index))) for index in range(len(dataset))]
        megabytes = sum(pixels.numel() for pixels in self.pixels) / 2**20
        logger.info("%s %s: %d images decoded into memory (%.1f MiB)", dataset.name, dataset.split, len(self.pixels), megabytes)

    def __len__(self) -> int:
        return len(self.pixels)

    def __call__(self, index: int) -> Image.Image:
        return Image.fromarray(self.pixels[index].numpy())  # HxWx3 uint8: an RGB image
