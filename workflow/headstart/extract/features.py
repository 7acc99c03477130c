"""Batched extraction of source logits, penultimate features and frozen-trunk activations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..core.devices import autocast_for, to_device
from ..core.tables import TensorStream
from .models import ModelParts


@dataclass
class Extracted:
    logits: np.ndarray  # (n, M) float32
    features: np.ndarray  # (n, D) float32


def extract(
    parts: ModelParts,
    images,
    batch_size: int,
    device: torch.device,
    trunk: TensorStream | None = None,
    desc: str = "extract",
) -> Extracted:
    """One pass of the frozen network over ``images`` (a :class:`headstart.data.pixels.CropBatches` of
    centre crops) in order; a progress bar shows images/s.

    With ``trunk``, the frozen trunk's activations are streamed into it as tensor ``trunk``, in the
    dtype the trunk produced them (fp32 on the CPU, bf16 under CUDA autocast), so training and
    evaluation on them see exactly what the network would compute; they are never held in memory whole.
    """
    trunk_net = parts.trunk.to(device).eval().to(memory_format=torch.channels_last)
    trainable = parts.trainable.to(device).eval().to(memory_format=torch.channels_last)
    head = parts.head.to(device).eval()
    logits, features = [], []
    if trunk is not None:
        trunk.begin("trunk")
    with torch.inference_mode(), tqdm(total=len(images), desc=desc, unit="img") as bar:
        for start in range(0, len(images), batch_size):
            batch = to_device(images.batch(np.arange(start, min(start + batch_size, len(images))), None), device)
            with autocast_for(device):
                hidden = trunk_net(batch)
                pooled = trainable(hidden)
            # the source logits feed arg-max based similarities: computed in fp32
            logits.append(head(pooled.float()).float().cpu())
            features.append(pooled.float().cpu())
            if trunk is not None:
                trunk.write(hidden.cpu())
            bar.update(len(batch))
    if trunk is not None:
        trunk.end("float32", [])  # (the dtype and shape of an empty split's activations)
    return Extracted(
        logits=torch.cat(logits).numpy() if logits else np.zeros((0, head.out_features), np.float32),
        features=torch.cat(features).numpy() if features else np.zeros((0, head.in_features), np.float32),
    )


@dataclass(frozen=True)
class CentreCrops:
    """How extraction reads a split's decoded images: centre crops of ``crop`` pixels, normalised by the
    source network's ``mean`` and ``std``, ``batch_size`` at a time, on ``device``."""

    crop: int
    mean: Sequence[float]
    std: Sequence[float]
    batch_size: int
    device: torch.device


@dataclass(frozen=True)
class SplitOutputs:
    """Where one split's extraction goes, each file with ``metadata``: the source logits (Parquet, a column per
    source wnid) and the penultimate features (safetensors; with ``keep_trunk``, the trunk's activations too)."""

    logits: Path
    features: Path
    keep_trunk: bool = True
    metadata: dict[str, Any] = field(default_factory=dict)


def extract_split(
    parts: ModelParts, pixels: Path, crops: CentreCrops, source_wnids: Sequence[str], outputs: SplitOutputs
) -> Extracted:
    """One split from its decoded images (the pixel cache ``pixels``): its source logits, features and
    trunk activations written to ``outputs``."""
    from ..core.tables import write_parquet
    from ..data.pixels import CropBatches, PixelCache

    cache = PixelCache(pixels)
    images = CropBatches(
        cache,
        range(len(cache)),
        crops.crop,
        crops.mean,
        crops.std,
        crops.device,
        augment=False,
        max_batch=crops.batch_size,
    )
    with TensorStream(outputs.features, {"image_ids": cache.image_ids, **outputs.metadata}) as stream:
        result = extract(
            parts,
            images,
            crops.batch_size,
            crops.device,
            stream if outputs.keep_trunk else None,
            desc=f"extract {pixels.stem}",
        )
        stream.add("features", result.features)
    logits = pd.DataFrame(result.logits, index=pd.Index(cache.image_ids, name="image_id"), columns=list(source_wnids))
    write_parquet(logits, outputs.logits, outputs.metadata)
    return result
