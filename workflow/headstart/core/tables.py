"""Parquet and safetensors I/O with provenance metadata."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

METADATA_KEY = b"headstart"


def write_parquet(
    frame: pd.DataFrame, path: Path | str, metadata: dict[str, Any] | None = None, index: bool | None = None
) -> None:
    """Write ``frame`` atomically; ``metadata`` lands in the schema under 'headstart' (JSON)."""
    table = pa.Table.from_pandas(frame, preserve_index=index)
    if metadata is not None:
        table = table.replace_schema_metadata(
            {**(table.schema.metadata or {}), METADATA_KEY: json.dumps(metadata).encode()}
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    pq.write_table(table, partial)
    os.replace(partial, path)


def read_metadata(path: Path | str) -> dict[str, Any]:
    """The 'headstart' metadata of a Parquet file ({} if none)."""
    raw = (pq.read_schema(path).metadata or {}).get(METADATA_KEY)
    return json.loads(raw) if raw else {}


def write_tensors(tensors: dict[str, Any], path: Path | str, metadata: dict[str, Any] | None = None) -> None:
    """numpy arrays or torch tensors to safetensors, atomically; metadata values are stored as JSON.

    Numpy arrays alone are written without importing torch (1.2 s of each small head job's start).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    text = {k: json.dumps(v) for k, v in (metadata or {}).items()}
    if all(isinstance(v, np.ndarray) for v in tensors.values()):
        from safetensors.numpy import save_file

        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(partial), metadata=text)
    else:
        import torch  # imported here: the table-only scripts (figures, curves) need no torch
        from safetensors.torch import save_file

        converted = {
            k: (torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v.contiguous())
            for k, v in tensors.items()
        }
        save_file(converted, str(partial), metadata=text)
    # safetensors creates its file 0600: give it the mode any other file gets, so others can read a shared tree
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(partial, 0o666 & ~umask)
    os.replace(partial, path)


