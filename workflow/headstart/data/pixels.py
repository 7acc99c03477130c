"""Decode once: each split's images as uint8 pixels in one safetensors file, cropped and normalised
per batch on the device.

Training images are stored resized (shorter side to ``resize``), so a random crop can be taken at
every step; validation and test images are stored as their centre crops. A batch built here equals,
bit for bit on the CPU, what torchvision's ``Resize -> crop -> ToTensor -> Normalize`` makes of the
same image: the same PIL resize, the same crop window, the same float operations in the same order.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..core.images import to_rgb
from ..core.tables import TensorStream, memmap_tensor, read_tensor_metadata


def centre_window(height: int, width: int, crop: int) -> tuple[int, int]:
    """(top, left) of the centre crop, as torchvision's CenterCrop rounds it."""
    return int(round((height - crop) / 2.0)), int(round((width - crop) / 2.0))


def random_window(height: int, width: int, crop: int, crop_seed: int) -> tuple[int, int]:
    """(top, left) of the random crop drawn from ``crop_seed`` (left first, then top)."""
    rng = random.Random(crop_seed)
    left = rng.randint(0, width - crop)
    top = rng.randint(0, height - crop)
    return top, left


class _ResizedImages(Dataset):
    """One image as uint8 (H, W, 3): RGB, shorter side resized, optionally centre-cropped."""

    def __init__(self, paths: Sequence[str], resize: int, crop: int | None):
        from torchvision import transforms

        self.paths, self.crop = list(paths), crop
        self.resize = transforms.Resize(resize)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> np.ndarray:
        with Image.open(self.paths[index]) as image:
            image = self.resize(to_rgb(image)[0])  # upright RGB, as evaluation and prediction see it
        if self.crop is not None:
            if min(image.size) < self.crop:
                raise ValueError(
                    f"{self.paths[index]}: {image.size} after resizing is smaller than the crop {self.crop}"
                )
            top, left = centre_window(image.height, image.width, self.crop)
            image = image.crop((left, top, left + self.crop, top + self.crop))
        return np.asarray(image, dtype=np.uint8)  # (_ImageChunks hands its bytes over)


