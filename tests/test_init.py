"""`headstart init`: the workflow's untrained head for the same classes, measure and K, bit for bit, as an
export that timm and `headstart predict` load; bad inputs refused in one line, before the model loads."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from PIL import Image

from headstart.cli import main as cli
from headstart.core.tables import read_tensors
from headstart.heads.headfile import read_head
from headstart.init import STUDY_K, InitError, init_head, read_class_list

from conftest import ROOT, RUN


def default_class_list(path) -> list[dict]:
    """config.yaml's Fashion-MNIST classes, written as init's class list ('Label: synset')."""
    classes = yaml.safe_load((ROOT / "config.yaml").read_text())["dataset"]["classes"]
    path.write_text("# Fashion-MNIST\n\n" + "".join(f"{c['label']}: {c['synset']}\n" for c in classes))
    return classes


def test_names_only_give_the_workflows_untrained_head_bit_for_bit(tiny, tmp_path):
    entries = default_class_list(tmp_path / "classes.txt")
    assert read_class_list(tmp_path / "classes.txt") == entries
    card = init_head("tf_efficientnet_lite0", tmp_path / "classes.txt", tmp_path / "head", measure="wordnet", k=1)
    workflow, meta = read_head(tiny / RUN / "heads/wordnet/k1/all_shots.safetensors")
    exported, _ = read_tensors(tmp_path / "head/model.safetensors")  # timm's names: the head is `classifier`
    assert np.array_equal(exported["classifier.weight"].numpy(), workflow["weight"])
    assert np.array_equal(exported["classifier.bias"].numpy(), workflow["bias"])
    assert [c["id"] for c in card["classes"]] == meta["classes"]
    assert card["method"] == "wordnet" and card["made_by"]["k_per_class"] == [1] * 10 and card["shots"] == 0
    assert json.loads((tmp_path / "head/card.json").read_text()) == card


def test_an_init_head_loads_in_timm_and_classifies_with_predict(tiny, tmp_path, capsys):
    import timm
    import torch

    default_class_list(tmp_path / "classes.txt")
    assert (
        cli(["init", "--classes", str(tmp_path / "classes.txt"), "--measure", "wordnet", "-o", str(tmp_path / "h")])
        == 0
    )
    assert "10 classes, wordnet head on tf_efficientnet_lite0" in capsys.readouterr().out
    model = timm.create_model(f"local-dir:{tmp_path / 'h'}", pretrained=True).eval()
    assert model.pretrained_cfg["label_names"][:2] == ["T-shirt/top", "Trouser"]
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.full((40, 30, 3), 200, np.uint8)).save(photos / "grey.png")
    assert cli(["predict", str(tmp_path / "h"), str(photos), "-o", str(tmp_path / "p.csv")]) == 0
    assert (tmp_path / "p.csv").read_text().count("grey.png") == 1
    with torch.inference_mode():
        assert model(torch.zeros(1, 3, 224, 224)).shape == (1, 10)
    card = json.loads((tmp_path / "h/card.json").read_text())
    study = STUDY_K["wordnet"]
    types = {"identical": study["identical"], "inclusive": study["inclusive"], "disjoint": study["disjoint"]}
    assert set(card["made_by"]["k_per_class"]) <= set(types.values())  # the study's K for each class's type


def shot_folder(run, folder, shots: int) -> None:
    """The run's first ``shots`` training images of each class, in a folder per class named by its id."""
    import pandas as pd

    manifest = pd.read_parquet(run / "results/fashion_mnist/manifest.parquet")
    for row in manifest[(manifest["split"] == "train") & (manifest["rank"] < shots)].itertuples():
        (folder / row.class_id).mkdir(parents=True, exist_ok=True)
        (folder / row.class_id / f"{row.image_id}.png").symlink_to(run / row.path)


