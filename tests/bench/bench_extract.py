"""Benchmark (not a test): extraction throughput vs the pure-forward bound and a naive loop.

    .venv/bin/python tests/bench/bench_extract.py [--images 512] [--workers N] [--size 183 160]

Uses the default model (EfficientNet-Lite0) on Fashion-MNIST images written by the workflow's
dataset stage (results/fashion_mnist/images), or on generated images when those are absent.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image

from headstart.core.devices import autocast_for, pick_device
from headstart.data.pixels import CropBatches, PixelCache, decode_images
from headstart.extract.features import CentreCrops, SplitOutputs, extract_split
from headstart.extract.models import eval_transform, load_source_model, normalization, split_model


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def images(n: int) -> list[str]:
    found = sorted(str(p) for p in Path("results/fashion_mnist/images").rglob("*.png"))[:n]
    if len(found) >= n:
        return found
    folder = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (28, 28), dtype=np.uint8)).save(folder / f"{i}.png")
    return sorted(str(p) for p in folder.glob("*.png"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--workers", type=int, default=0, help="decoding processes of the decode stage")
    parser.add_argument("--batch", type=int, default=None, help="default: config.yaml extract.batch_size")
    parser.add_argument("--size", type=int, nargs=2, default=None, help="resize crop (default: config.yaml)")
    parser.add_argument("--model", default=None, help="a key of config.yaml's models")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds; the median of each is kept")
    args = parser.parse_args()
    config = yaml.safe_load(Path("config.yaml").read_text())
    entry = config["models"][args.model or config["model"]]
    args.batch = args.batch or config["extract"]["batch_size"]
    resize, crop = args.size or (config["preprocess"]["resize"], config["preprocess"]["crop"])
    device = pick_device("auto")
    model = load_source_model(entry)
    mean, std = normalization(model, entry)
    parts = split_model(model, entry["trainable"], entry["head"])
    # copied before extract() turns the parts channels_last in place
    naive_net = copy.deepcopy(torch.nn.Sequential(parts.trunk, parts.trainable, parts.head)).to(device).eval()
    transform = eval_transform(resize, crop, mean, std)
    paths = images(args.images)
    work = Path(tempfile.mkdtemp())
    start = time.perf_counter()  # the decode stage: each image once, into the uint8 cache
    decode_images(
        paths,
        [str(i) for i in range(len(paths))],
        work / "test.safetensors",
        resize,
        crop,
        centre_crop=True,
        num_workers=args.workers,
    )
    decoding = len(paths) / (time.perf_counter() - start)
    wnids = [str(i) for i in range(parts.head.out_features)]

    def extraction_rate() -> float:  # the extract stage: from the pixel cache, trunk activations streamed to disk
        start = time.perf_counter()
        extract_split(
            parts,
            work / "test.safetensors",
            CentreCrops(crop, mean, std, args.batch, device),
            wnids,
            SplitOutputs(work / "logits.parquet", work / "features.safetensors"),
        )
        return len(paths) / (time.perf_counter() - start)

    extraction_rate()  # warm-up
    net = torch.nn.Sequential(parts.trunk, parts.trainable, parts.head).to(device).eval()
    net = net.to(memory_format=torch.channels_last)
    cache = PixelCache(work / "test.safetensors")
    decoded = CropBatches(cache, range(len(cache)), crop, mean, std, device, False, args.batch).batch(
        np.arange(args.batch), None
    )

    def forward_rate() -> float:  # the same batch again and again: no decoding, no transfer
        with torch.inference_mode(), autocast_for(device):
            net(decoded)
            synchronize(device)
            start, done = time.perf_counter(), 0
            while done < len(paths):
                net(decoded)
                done += len(decoded)
            synchronize(device)
        return done / (time.perf_counter() - start)

    # Alternate the two, median of --rounds each: neighbours on a shared machine slow either at random.
    rates = np.array([(extraction_rate(), forward_rate()) for _ in range(args.rounds)])
    extraction, bound = np.median(rates, axis=0)
    naive_n = min(len(paths), 128)
    start = time.perf_counter()
    with torch.no_grad():
        for path in paths[:naive_n]:
            with Image.open(path) as image:
                naive_net(transform(image)[None].to(device))  # the naive loop: no batching, default memory format
    naive = naive_n / (time.perf_counter() - start)

    print(
        f"device: {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else f'{torch.get_num_threads()} threads'})"
    )
    print(f"model: {entry['arch']}, {resize}/{crop} px, batch {args.batch}, {len(paths)} images")
    print(f"decode stage       {decoding:8.1f} images/s  (once per image, {args.workers} worker processes)")
    print(
        f"extraction path    {extraction:8.1f} images/s  ({extraction / bound:.0%} of the bound, {extraction / naive:.1f}x naive)"
    )
    print(
        f"pure forward bound {bound:8.1f} images/s  (median of {args.rounds} rounds; "
        f"extraction {rates[:, 0].min():.0f}-{rates[:, 0].max():.0f}, bound {rates[:, 1].min():.0f}-{rates[:, 1].max():.0f})"
    )
    print(f"naive loop         {naive:8.1f} images/s")


if __name__ == "__main__":
    main()