class _ImageChunks(Dataset):
    """``images`` ``size`` at a time, as the images' bytes one after another and their (height, width,
    channels): a decoding process hands over one chunk, not one image, at a time (one image at a time,
    handing a small image over cost more than decoding it: 2 processes decoded Fashion-MNIST 1.5x slower
    than one). Bytes, not arrays: they travel pickled through the loader's pipe, not through shared
    memory (/dev/shm, 64 MB in a default Docker container)."""

    def __init__(self, images: _ResizedImages, size: int):
        self.images, self.size = images, size

    def __len__(self) -> int:
        return -(-len(self.images) // self.size)

    def __getitem__(self, index: int) -> tuple[bytes, list[tuple[int, int, int]]]:
        chunk = [self.images[i] for i in range(index * self.size, min((index + 1) * self.size, len(self.images)))]
        return b"".join(image.tobytes() for image in chunk), [image.shape for image in chunk]


def decode_images(
    paths: Sequence[str],
    image_ids: Sequence[str],
    out: Path | str,
    resize: int,
    crop: int,
    centre_crop: bool,
    num_workers: int = 0,
    desc: str = "decode",
    chunk: int = 32,
) -> None:
    """Decode every image once into ``out``: ``pixels`` (all images' bytes, HWC, one after another),
    ``offsets`` (n + 1 byte offsets) and ``shapes`` (n x 2: height, width).

    With ``centre_crop`` the images are stored as their ``crop`` x ``crop`` centre crops (val/test);
    otherwise resized only (train), for random crops later. Decoding runs in ``num_workers``
    processes; each hands over ``chunk`` images at a time, so at most 2 x ``num_workers`` x ``chunk``
    decoded images wait for the writer.
    """
    dataset = _ImageChunks(_ResizedImages(paths, resize, crop if centre_crop else None), chunk)
    loader = DataLoader(dataset, batch_size=None, num_workers=num_workers, prefetch_factor=2 if num_workers else None)
    offsets, shapes = [0], []
    metadata = {"image_ids": list(image_ids), "resize": resize, "crop": crop, "centre_crop": centre_crop}
    with TensorStream(out, metadata) as stream, tqdm(total=len(paths), desc=desc, unit="img") as bar:
        stream.begin("pixels")
        for pixels, chunk_shapes in loader:
            for height, width, channels in chunk_shapes:
                if not centre_crop and min(height, width) < crop:
                    raise ValueError(f"an image is {(height, width)} after resizing, smaller than the crop {crop}")
                offsets.append(offsets[-1] + height * width * channels)
                shapes.append((height, width))
            stream.write(torch.frombuffer(bytearray(pixels), dtype=torch.uint8))
            bar.update(len(chunk_shapes))
        stream.end("uint8", [])
        stream.add("offsets", torch.tensor(offsets, dtype=torch.int64))
        stream.add("shapes", torch.tensor(shapes, dtype=torch.int32).reshape(-1, 2))


class PixelCache:
    """The decoded images of one split, memory-mapped: crops are copied out, nothing else is read."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.metadata = read_tensor_metadata(path)
        self.pixels = memmap_tensor(path, "pixels")
        self.offsets = memmap_tensor(path, "offsets").tolist()
        self.shapes = memmap_tensor(path, "shapes").tolist()
        self.image_ids: list[str] = self.metadata["image_ids"]

    def __len__(self) -> int:
        return len(self.shapes)

    def image(self, index: int) -> np.ndarray:
        """Image ``index`` as a uint8 (H, W, 3) view of the file."""
        height, width = self.shapes[index]
        return self.pixels[self.offsets[index] : self.offsets[index + 1]].reshape(height, width, 3)

    def crops(
        self,
        indices: Sequence[int],
        crop: int,
        crop_seeds: Sequence[int] | None = None,
        out: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """uint8 (B, crop, crop, 3): random crops drawn from ``crop_seeds``, else centre crops."""
        out = torch.empty((len(indices), crop, crop, 3), dtype=torch.uint8) if out is None else out[: len(indices)]
        target = out.numpy()
        for row, index in enumerate(indices):
            height, width = self.shapes[index]
            if crop_seeds is None:
                top, left = centre_window(height, width, crop)
            else:
                top, left = random_window(height, width, crop, int(crop_seeds[row]))
            target[row] = self.image(index)[top : top + crop, left : left + crop]
        return out


def normalize(crops: torch.Tensor, mean: Sequence[float], std: Sequence[float], device: torch.device) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float32 (B, 3, H, W) on ``device``, channels_last: torchvision's ToTensor
    (x / 255) and Normalize ((x - mean) / std), the same operations in the same order."""
    images = crops.to(device, non_blocking=True).permute(0, 3, 1, 2).to(torch.float32).div(255)
    images.sub_(torch.as_tensor(mean, dtype=torch.float32, device=device).view(-1, 1, 1))
    images.div_(torch.as_tensor(std, dtype=torch.float32, device=device).view(-1, 1, 1))
    return images


class CropBatches:
    """Model inputs from a pixel cache: random crops (seeded per example) or centre crops, normalised
    on the device. On CUDA the crops go through a ring of pinned buffers, so copying a batch to the
    GPU overlaps the previous step's compute."""

    def __init__(
        self,
        cache: PixelCache,
        rows: Sequence[int],
        crop: int,
        mean: Sequence[float],
        std: Sequence[float],
        device: torch.device,
        augment: bool,
        max_batch: int,
        ring: int = 3,
    ):
        self.cache, self.rows, self.crop = cache, np.asarray(rows), crop
        self.mean, self.std, self.device, self.augment = tuple(mean), tuple(std), device, augment
        self.staging = []
        if device.type == "cuda":
            self.staging = [
                (torch.empty((max_batch, crop, crop, 3), dtype=torch.uint8).pin_memory(), torch.cuda.Event())
                for _ in range(ring)
            ]
        self.turn = 0

    def __len__(self) -> int:
        return len(self.rows)

    def batch(self, indices: np.ndarray, crop_seeds: Sequence[int] | None) -> torch.Tensor:
        seeds = crop_seeds if self.augment else None
        if not self.staging:
            return normalize(self.cache.crops(self.rows[indices], self.crop, seeds), self.mean, self.std, self.device)
        buffer, copied = self.staging[self.turn]
        self.turn = (self.turn + 1) % len(self.staging)
        copied.synchronize()  # the copy issued from this buffer, turns ago, has finished
        crops = self.cache.crops(self.rows[indices], self.crop, seeds, out=buffer)
        images = normalize(crops, self.mean, self.std, self.device)
        copied.record()
        return images


def split_rows(manifest, split: str, largest_shot: int):
    """The manifest rows of ``split`` that are used: for 'train', the largest shot level's images
    (the smaller levels' are among them)."""
    rows = manifest[manifest["split"] == split]
    return rows[rows["rank"] < largest_shot] if split == "train" else rows


def decode_split(
    manifest, split: str, largest_shot: int, resize: int, crop: int, out: Path | str, num_workers: int
) -> int:
    """The decode stage for one split: training images resized, val/test centre-cropped. Returns the
    number of images."""
    rows = split_rows(manifest, split, largest_shot)
    decode_images(
        rows["path"].tolist(),
        rows["image_id"].tolist(),
        out,
        resize,
        crop,
        centre_crop=split != "train",
        num_workers=num_workers,
        desc=f"decode {split}",
    )
    return len(rows)
