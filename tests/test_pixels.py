"""The streamed safetensors writer and the pixel cache's file format."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from headstart.core.tables import (
    TensorStream,
    memmap_tensor,
    read_arrays,
    read_rows,
    read_tensor_metadata,
    read_tensors,
    write_tensors,
)
from headstart.data.pixels import PixelCache, decode_images

from test_train import write_images


def test_streamed_tensors_read_back_with_safetensors_itself(tmp_path):
    trunk = torch.randn(10, 4, 3, 3).to(torch.bfloat16)
    features = np.arange(20, dtype=np.float32).reshape(10, 2)
    with TensorStream(tmp_path / "x.safetensors", {"image_ids": [f"i{n}" for n in range(10)], "model": "m"}) as stream:
        stream.begin("trunk")
        for start in range(0, 10, 3):  # written in chunks, never whole
            stream.write(trunk[start : start + 3])
        stream.end()
        stream.add("features", features)
        stream.begin("empty")
        stream.end("float32", [7])
    loaded = load_file(tmp_path / "x.safetensors")  # the library's own reader checks the header and offsets
    assert torch.equal(loaded["trunk"], trunk) and loaded["trunk"].dtype == torch.bfloat16
    np.testing.assert_array_equal(loaded["features"].numpy(), features)
    assert loaded["empty"].shape == (0, 7)
    assert read_tensor_metadata(tmp_path / "x.safetensors") == {"image_ids": [f"i{n}" for n in range(10)], "model": "m"}
    assert torch.equal(read_rows(tmp_path / "x.safetensors", "trunk", chunk_rows=4), trunk)
    np.testing.assert_array_equal(memmap_tensor(tmp_path / "x.safetensors", "features"), features)
    with pytest.raises(ValueError, match="numpy cannot map"):
        memmap_tensor(tmp_path / "x.safetensors", "trunk")


def test_numpy_and_torch_tensors_round_trip_either_way(tmp_path):
    weight, ids = np.arange(6, dtype=np.float32).reshape(2, 3), ["a", "b"]
    write_tensors({"weight": weight, "bias": np.zeros(2, np.float32)}, tmp_path / "np.safetensors", {"ids": ids})
    write_tensors(
        {"weight": torch.from_numpy(weight), "bias": torch.zeros(2)}, tmp_path / "pt.safetensors", {"ids": ids}
    )
    assert (tmp_path / "np.safetensors").read_bytes() == (tmp_path / "pt.safetensors").read_bytes()
    arrays, metadata = read_arrays(tmp_path / "pt.safetensors", ["weight"])
    np.testing.assert_array_equal(arrays["weight"], weight)
    assert list(arrays) == ["weight"] and metadata == {"ids": ids}
    tensors, _ = read_tensors(tmp_path / "np.safetensors")
    assert torch.equal(tensors["weight"], torch.from_numpy(weight)) and set(tensors) == {"weight", "bias"}


def test_a_failed_stream_leaves_no_file(tmp_path):
    with pytest.raises(ValueError, match="chunk"):
        with TensorStream(tmp_path / "y.safetensors") as stream:
            stream.begin("a")
            stream.write(torch.zeros(2, 3))
            stream.write(torch.zeros(2, 4))  # another row shape
    assert list(tmp_path.iterdir()) == []


def test_pixel_cache_keeps_every_image_at_its_own_size(tmp_path):
    paths = write_images(tmp_path, [(28, 28, 1), (50, 37, 3), (37, 61, 3)])
    decode_images(
        paths, ["a", "b", "c"], tmp_path / "p.safetensors", resize=40, crop=32, centre_crop=False, num_workers=2
    )
    cache = PixelCache(tmp_path / "p.safetensors")
    assert cache.image_ids == ["a", "b", "c"] and len(cache) == 3
    assert [cache.image(i).shape for i in range(3)] == [(40, 40, 3), (54, 40, 3), (40, 65, 3)]  # shorter side 40
    assert cache.crops([2, 0], 32).shape == (2, 32, 32, 3)
    with pytest.raises(ValueError, match="smaller than the crop"):
        decode_images(paths, ["a", "b", "c"], tmp_path / "q.safetensors", resize=20, crop=32, centre_crop=False)
    assert not (tmp_path / "q.safetensors").exists()


def test_decoding_processes_hand_over_chunks_and_store_the_same_bytes(tmp_path):
    """7 images of mixed sizes in chunks of 3 (the last one short), by 2 processes: the same file, byte for
    byte, as one process decoding them one at a time."""
    sizes = [(28, 28, 1), (50, 37, 3), (37, 61, 3), (40, 40, 3), (33, 70, 1), (64, 48, 3), (45, 45, 3)]
    paths, ids = write_images(tmp_path, sizes), [f"i{n}" for n in range(len(sizes))]
    for centre_crop in (False, True):
        decode_images(paths, ids, tmp_path / "one.safetensors", 40, 32, centre_crop, num_workers=0, chunk=1)
        decode_images(paths, ids, tmp_path / "two.safetensors", 40, 32, centre_crop, num_workers=2, chunk=3)
        assert (tmp_path / "one.safetensors").read_bytes() == (tmp_path / "two.safetensors").read_bytes()
        cache = PixelCache(tmp_path / "two.safetensors")
        assert cache.image_ids == ids and cache.image(5).shape == ((32, 32, 3) if centre_crop else (53, 40, 3))


def test_read_rows_reads_only_the_rows_asked_for(tmp_path):
    tensor = torch.arange(60, dtype=torch.float32).reshape(20, 3)
    with TensorStream(tmp_path / "r.safetensors") as stream:
        stream.add("x", tensor)
        stream.add("empty", np.zeros((0, 5), np.float32))
    rows = [0, 1, 2, 7, 9, 10, 19]  # three runs of consecutive rows
    assert torch.equal(read_rows(tmp_path / "r.safetensors", "x", rows=rows, chunk_rows=2), tensor[rows])
    assert read_rows(tmp_path / "r.safetensors", "x", rows=[]).shape == (0, 3)
    assert load_file(tmp_path / "r.safetensors")["empty"].shape == (0, 5)  # an empty tensor keeps its row shape


def test_a_photo_taken_sideways_is_used_upright_in_training_and_prediction(tmp_path):
    """Issue 28: the EXIF orientation is applied by the one function decoding (training) and the evaluation
    transform (extraction, prediction) both use."""
    from PIL import Image

    from headstart.core.images import to_rgb
    from headstart.extract.models import eval_transform

    upright = np.zeros((40, 20, 3), np.uint8)  # 40 high, 20 wide: a red top half, a blue bottom half
    upright[:20, :, 0], upright[20:, :, 2] = 255, 255
    # stored as a camera does: the sensor's landscape pixels, and orientation 6 (rotate 90 degrees clockwise to view)
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    with Image.open(tmp_path / "phone.jpg") as image:
        assert image.size == (40, 20)  # as stored: landscape
        rgb, _ = to_rgb(image)
    assert rgb.size == (20, 40)  # as shown: portrait, red on top
    top, bottom = np.asarray(rgb)[5, 10], np.asarray(rgb)[35, 10]
    assert top[0] > 200 and top[2] < 60 and bottom[2] > 200 and bottom[0] < 60
    decode_images([str(tmp_path / "phone.jpg")], ["p"], tmp_path / "pixels.safetensors", 20, 20, centre_crop=False)
    decoded = PixelCache(tmp_path / "pixels.safetensors").image(0)
    assert decoded.shape == (40, 20, 3) and decoded[5, 10, 0] > 200 and decoded[35, 10, 2] > 200
    transformed = eval_transform(20, 20, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))(Image.open(tmp_path / "phone.jpg"))
    assert transformed.shape == (3, 20, 20)  # the centre of the upright image: rows 10-29 of 40
    assert transformed[0, 0, 10] > 0.8 and transformed[2, -1, 10] > 0.8  # red above, blue below
