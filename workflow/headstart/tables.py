"""Parquet and safetensors I/O with provenance metadata."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

METADATA_KEY = b"headstart"


def write_parquet(frame: pd.DataFrame, path: Path | str, metadata: dict[str, Any] | None = None,
                  index: bool | None = None) -> None:
    """Write ``frame`` atomically; ``metadata`` lands in the schema under 'headstart' (JSON)."""
    table = pa.Table.from_pandas(frame, preserve_index=index)
    if metadata is not None:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), METADATA_KEY: json.dumps(metadata).encode()})
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
    """numpy arrays or torch tensors to safetensors, atomically; metadata values are stored as JSON."""
    import torch  # imported here: the table-only scripts (figures, curves) need no torch
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    converted = {k: (torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v.contiguous())
                 for k, v in tensors.items()}
    save_file(converted, str(partial), metadata={k: json.dumps(v) for k, v in (metadata or {}).items()})
    os.replace(partial, path)


def read_tensors(path: Path | str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(name -> torch tensor, metadata) of a safetensors file."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = {k: json.loads(v) for k, v in (handle.metadata() or {}).items()}
        return {name: handle.get_tensor(name) for name in handle.keys()}, metadata
