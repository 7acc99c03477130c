"""Dataset stage: Fashion-MNIST, ImageNet-21k tars over a loopback HTTP server, ImageFolder, split."""

import gzip
import hashlib
import http.server
import io
import tarfile
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from headstart.core.download import DownloadError, download
from headstart.core.images import to_rgb
from headstart.core.vocabulary import fashion_mnist_local
from headstart.data.classes import ClassesError, TargetClass, resolve_classes
from headstart.data.sources import (
    DatasetError,
    IngestLog,
    StageFiles,
    download_archive,
    download_fashion_mnist,
    extract_listed,
    imagefolder_stage,
    ingest_fashion_mnist,
    ingest_imagefolder,
    ingest_imagenet21k,
    read_idx,
)
from headstart.data.split import make_manifest, shot_level_examples, shot_subset

from conftest import ROOT, QuietHandler

DEBIAN_FASHION = "/usr/share/datasets/fashion-mnist"
CLASSES = [TargetClass("n03057021", "Coat", "coat.n.01"), TargetClass("n04133789", "Sandal", "sandal.n.01")]


def jpeg_bytes(seed: int, mode: str = "RGB", fmt: str = "JPEG") -> bytes:
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).convert(mode)
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def make_tar(path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def test_fashion_mnist_from_debian_files(tmp_path):
    files = fashion_mnist_local(DEBIAN_FASHION)
    assert all(str(p).startswith(DEBIAN_FASHION) for p in files.values())
    labels = read_idx(files["train-labels-idx1-ubyte.gz"])
    images = read_idx(files["train-images-idx3-ubyte.gz"])
    assert images.shape == (60000, 28, 28) and np.bincount(labels).tolist() == [6000] * 10
    classes = resolve_classes(yaml_classes())
    log = IngestLog()
    inventory = ingest_fashion_mnist(files, classes, {"train": 12, "test": 3}, tmp_path / "img", 0, log)
    assert inventory.groupby(["class_id", "pool"]).size().unique().tolist() in ([12, 3], [3, 12])
    first = inventory[inventory["pool"] == "train"].iloc[0]
    index = int(first["image_id"].split("train")[1])
    np.testing.assert_array_equal(np.asarray(Image.open(first["path"])), images[index])
    assert labels[index] == [c.id for c in classes].index(first["class_id"])


def yaml_classes():
    import yaml

    return yaml.safe_load((ROOT / "config.yaml").read_text())["dataset"]["classes"]


def test_fashion_mnist_download_verifies_md5(tmp_path, http_root):
    served, base = http_root
    from torchvision.datasets import FashionMNIST

    assert fashion_mnist_local("/nonexistent") is None  # so the download rule fetches them
    # Serve idx files under the canonical names: right content, but not the canonical bytes.
    for name, _ in FashionMNIST.resources:
        (served / name).write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x01\x07"))
    with pytest.raises(DownloadError, match="MD5 .* does not match"):
        download_fashion_mnist(base, tmp_path / "dl")
    assert not list((tmp_path / "dl").glob("*"))  # nothing half-written is left


def test_download_with_auth_header_and_404(tmp_path, http_root, monkeypatch):
    served, base = http_root
    (served / "a.bin").write_bytes(b"hello")
    monkeypatch.setenv("MY_AUTH", "Authorization: Bearer s3cret")
    from headstart.core.download import auth_header_from_env

    with pytest.raises(DownloadError, match="refusing to send the Authorization header over plain http"):
        download(f"{base}/a.bin", tmp_path / "a.bin", headers=auth_header_from_env("MY_AUTH"))
    assert not (tmp_path / "a.bin").exists()
    got = download(
        f"{base}/a.bin",
        tmp_path / "a.bin",
        md5=hashlib.md5(b"hello").hexdigest(),
        headers=auth_header_from_env("MY_AUTH"),
        allow_plain_http_credentials=True,  # a test server on 127.0.0.1 has no TLS
    )
    assert got.read_bytes() == b"hello"
    assert QuietHandler.requests_seen[-1].get("Authorization") == "Bearer s3cret"
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(f"{base}/missing.bin", tmp_path / "m.bin")


class Redirecting(http.server.BaseHTTPRequestHandler):
    """Redirects /same/<name> to /<name> on itself and /away/<name> to the server in ``target``; serves
    /<name> with the headers it got; records every request's headers."""

    target = ""
    seen: list[tuple[str, dict]] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        Redirecting.seen.append((self.server.server_address[1], dict(self.headers)))
        if self.path.startswith("/same/"):
            self.send_response(302)
            self.send_header("Location", "/" + self.path.removeprefix("/same/"))
            self.end_headers()
        elif self.path.startswith("/away/"):
            self.send_response(302)
            self.send_header("Location", Redirecting.target + "/" + self.path.removeprefix("/away/"))
            self.end_headers()
        else:
            body = b"payload"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_the_credential_goes_to_its_origin_only_never_across_a_redirect(tmp_path):
    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirecting) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    first, second = (f"http://127.0.0.1:{server.server_address[1]}" for server in servers)
    Redirecting.target = second  # another origin: same host, another port
    credentials = {"Authorization": "Bearer s3cret"}
    try:
        Redirecting.seen.clear()
        download(f"{first}/away/a.tar", tmp_path / "a.tar", headers=credentials, allow_plain_http_credentials=True)
        assert (tmp_path / "a.tar").read_bytes() == b"payload"
        (port_first, got_first), (port_second, got_second) = Redirecting.seen
        assert got_first.get("Authorization") == "Bearer s3cret"
        assert port_second == servers[1].server_address[1] and "Authorization" not in got_second
        Redirecting.seen.clear()  # a redirect within the origin keeps it
        download(f"{first}/same/b.tar", tmp_path / "b.tar", headers=credentials, allow_plain_http_credentials=True)
        assert [headers.get("Authorization") for _, headers in Redirecting.seen] == ["Bearer s3cret"] * 2
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def imagenet_source(served, base, wnids_lists):
    (served / "train.txt").write_text("\n".join(n for names in wnids_lists["train"] for n in names))
    (served / "test.txt").write_text("\n".join(n for names in wnids_lists["test"] for n in names))
    return {
        "train_list": str(served / "train.txt"),
        "test_list": str(served / "test.txt"),
        "tar_dir": None,
        "url_template": base + "/{wnid}.tar",
    }


