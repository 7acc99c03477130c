"""The initial-head file: what the writer writes is what the reader reads, each classifier's tensors and one
row per class are required on both sides, and a linear head's file carries no classifier key."""

from __future__ import annotations

import numpy as np
import pytest

from headstart.core.tables import read_arrays, write_tensors
from headstart.heads.headfile import HeadFileError, read_head, write_head

CLASSES = ["coat", "sandal", "bag"]


def head(rows: int = 3, features: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"weight": rng.normal(size=(rows, features)).astype(np.float32), "bias": np.zeros(rows, np.float32)}


def test_a_head_reads_back_as_written(tmp_path):
    path = tmp_path / "h.safetensors"
    tensors = head()
    write_head(path, {**tensors, "unused": np.ones(2)}, "wordnet", 3, CLASSES, shots=None, ks={"coat": 3})
    read, meta = read_head(path)
    assert set(read) == {"weight", "bias"} and np.array_equal(read["weight"], tensors["weight"])  # only its own
    assert meta == {"method": "wordnet", "k": "3", "shots": None, "ks": {"coat": 3}, "classes": CLASSES}
    cosine = {**tensors, "scale": np.array([7.0], np.float32)}
    write_head(path, cosine, "imprint", "0", CLASSES, classifier="cosine", shots=5)
    read, meta = read_head(path)
    assert meta["classifier"] == "cosine" and read["scale"][0] == 7.0


@pytest.mark.parametrize(
    "tensors, classifier, message",
    [
        ({"weight": head()["weight"]}, "linear", r"a linear head needs bias"),
        (head(), "cosine", r"a cosine head needs scale"),
        (head(), "cotuning", r"a cotuning head needs source_weight, source_bias, relationship"),
        (head(rows=2), "linear", r"weight \(2, 4\) and bias \(2,\) are not a head of 3 classes"),
        ({**head(), "bias": np.zeros(4, np.float32)}, "linear", r"bias \(4,\) are not a head of 3 classes"),
        (head(), "softmax", r"classifier 'softmax' is none of linear, cosine, cotuning"),
    ],
)
def test_a_head_that_is_not_one_is_refused_when_written(tmp_path, tensors, classifier, message):
    with pytest.raises(HeadFileError, match=message):
        write_head(tmp_path / "h.safetensors", tensors, "m", "0", CLASSES, classifier=classifier)
    assert not (tmp_path / "h.safetensors").exists()


def test_a_file_that_is_no_head_is_refused_when_read(tmp_path):
    path = tmp_path / "h.safetensors"
    write_tensors(head(), path, {"method": "random", "k": "0"})
    with pytest.raises(HeadFileError, match=r"no classes in its metadata: not a head file"):
        read_head(path)
    write_tensors(head(), path, {"method": "imprint", "k": "0", "classes": CLASSES, "classifier": "cosine"})
    with pytest.raises(HeadFileError, match=r"a cosine head needs scale"):
        read_head(path)
    write_head(path, head(), "random", "0", CLASSES, seed=1)
    assert "classifier" not in read_arrays(path)[1]  # a linear head's file, as every reader before knew it
