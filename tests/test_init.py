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
from headstart.init import STUDY_K, init_head, read_class_list

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


@pytest.mark.parametrize(
    "lines,args,message",
    [
        (None, [], "--classes: .* is not a file"),
        ("Coat: coat.n.01\n", [], "names 1 class\\(es\\); a classifier needs at least 2"),
        ("Coat: coat.n.01\nThing: nothing.n.99\n", [], "--classes: .*nothing.n.99"),
        ("Coat: coat.n.01\nCoat: coat.n.01\n", [], "--classes: two target classes map to the same synset n03057021"),
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
    if lines is not None:
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