def read_tensors(path: Path | str, names: Sequence[str] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(name -> torch tensor, metadata) of a safetensors file: every tensor, or only ``names``."""
    return _read_safetensors(path, names, "pt")


def read_arrays(path: Path | str, names: Sequence[str] | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """As :func:`read_tensors`, as numpy arrays and without importing torch (not for bfloat16 tensors)."""
    return _read_safetensors(path, names, "np")


def _read_safetensors(path: Path | str, names: Sequence[str] | None, framework: str) -> tuple[dict, dict[str, Any]]:
    from safetensors import safe_open

    with safe_open(str(path), framework=framework) as handle:
        metadata = {k: json.loads(v) for k, v in (handle.metadata() or {}).items()}
        return {name: handle.get_tensor(name) for name in (names or handle.keys())}, metadata


_SAFETENSORS_DTYPES = {
    "uint8": "U8",
    "int32": "I32",
    "int64": "I64",
    "float16": "F16",
    "bfloat16": "BF16",
    "float32": "F32",
}


class TensorStream:
    """Writes a safetensors file tensor after tensor, each in chunks, so a tensor larger than the
    memory at hand (decoded images, trunk activations) never exists in RAM whole.

    The header (names, shapes, offsets) is only known at the end: room for it is reserved up front
    and filled with the header padded by spaces, which the format allows. The file appears under
    ``path`` only on :meth:`close`; on an error the partial file is removed.
    """

    def __init__(self, path: Path | str, metadata: dict[str, Any] | None = None, max_tensors: int = 8):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.partial = self.path.with_name(self.path.name + ".part")
        self.metadata = {k: json.dumps(v) for k, v in (metadata or {}).items()}
        # each entry needs < 120 bytes (name, dtype, shape, two offsets of 20 digits at most)
        self.reserved = _aligned(len(json.dumps({"__metadata__": self.metadata})) + max_tensors * 200 + 64)
        self.header: dict[str, Any] = {}
        self.offset = 0
        self.current: tuple[str, str, list[int], int, int] | None = None  # name, dtype, row shape, rows, start
        self.file = open(self.partial, "wb")
        self.file.write(b"\0" * (8 + self.reserved))

    def begin(self, name: str) -> None:
        if self.current is not None:
            raise RuntimeError(f"tensor {self.current[0]!r} is not ended")
        self.current = (name, "", [], 0, self.offset)

    def write(self, chunk) -> None:
        """Rows of the current tensor: an array or CPU tensor whose first axis is the row axis."""
        import torch

        name, dtype, row_shape, rows, start = self.current
        chunk = chunk if isinstance(chunk, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(chunk))
        if chunk.device.type != "cpu":
            raise ValueError(f"{name}: a {chunk.device.type} tensor; move it to the CPU first")
        chunk = chunk.contiguous()
        kind = str(chunk.dtype).removeprefix("torch.")
        if rows and (kind != dtype or list(chunk.shape[1:]) != row_shape):
            raise ValueError(f"{name}: chunk {kind}{list(chunk.shape)} after rows of {dtype}{row_shape}")
        data = chunk.view(torch.uint8).numpy() if chunk.numel() else np.zeros(0, np.uint8)
        self.file.write(data.tobytes())
        self.offset += data.nbytes
        self.current = (name, kind, list(chunk.shape[1:]), rows + len(chunk), start)  # (an empty chunk names the type)

    def end(self, dtype: str | None = None, row_shape: Sequence[int] | None = None) -> None:
        """Close the current tensor (``dtype``/``row_shape`` name an empty tensor's type)."""
        name, kind, shape, rows, start = self.current
        if not kind:  # nothing written: the caller names the type
            kind, shape = dtype, list(row_shape or [])
        self.header[name] = {
            "dtype": _SAFETENSORS_DTYPES[kind],
            "shape": [rows, *shape],
            "data_offsets": [start, self.offset],
        }
        self.current = None

    def add(self, name: str, tensor) -> None:
        """A whole (small) tensor."""
        self.begin(name)
        self.write(tensor)
        self.end()

    def close(self) -> None:
        header = json.dumps({**self.header, "__metadata__": self.metadata}).encode()
        if len(header) > self.reserved:
            raise RuntimeError(f"safetensors header of {len(header)} bytes exceeds the {self.reserved} reserved")
        self.file.seek(0)
        self.file.write(len(header + b" " * (self.reserved - len(header))).to_bytes(8, "little"))
        self.file.write(header + b" " * (self.reserved - len(header)))
        self.file.close()
        os.replace(self.partial, self.path)

    def __enter__(self) -> TensorStream:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.file.close()
            self.partial.unlink(missing_ok=True)


def _aligned(size: int, alignment: int = 8) -> int:
    return -(-size // alignment) * alignment


def read_rows(path: Path | str, name: str, device=None, rows: Sequence[int] | None = None, chunk_rows: int = 1024):
    """Rows ``rows`` (default: all) of tensor ``name`` of a safetensors file, read run by run of
    consecutive rows, chunk by chunk, straight into one tensor on ``device``: neither the rows left
    out nor a second whole copy ever exist in memory."""
    import torch
    from safetensors import safe_open

    device = torch.device(device or "cpu")
    with safe_open(str(path), framework="pt") as handle:
        tensor = handle.get_slice(name)
        shape = tensor.get_shape()
        rows = np.arange(shape[0]) if rows is None else np.asarray(rows, dtype=np.int64)
        out = torch.empty([len(rows), *shape[1:]], dtype=tensor[0:0].dtype, device=device)
        runs = np.split(np.arange(len(rows)), np.flatnonzero(np.diff(rows) != 1) + 1) if len(rows) else []
        for run in runs:
            for start in range(0, len(run), chunk_rows):
                part = run[start : start + chunk_rows]
                out[part[0] : part[-1] + 1].copy_(tensor[int(rows[part[0]]) : int(rows[part[-1]]) + 1])
        return out


def read_tensor_metadata(path: Path | str) -> dict[str, Any]:
    """The metadata of a safetensors file, without reading its tensors."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return {k: json.loads(v) for k, v in (handle.metadata() or {}).items()}


_NUMPY_DTYPES = {"U8": np.uint8, "I32": np.int32, "I64": np.int64, "F16": np.float16, "F32": np.float32}


def memmap_tensor(path: Path | str, name: str) -> np.ndarray:
    """Tensor ``name`` of a safetensors file as a read-only memory map: nothing is read until used."""
    with open(path, "rb") as handle:
        size = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(size))
    entry = header[name]
    if entry["dtype"] not in _NUMPY_DTYPES:
        raise ValueError(f"{path}: {name} is {entry['dtype']}, which numpy cannot map")
    begin, end = entry["data_offsets"]
    if begin == end:
        return np.zeros(entry["shape"], _NUMPY_DTYPES[entry["dtype"]])
    return np.memmap(
        path, dtype=_NUMPY_DTYPES[entry["dtype"]], mode="r", offset=8 + size + begin, shape=tuple(entry["shape"])
    )
