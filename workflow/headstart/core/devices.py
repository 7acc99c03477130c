"""Where tensors run: the device a job asked for, its autocast, and batches moved onto it."""

from __future__ import annotations

import contextlib
import warnings

import torch

from .errors import HeadstartError


class DeviceError(HeadstartError, RuntimeError):
    """A device that is not there; the message says which."""


def pick_device(requested: str) -> torch.device:
    """'auto' -> CUDA if present, else the CPU with one warning."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise DeviceError("device 'cuda' requested but no CUDA device is available")
    if requested == "auto" and not torch.cuda.is_available():
        warnings.warn("no CUDA device: running on the CPU (slow for the paper's setup)", stacklevel=2)
        return torch.device("cpu")
    return torch.device("cuda" if requested in ("auto", "cuda") else "cpu")


def autocast_for(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA, exact fp32 on the CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch on ``device``; images (4-D) channels_last, the memory format the convolutions run in."""
    batch = batch.to(device, non_blocking=True)
    return batch.contiguous(memory_format=torch.channels_last) if batch.dim() == 4 else batch