def test_imagenet21k_tars_over_http(tmp_path, http_root):
    served, base = http_root
    coat, sandal = CLASSES
    names = {w: [f"{w}_{i}.JPEG" for i in range(4)] for w in (coat.wnid, sandal.wnid)}
    make_tar(
        served / f"{coat.wnid}.tar",
        {
            names[coat.wnid][0]: jpeg_bytes(0),
            names[coat.wnid][1]: jpeg_bytes(1, mode="CMYK"),  # converted to RGB
            names[coat.wnid][2]: jpeg_bytes(2, fmt="PNG"),  # PNG named .JPEG: converted
            names[coat.wnid][3]: jpeg_bytes(3),
            f"{coat.wnid}_99.JPEG": jpeg_bytes(9),  # not listed: not extracted
        },
    )
    make_tar(
        served / f"{sandal.wnid}.tar",
        {
            names[sandal.wnid][0]: jpeg_bytes(4),
            names[sandal.wnid][1]: jpeg_bytes(5)[:300],  # truncated: skipped
            f"../../{names[sandal.wnid][2]}": jpeg_bytes(6),  # path traversal: skipped
            names[sandal.wnid][3]: jpeg_bytes(7),
        },
    )
    lists = {
        "train": [names[coat.wnid][:3], names[sandal.wnid][:3]],
        "test": [names[coat.wnid][3:], names[sandal.wnid][3:]],
    }
    source = imagenet_source(served, base, lists)
    downloads = tmp_path / "downloads"
    with pytest.raises(DatasetError, match=rf"{coat.wnid}.tar is neither in dataset.imagenet21k.tar_dir nor in"):
        ingest_imagenet21k(source, CLASSES, {"train": 3, "test": 1}, tmp_path / "img", tmp_path, downloads, IngestLog())
    for cls in CLASSES:  # the download rule's work (on the submitting host): ingestion reads local files only
        download_archive(source, cls.id, downloads / f"{cls.id}.tar")
    source["url_template"] = "http://127.0.0.1:9/{wnid}.tar"  # nothing listens there
    log = IngestLog()
    with pytest.raises(DatasetError, match=r"class n04133789 \(Sandal\) has 1 usable train images, the config needs 3"):
        ingest_imagenet21k(source, CLASSES, {"train": 3, "test": 1}, tmp_path / "img", tmp_path, downloads, log)
    assert {why.split(":")[0] for _, why in log.converted} == {"mode CMYK", "PNG data named .JPEG"}
    skipped = dict(log.skipped)
    assert any("unsafe" in why for why in skipped.values())
    assert names[sandal.wnid][1] in skipped  # the truncated JPEG
    assert not (tmp_path.parent / names[sandal.wnid][2]).exists()
    assert not list(tmp_path.rglob(f"{coat.wnid}_99.JPEG"))
    for path in (tmp_path / "img" / coat.wnid).glob("*.JPEG"):
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
    # With the needs met, the inventory lists exactly the usable listed images.
    inventory = ingest_imagenet21k(
        source, CLASSES, {"train": 1, "test": 1}, tmp_path / "img", tmp_path, downloads, IngestLog()
    )
    assert sorted(inventory[inventory["class_id"] == coat.wnid]["image_id"]) == [n[:-5] for n in names[coat.wnid]]
    assert len(inventory[inventory["class_id"] == sandal.wnid]) == 2


