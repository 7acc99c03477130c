"""One image as the network sees it: upright (its EXIF orientation applied, as a phone photo is shown) and
in 8-bit RGB whatever its PIL mode. Ingestion (headstart.data.sources), decoding for training
(headstart.data.pixels) and the evaluation transform (headstart.extract.models.eval_transform, which prediction uses)
all go through :func:`to_rgb`; it is its own module so that ingestion's code reruns ingestion only
(headstart.pipeline.provenance)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

# modes whose values go beyond 8 bits: PIL's convert("RGB") clips them at 255 (a 16-bit photo becomes a mask)
HIGH_BIT_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def to_rgb(image: Image.Image) -> tuple[Image.Image, str]:
    """``image`` upright and as 8-bit RGB, and how it was converted. An EXIF orientation (a phone photo taken
    sideways) is applied first. High-bit-depth greyscale (16-bit, 32-bit integer or float) is scaled
    linearly from its own range [min, max] to [0, 255] (a constant image to 0); every other mode goes
    through PIL's ``convert("RGB")`` (CMYK and palette mapped to RGB, an alpha channel dropped, greyscale
    repeated in three channels)."""
    image = ImageOps.exif_transpose(image)  # a copy only where the image has an orientation to apply
    if image.mode in HIGH_BIT_DEPTH_MODES:
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / (high - low) * 255 if high > low else np.zeros_like(values)
        grey = Image.fromarray(np.rint(scaled).astype(np.uint8), mode="L")
        return grey.convert("RGB"), f"mode {image.mode} scaled from [{low:g}, {high:g}] to 8 bits"
    return image.convert("RGB"), f"mode {image.mode}"
