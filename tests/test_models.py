"""Source networks: real weights, the three-part split, extraction, clear errors."""

import re

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image
from skimage import data as skdata

from headstart.core.devices import pick_device
from headstart.core.tables import read_tensors
from headstart.data.pixels import decode_images
from headstart.data.split import imagenet1k_wnids
from headstart.extract.features import CentreCrops, SplitOutputs, extract_split
from headstart.extract.models import ModelError, eval_transform, load_source_model, normalization, split_model

from conftest import ROOT

MODELS = yaml.safe_load((ROOT / "config.yaml").read_text())["models"]
LITE0 = MODELS["efficientnet_lite0"]


@pytest.fixture(scope="module")
def lite0():
    model = load_source_model(LITE0)
    mean, std = normalization(model, LITE0)
    return model, eval_transform(256, 224, mean, std)


def top5(model, transform, image):
    with torch.inference_mode():
        logits = model(transform(image)[None])[0]
    names = [
        line.split(" : ")[1] for line in (ROOT / "workflow/data/paper/ilsvrc2012-synsets.txt").read_text().splitlines()
    ]
    return [names[i] for i in logits.topk(5).indices]


def test_default_network_has_real_imagenet_weights(lite0):
    model, transform = lite0
    cat = top5(model, transform, Image.fromarray(skdata.chelsea()))
    assert any("cat" in name for name in cat[:2]), cat  # Egyptian cat / tabby / tiger cat
    coffee = top5(model, transform, Image.fromarray(skdata.coffee()))
    assert coffee[0].startswith("espresso") or coffee[0] == "cup", coffee


def test_mean_std_come_from_the_models_own_config(lite0):
    model, _ = lite0
    assert normalization(model, LITE0) == (model.pretrained_cfg["mean"], model.pretrained_cfg["std"])
    resnet = load_source_model(
        {**MODELS["resnet101"], "arch": "resnet18", "weights": {"path": save_random("resnet18")}}
    )
    assert normalization(resnet, {**MODELS["resnet101"], "arch": "resnet18"}) == (
        (0.485, 0.456, 0.406),
        (0.229, 0.224, 0.225),
    )


def save_random(arch: str, path=None) -> str:
    import tempfile

    import torchvision

    path = path or tempfile.mktemp(suffix=".pth")
    torch.save(torchvision.models.get_model(arch, weights=None).state_dict(), path)
    return path


def test_split_composition_equals_the_full_model(lite0):
    model, _ = lite0
    x = torch.randn(2, 3, 160, 160)
    with torch.inference_mode():
        full = model(x)
        for trainable in (LITE0["trainable"], []):
            parts = split_model(model, trainable, "classifier")
            assert torch.allclose(parts.head(parts.trainable(parts.trunk(x))), full, atol=1e-5)
    parts = split_model(model, LITE0["trainable"], "classifier")
    assert parts.head.weight.shape == (1000, 1280)
    assert not any(p.requires_grad for p in parts.trunk.parameters())


def test_resnet101_paper_model_from_a_local_weights_file(tmp_path):
    path = save_random("resnet101", tmp_path / "resnet101.pth")
    entry = {**MODELS["resnet101"], "weights": {"path": str(path)}}
    model = load_source_model(entry)
    parts = split_model(model, entry["trainable"], entry["head"])
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        assert torch.allclose(parts.forward(x), model(x), atol=1e-4)
        assert parts.trunk(x).shape == (1, 1024, 14, 14)  # layer3 output: layer4 is trainable
    assert parts.head.in_features == 2048


def test_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="weights file .* does not exist"):
        load_source_model({**LITE0, "weights": {"path": str(tmp_path / "none.pth")}})
    wrong = save_random("resnet18", tmp_path / "r18.pth")
    with pytest.raises(ModelError, match="wrong architecture"):
        load_source_model({**LITE0, "weights": {"path": wrong, "key_order": True}})
    with pytest.raises(ModelError, match="wrong architecture"):
        load_source_model({**MODELS["resnet101"], "weights": {"path": wrong}})
    with pytest.raises(ModelError, match="unknown timm model 'efficientnet_b99'"):
        load_source_model({**LITE0, "arch": "efficientnet_b99"})
    with pytest.raises(ModelError, match="unknown torchvision model"):
        load_source_model({**MODELS["resnet101"], "arch": "resnet7"})
    with pytest.raises(ModelError, match="weights package 'no_such_pkg' is not installed"):
        load_source_model({**LITE0, "weights": {"package_file": "no_such_pkg:x.pth"}})
    with pytest.raises(ModelError, match="trainable module 'layer9' not found"):
        split_model(
            load_source_model({**MODELS["resnet101"], "arch": "resnet18", "weights": {"path": wrong}}), ["layer9"], "fc"
        )