def test_a_few_images_per_class_make_the_prior_probe_its_strength_chosen_by_cross_validation(tiny, tmp_path):
    entries = default_class_list(tmp_path / "classes.txt")
    shot_folder(tiny, tmp_path / "photos", 2)
    card = init_head(
        "tf_efficientnet_lite0", entries, tmp_path / "head", "wordnet", images=tmp_path / "photos", size=(72, 64)
    )
    made = card["made_by"]
    assert card["method"] == "wordnet_prior" and card["shots"] == 2 and made["images_per_class"] == [2] * 10
    assert made["c_from"] == "2-fold cross-validation on the images" and made["c"] in np.logspace(-7, 2, 10)
    assert card["preprocess"]["resize"] == 72 and card["preprocess"]["crop"] == 64
    exported, _ = read_tensors(tmp_path / "head/model.safetensors")
    names_only = init_head("tf_efficientnet_lite0", entries, tmp_path / "names", "wordnet")
    prior, _ = read_tensors(tmp_path / "names/model.safetensors")
    assert names_only["made_by"]["k_per_class"] == made["k_per_class"]  # centred on the same similarity head
    assert not np.array_equal(exported["classifier.weight"], prior["classifier.weight"])  # and moved by the images
    # imprinting: the tiny run's imprinted head at 2 images per class, from the same images
    card = init_head(
        "tf_efficientnet_lite0", entries, tmp_path / "imprint", "imprint", images=tmp_path / "photos", size=(72, 64)
    )
    imprinted, _ = read_tensors(tmp_path / "imprint/model.safetensors")
    workflow, _ = read_head(tiny / RUN / "heads/imprint/k0/shots2.safetensors")
    assert card["classifier"] == "cosine" and card["weights_format"] == "headstart"
    np.testing.assert_allclose(imprinted["classifier.head.weight"].numpy(), workflow["weight"], atol=1e-5)
    with pytest.raises(InitError, match="--measure inference is made from images: give --images"):
        init_head("tf_efficientnet_lite0", entries, tmp_path / "x", "inference")
    # a class without images, a folder that is no class, a broken image: one line each, nothing written
    (tmp_path / "photos/n99999999").mkdir()
    with pytest.raises(InitError, match="n99999999 in .* is no class of --classes"):
        init_head("tf_efficientnet_lite0", entries, tmp_path / "x", "wordnet", images=tmp_path / "photos")
    (tmp_path / "photos/n99999999").rmdir()
    first = sorted((tmp_path / "photos").iterdir())[0]
    broken = first / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(InitError, match="cannot read .*broken.png"):
        init_head("tf_efficientnet_lite0", entries, tmp_path / "x", "wordnet", images=tmp_path / "photos")
    broken.unlink()
    for link in first.iterdir():
        link.unlink()
    with pytest.raises(InitError, match=f"no image files in .* \\(or {first.name}\\)"):
        init_head("tf_efficientnet_lite0", entries, tmp_path / "x", "wordnet", images=tmp_path / "photos")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "lines,args,message",
    [
        (None, [], "--classes: .* is not a file"),
        ("Coat: coat.n.01\n", [], "names 1 class\\(es\\); a classifier needs at least 2"),
        ("Coat: coat.n.01\nThing: nothing.n.99\n", [], "--classes: .*nothing.n.99"),
        ("Coat: coat.n.01\nCoat: coat.n.01\n", [], "lines 1 and 2 both name the label 'Coat'"),
        ("Coat: coat.n.01\nJacket: coat.n.01\n", [], "--classes: two target classes map to the same synset n03057021"),
        (b"Caf\xe9\nDog\n", [], "is not UTF-8 text"),
        ("Coat: coat.n.01\nWidget\n", ["--measure", "wordnet"], "needs a WordNet synset for every class; Widget"),
        ("Coat: coat.n.01\nShirt\n", ["--k", "0"], "--k 0: K is at least 1 and at most the 1000"),
        ("Coat: coat.n.01\nShirt\n", ["--k", "1001"], "--k 1001: K is at least 1 and at most"),
        ("Coat: coat.n.01\nShirt\n", ["--model", "resnet50"], "--model resnet50: no weights on disk"),
        ("Coat: coat.n.01\nShirt\n", ["--weights", "/nonexistent.pth"], "--weights: /nonexistent.pth is not a file"),
        (": coat.n.01\nShirt\n", [], "has no label before the ':'"),
    ],
)
def test_bad_input_is_one_line(tmp_path, capsys, lines, args, message):
    import re

    classes = tmp_path / "classes.txt"
    if isinstance(lines, bytes):
        classes.write_bytes(lines)
    elif lines is not None:
        classes.write_text(lines)
    assert cli(["init", "--classes", str(classes), "-o", str(tmp_path / "out"), *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("headstart init: ") and len(err.strip().splitlines()) == 1, err
    assert re.search(message, err), err
    assert not (tmp_path / "out").exists()


def test_an_output_folder_holding_anything_is_left_alone(tmp_path, capsys):
    (tmp_path / "classes.txt").write_text("Coat: coat.n.01\nShirt: shirt.n.01\n")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert cli(["init", "--classes", str(tmp_path / "classes.txt"), "-o", str(mine)]) == 1
    assert "exists and is not an empty folder" in capsys.readouterr().err
    assert [p.name for p in mine.iterdir()] == ["notes.txt"] and (mine / "notes.txt").read_text() == "keep me"
    (tmp_path / "a_file").write_text("x")
    assert cli(["init", "--classes", str(tmp_path / "classes.txt"), "-o", str(tmp_path / "a_file")]) == 1
    assert (tmp_path / "a_file").read_text() == "x"


def test_a_class_list_reads_as_its_user_means_it(tmp_path):
    """A ':' followed by no synset name or wnid is part of the label; a byte-order mark is no part of one."""
    path = tmp_path / "classes.txt"
    path.write_bytes("\ufeffRatio 16:9\r\nRatio 4:3 : n03057021\n\n# a comment\nCoat:coat.n.01\nhttp://x\n".encode())
    assert read_class_list(path) == [
        {"label": "Ratio 16:9"},
        {"label": "Ratio 4:3", "synset": "n03057021"},
        {"label": "Coat", "synset": "coat.n.01"},
        {"label": "http://x"},
    ]


def test_mixed_classes_with_and_without_synsets_give_a_card_predict_reads(tmp_path, monkeypatch):
    """An unmapped class's synset is null in the card (pandas holds it as NaN, which JSON has no word for)."""
    from headstart.export.card import load_classifier, read_card

    (tmp_path / "classes.txt").write_text("Coat: coat.n.01\nDog\n")
    init_head("tf_efficientnet_lite0", tmp_path / "classes.txt", tmp_path / "mixed", "wordvec")
    assert [c["synset"] for c in read_card(tmp_path / "mixed")["classes"]] == ["coat.n.01", None]
    assert load_classifier(tmp_path / "mixed") is not None
    # a write that fails midway leaves nothing that looks finished, and no temporary folder
    import headstart.export.card as card_module

    def full_disk(card, module, out_dir):
        (out_dir / "model.safetensors").write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(card_module, "write_export", full_disk)
    with pytest.raises(InitError, match="-o .*half: nothing written \\(.*No space left on device"):
        init_head("tf_efficientnet_lite0", tmp_path / "classes.txt", tmp_path / "half", "wordvec")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["classes.txt", "mixed"]
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(InitError, match="cannot write there"):
        init_head("tf_efficientnet_lite0", tmp_path / "classes.txt", tmp_path / "a_file/out", "wordvec")