def test_imagenet21k_missing_archive_is_a_clear_error(tmp_path, http_root):
    served, base = http_root
    source = imagenet_source(served, base, {"train": [["n03057021_1.JPEG"]], "test": [["n03057021_2.JPEG"]]})
    with pytest.raises(DatasetError, match=r"cannot fetch the images of n03057021: .*HTTP 404"):
        download_archive(source, "n03057021", tmp_path / "downloads" / "n03057021.tar")
    assert not list((tmp_path / "downloads").glob("*"))  # nothing half-written is left


def test_local_tar_dir_and_safe_members(tmp_path):
    make_tar(
        tmp_path / "a.tar", {"x/../../evil.JPEG": jpeg_bytes(0), "/abs.JPEG": jpeg_bytes(1), "ok.JPEG": jpeg_bytes(2)}
    )
    log = IngestLog()
    found = extract_listed(tmp_path / "a.tar", ["evil.JPEG", "abs.JPEG", "ok.JPEG"], tmp_path / "out", log)
    assert list(found) == ["ok.JPEG"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ok.JPEG"]
    assert len([1 for _, why in log.skipped if "unsafe" in why]) == 2


def make_imagefolder(root: Path, per_class: int) -> Path:
    """``root/<wnid>/{0..per_class-1}.jpg`` for each of CLASSES; returns ``root``."""
    for cls in CLASSES:
        folder = root / cls.id
        folder.mkdir(parents=True)
        for i in range(per_class):
            (folder / f"{i}.jpg").write_bytes(jpeg_bytes(i))
    return root


def test_imagefolder_source(tmp_path):
    make_imagefolder(tmp_path / "root", 6)
    (tmp_path / "root" / CLASSES[0].wnid / "bad.jpg").write_bytes(b"not an image")
    log = IngestLog()
    inventory = ingest_imagefolder(tmp_path / "root", CLASSES, {"train": 4, "test": 2}, tmp_path / "conv", 0, log)
    assert inventory.groupby(["class_id", "pool"]).size().tolist() == [2, 4, 2, 4]  # (test, train) per class
    assert [why.startswith("UnidentifiedImageError") for _, why in log.skipped] == [True]


def inventory_for(n_train: int, n_test: int) -> pd.DataFrame:
    rows = [
        {"image_id": f"{w}_{p}{i}", "path": f"/x/{w}_{p}{i}", "class_id": w, "pool": p}
        for w in ("n1", "n2")
        for p, n in (("train", n_train), ("test", n_test))
        for i in range(n)
    ]
    return pd.DataFrame(rows)


def test_split_counts_nesting_and_determinism():
    inventory = inventory_for(30, 12)
    manifest = make_manifest(inventory, train_per_class=25, val_per_class=5, test_per_class=10, seed=3)
    counts = manifest.groupby(["class_id", "split"]).size().to_dict()
    assert counts == {
        ("n1", "test"): 10,
        ("n1", "train"): 20,
        ("n1", "val"): 5,
        ("n2", "test"): 10,
        ("n2", "train"): 20,
        ("n2", "val"): 5,
    }
    five, ten = set(shot_subset(manifest, 5)["image_id"]), set(shot_subset(manifest, 10)["image_id"])
    assert len(five) == 10 and len(ten) == 20 and five < ten
    assert not set(manifest[manifest["split"] == "val"]["image_id"]) & set(shot_subset(manifest, 20)["image_id"])
    again = make_manifest(inventory, 25, 5, 10, seed=3)
    pd.testing.assert_frame_equal(manifest, again)
    other = make_manifest(inventory, 25, 5, 10, seed=4)
    assert set(shot_subset(other, 5)["image_id"]) != five


def test_fashion_mnist_images_follow_the_label_name_not_the_list_position(tmp_path):
    files = fashion_mnist_local(DEBIAN_FASHION)
    labels = read_idx(files["train-labels-idx1-ubyte.gz"])
    # Coat and Shirt swapped, and only three of the ten classes
    classes = [
        TargetClass("n04197391", "Shirt", "shirt.n.01"),
        TargetClass("n03057021", "Coat", "coat.n.01"),
        TargetClass("n02769748", "Bag", "bag.n.04"),
    ]
    inventory = ingest_fashion_mnist(files, classes, {"train": 5, "test": 2}, tmp_path / "img", 0, IngestLog())
    train = inventory[inventory["pool"] == "train"]
    assert set(train["class_id"]) == {c.id for c in classes}
    expected = {"n04197391": 6, "n03057021": 4, "n02769748": 8}  # Fashion-MNIST's label numbers
    for _, row in train.iterrows():
        assert labels[int(row["image_id"].split("train")[1])] == expected[row["class_id"]]


def test_imagefolder_files_with_the_same_stem_are_two_images(tmp_path):
    make_imagefolder(tmp_path / "root", 3)
    for cls in CLASSES:
        folder = tmp_path / "root" / cls.id
        for i in range(3):
            (folder / f"{i}.png").write_bytes(jpeg_bytes(10 + i, fmt="PNG"))
            (folder / f"{i}.jpeg").write_bytes(jpeg_bytes(20 + i, mode="CMYK"))  # converted
    inventory = ingest_imagefolder(
        tmp_path / "root", CLASSES, {"train": 7, "test": 2}, tmp_path / "conv", 0, IngestLog()
    )
    assert inventory["image_id"].is_unique and inventory["path"].is_unique and len(inventory) == 18
    assert f"{CLASSES[0].wnid}_0.png" in set(inventory["image_id"])


def test_a_class_short_of_images_names_the_skipped_ones_in_the_log(tmp_path, caplog):
    for cls in CLASSES:
        folder = tmp_path / "root" / cls.id
        folder.mkdir(parents=True)
        for i in range(6 if cls is CLASSES[0] else 4):
            (folder / f"{i}.jpg").write_bytes(jpeg_bytes(i))
    for i in range(2):  # two of the sandals' six images are broken: 4 usable, 6 needed
        (tmp_path / "root" / CLASSES[1].wnid / f"broken{i}.jpg").write_bytes(b"not an image")
    dataset = {
        "source": "imagefolder",
        "imagefolder": {"root": str(tmp_path / "root")},
        "classes": [{"synset": c.synset} for c in CLASSES],
    }
    split = {"train_per_class": 4, "test_per_class": 2}
    files = StageFiles(tmp_path / "images.parquet", tmp_path / "report.tsv", tmp_path / "images", tmp_path / "dl")
    with pytest.raises(
        DatasetError,
        match=r"^class n04133789 \(sandal\) has \d usable \w+ images, the config needs "
        r"\d .*; 2 images were skipped \(listed above in this log\)$",
    ):
        imagefolder_stage(dataset, split, 0, files)
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped ")]
    assert [m.split(": ")[0] for m in skipped] == [
        f"skipped {tmp_path}/root/{CLASSES[1].wnid}/broken{i}.jpg" for i in range(2)
    ]
    split["train_per_class"] = 2  # enough now: the report lists the two skipped files
    inventory = imagefolder_stage(dataset, split, 0, files)
    assert len(inventory) == 10
    pd.testing.assert_frame_equal(pd.read_parquet(files.inventory), inventory)
    report = pd.read_csv(tmp_path / "report.tsv", sep="\t")
    assert report["status"].tolist() == ["skipped", "skipped"] and report["image"].str.endswith(".jpg").all()


def test_a_verb_synset_is_a_classes_error():
    with pytest.raises(ClassesError, match="^dataset.classes: coat.v.01 is not a noun synset"):
        resolve_classes([{"synset": "coat.v.01"}])
    with pytest.raises(ClassesError, match="^dataset.classes: n99999999 is not a WordNet 3.0 noun synset"):
        resolve_classes([{"synset": "n99999999"}])


def test_shot_level_examples_keep_the_first_ranks_of_each_class_in_the_features_order():
    manifest = pd.DataFrame(
        {
            "image_id": ["a0", "a1", "a2", "b0", "b1"],
            "class_id": ["n2", "n2", "n2", "n1", "n1"],
            "split": "train",
            "rank": [0, 1, 2, 0, 1],
        }
    )
    classes = pd.DataFrame({"class_id": ["n1", "n2"]})  # label 0 = n1, 1 = n2
    ids = ["b1", "a2", "a0", "b0", "a1"]  # the extract file's order
    features = np.arange(5.0)[:, None] * np.ones((1, 3))
    examples, labels = shot_level_examples(features, ids, manifest, classes, 1)
    np.testing.assert_array_equal(examples[:, 0], [2.0, 3.0])  # a0 and b0, in the file's order
    np.testing.assert_array_equal(labels, [1, 0])
    examples, labels = shot_level_examples(features, ids, manifest, classes, 2)
    np.testing.assert_array_equal(examples[:, 0], [0.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(labels, [0, 1, 0, 1])


def test_a_16_bit_image_is_scaled_to_8_bits_by_its_range_not_clipped(tmp_path):
    # a smooth 16-bit gradient from 1 000 to 61 000: convert("RGB") would clip everything above 255 to white
    values = np.linspace(1000, 61000, 64 * 48).reshape(48, 64).astype(np.uint16)
    image = Image.fromarray(values)  # mode I;16
    assert image.mode == "I;16"
    expected = np.rint((values.astype(float) - 1000) / 60000 * 255).astype(np.uint8)  # by hand
    rgb, how = to_rgb(image)
    assert rgb.mode == "RGB" and how == "mode I;16 scaled from [1000, 61000] to 8 bits"
    np.testing.assert_array_equal(np.asarray(rgb)[..., 0], expected)
    np.testing.assert_array_equal(np.asarray(rgb)[..., 1], expected)
    # through an ImageFolder: the stored JPEG is the scaled image (JPEG's loss aside), and the report says how
    make_imagefolder(tmp_path / "root", 3)
    image.save(tmp_path / "root" / CLASSES[0].wnid / "photo16.png")
    log = IngestLog()
    inventory = ingest_imagefolder(tmp_path / "root", CLASSES, {"train": 2, "test": 1}, tmp_path / "conv", 0, log)
    stored = inventory.set_index("image_id").at[f"{CLASSES[0].wnid}_photo16.png", "path"]
    with Image.open(stored) as converted:
        grey = np.asarray(converted.convert("L"), dtype=float)
    assert np.abs(grey - expected).mean() < 2  # not a black-and-white mask (that would be ~100 off)
    assert log.converted == [(str(tmp_path / "root" / CLASSES[0].wnid / "photo16.png"), f"PNG data, {how}")]
    # float and 32-bit integer images alike; a constant one becomes black, not a division by zero
    assert to_rgb(Image.fromarray(np.full((4, 4), 7.5, np.float32)))[1] == "mode F scaled from [7.5, 7.5] to 8 bits"
    assert np.asarray(to_rgb(Image.fromarray(np.full((4, 4), 7.5, np.float32)))[0]).max() == 0
    # every other mode as PIL converts it: CMYK and palette to RGB, alpha dropped
    rgba = Image.fromarray(np.full((2, 2, 4), [10, 20, 30, 0], np.uint8), mode="RGBA")
    assert np.asarray(to_rgb(rgba)[0])[0, 0].tolist() == [10, 20, 30] and to_rgb(rgba)[1] == "mode RGBA"


def test_nested_folders_and_too_small_images_are_reported(tmp_path):
    make_imagefolder(tmp_path / "root", 3)
    nested = tmp_path / "root" / CLASSES[0].wnid / "more"
    nested.mkdir()
    (nested / "9.jpg").write_bytes(jpeg_bytes(9))
    tiny = tmp_path / "root" / CLASSES[0].wnid / "dot.png"
    Image.new("RGB", (1, 1), (200, 10, 10)).save(tiny)
    log = IngestLog()
    inventory = ingest_imagefolder(tmp_path / "root", CLASSES, {"train": 2, "test": 1}, tmp_path / "conv", 0, log)
    assert len(inventory) == 6  # neither the nested image nor the 1x1 one
    assert (str(nested), "a folder inside a class folder: its images are not read") in log.skipped
    assert (str(tiny), "1x1 px: a side below 8 px") in log.skipped
    log.write(tmp_path / "report.tsv")
    report = (tmp_path / "report.tsv").read_text()
    assert f"skipped\t{nested}\t" in report and f"skipped\t{tiny}\t1x1 px" in report
