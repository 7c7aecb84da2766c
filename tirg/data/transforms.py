"""Image preprocessing: ImageNet statistics, as TIRG used for every data set."""

from __future__ import annotations

from torchvision import transforms

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def image_transform(image_size: int | None) -> transforms.Compose:
    """Resize (shorter side) and centre-crop to `image_size`, then tensor and normalise.

    `image_size=None` keeps the stored size (the CSS renders are 64x64).
    """
    steps: list = []
    if image_size is not None:
        steps += [transforms.Resize(image_size), transforms.CenterCrop(image_size)]
    steps += [transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    return transforms.Compose(steps)