def test_extraction_equals_a_direct_forward(tmp_path, lite0):
    model, _ = lite0
    mean, std = normalization(model, LITE0)
    transform = eval_transform(72, 64, mean, std)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(5):
        path = tmp_path / f"{i}.png"
        Image.fromarray(
            rng.integers(0, 255, (28 + i, 30, 3 if i % 2 else 1)[: 3 if i % 2 else 2], dtype=np.uint8)
        ).save(path)
        paths.append(str(path))
    parts = split_model(model, LITE0["trainable"], LITE0["head"])
    decode_images(paths, [f"id{i}" for i in range(5)], tmp_path / "test.safetensors", 72, 64, centre_crop=True)
    result = extract_split(
        parts,
        tmp_path / "test.safetensors",
        CentreCrops(64, mean, std, 2, pick_device("cpu")),
        imagenet1k_wnids(),
        SplitOutputs(tmp_path / "logits.parquet", tmp_path / "features.safetensors"),
    )
    with torch.inference_mode():
        batch = torch.stack([transform(Image.open(p)) for p in paths])
        direct = model(batch).numpy()
        trunk = parts.trunk(batch).numpy()
    # fp32 on the CPU both ways; only the memory format differs (channels_last) -> float rounding
    np.testing.assert_allclose(result.logits, direct, atol=2e-4, rtol=1e-4)
    stored, meta = read_tensors(tmp_path / "features.safetensors")
    assert stored["trunk"].dtype == torch.float32 and meta["image_ids"] == [f"id{i}" for i in range(5)]
    np.testing.assert_allclose(stored["trunk"].numpy(), trunk, atol=1e-4, rtol=1e-4)  # kept in the trunk's fp32
    np.testing.assert_array_equal(stored["features"].numpy(), result.features)
    logits = pd.read_parquet(tmp_path / "logits.parquet")
    assert logits.index.tolist() == [f"id{i}" for i in range(5)]
    np.testing.assert_array_equal(logits.to_numpy(), result.logits)
    frame = pd.DataFrame(result.logits, columns=imagenet1k_wnids())
    assert frame.shape == (5, 1000)


def test_jobs_read_the_network_from_the_saved_weights_file_alone(tmp_path, lite0):
    """save_source_weights (the localrule, the only step that may download) writes one file; load_parts reads
    that file only: the same network, with the package's weights file out of reach."""
    from headstart.extract.models import load_parts, save_source_weights

    save_source_weights(LITE0, tmp_path / "weights.safetensors", "efficientnet_lite0")
    unreachable = {**LITE0, "weights": {"package_file": "no_such_pkg:x.pth"}}  # loading from it would fail
    parts, mean, std = load_parts(unreachable, tmp_path / "weights.safetensors")
    model, transform = lite0
    original = split_model(load_source_model(LITE0), LITE0["trainable"], LITE0["head"])
    image = transform(Image.fromarray(skdata.chelsea()))[None]
    with torch.inference_mode():
        torch.testing.assert_close(parts.forward(image), original.forward(image), rtol=0, atol=0)
    assert (mean, std) == normalization(model, LITE0)
    with pytest.raises(ModelError, match="weights file .*none.safetensors does not exist"):
        load_parts(LITE0, tmp_path / "none.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match="cannot read weights file"):
        load_parts(LITE0, tmp_path / "bad.safetensors")


@pytest.mark.parametrize(
    "weights,message",
    [
        (
            {"torchvision": "ResNet18_Weights.IMAGENET1K_V1"},
            r"model resnet18: cannot fetch torchvision's .*weights.path",
        ),
        ({"timm_pretrained": True}, r"model resnet18: cannot fetch timm's pretrained weights .*weights.path"),
    ],
)
def test_weights_that_cannot_be_fetched_are_one_line_naming_the_entry_to_set(tmp_path, weights, message):
    """Issue 28: offline, a torchvision or timm weights source says what could not be fetched and which
    path/url entry to set, in one line (no network here: a proxy nothing answers, and the hub offline)."""
    import os
    import subprocess
    import sys

    library = "torchvision" if "torchvision" in weights else "timm"
    code = (
        "from headstart.extract.models import ModelError, load_source_model\n"
        "try:\n"
        f"    load_source_model({{'library': {library!r}, 'arch': 'resnet18', 'weights': {weights!r}}})\n"
        "except ModelError as err:\n"
        "    print(err)\n"
    )
    offline = {"https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={
            **os.environ,
            **offline,
            "PYTHONPATH": str(ROOT / "workflow"),
            "TORCH_HOME": str(tmp_path),
            "HF_HOME": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = (result.stdout + result.stderr).strip().splitlines()  # (torch announces its download first)
    assert result.returncode == 0 and len(lines) <= 2 and "Traceback" not in result.stderr, lines
    assert re.search(message, lines[-1]), lines
