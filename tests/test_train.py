"""Fine-tuning: determinism, resume after an interruption, cached features == the frozen trunk."""

import numpy as np
import pandas as pd
import torch
import yaml
from PIL import Image
from torch import nn

from headstart.extract import ImageFiles, extract
from headstart.heads import xavier_head
from headstart.models import eval_transform, load_source_model, normalization, split_model
from headstart.train import Classifier, ImageInputs, TensorInputs, TrainSettings, batch_indices, finetune

from conftest import ROOT

CPU = torch.device("cpu")
WNIDS = ["a", "b", "c"]


def blobs(n_per_class: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), n_per_class)
    centres = np.random.default_rng(99).normal(size=(3, 16)) * 2
    return torch.tensor(centres[labels] + rng.normal(size=(len(labels), 16)), dtype=torch.float32), labels


def settings(**kw) -> TrainSettings:
    base = dict(iterations=40, eval_every=5, checkpoint_every=2, batch_size=8, dropout=0.5, lr=1e-2,
                betas=(0.9, 0.999), eps=1e-8, seed=7)
    return TrainSettings(**{**base, **kw})


def run(tmp_path=None, stop_at=None, **kw) -> pd.DataFrame:
    x, y = blobs(10, 0)
    x_test, y_test = blobs(5, 1)
    weight, bias = xavier_head(3, 16, seed=0)
    model = Classifier(nn.Identity(), nn.Identity(), weight, bias, 0.5)
    return finetune(model, TensorInputs(x), y, TensorInputs(x_test), y_test, WNIDS, settings(**kw), CPU,
                    checkpoint=None if tmp_path is None else tmp_path / "ckpt.pt", stop_at=stop_at)


def test_curve_columns_and_iteration_zero():
    curve = run()
    assert list(curve.columns) == ["iteration", "wnid", "precision", "recall", "fscore", "support", "macro_f1",
                                   "accuracy", "train_loss"]
    assert sorted(curve["iteration"].unique()) == list(range(0, 41, 5))
    assert curve[curve["iteration"] == 0]["train_loss"].isna().all()
    per_iteration = curve.groupby("iteration")
    np.testing.assert_allclose(per_iteration["fscore"].mean(), per_iteration["macro_f1"].first())
    assert curve["macro_f1"].iloc[-1] > 0.9  # separable blobs are learnt


def test_same_seed_same_curve_other_seed_other_curve():
    pd.testing.assert_frame_equal(run(), run())
    assert not run(seed=8)["train_loss"].equals(run()["train_loss"])


def test_resume_after_interruption_gives_the_same_curve(tmp_path):
    uninterrupted = run()
    partial = run(tmp_path, stop_at=23)  # "killed" at iteration 23; last checkpoint: iteration 15
    assert partial["iteration"].max() == 20 and (tmp_path / "ckpt.pt").exists()
    resumed = run(tmp_path)
    pd.testing.assert_frame_equal(resumed, uninterrupted)


def test_resume_under_another_checkpoint_spacing(tmp_path, caplog):
    run(tmp_path, stop_at=23)
    with caplog.at_level("INFO", logger="headstart"):
        resumed = run(tmp_path, checkpoint_every=3)
    assert "from iteration 15" in caplog.text  # evaluations 2 and 4 (iterations 5, 15) were checkpointed
    pd.testing.assert_frame_equal(resumed, run())


def test_checkpoint_of_other_settings_is_ignored(tmp_path):
    run(tmp_path, stop_at=12)
    pd.testing.assert_frame_equal(run(tmp_path, lr=5e-3), run(lr=5e-3))


def test_batches_cover_each_epoch_once():
    seen = np.concatenate([batch_indices(10, 4, seed=1, iteration=t) for t in range(3)])
    assert sorted(seen.tolist()) == list(range(10))
    assert len(batch_indices(3, 64, seed=0, iteration=0)) == 3


def test_cached_features_equal_training_through_the_frozen_trunk(tmp_path):
    entry = yaml.safe_load((ROOT / "config.yaml").read_text())["models"]["efficientnet_lite0"]
    model = load_source_model(entry)
    mean, std = normalization(model, entry)
    parts = split_model(model, entry["trainable"], entry["head"])
    rng = np.random.default_rng(0)
    paths, labels = [], np.repeat(np.arange(3), 4)
    for i, label in enumerate(labels):
        image = np.clip(rng.normal(80 * label + 40, 30, size=(28, 28)), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(tmp_path / f"{i}.png")
        paths.append(str(tmp_path / f"{i}.png"))
    resize, crop = 40, 32
    features = torch.from_numpy(extract(parts, ImageFiles(paths, eval_transform(resize, crop, mean, std)), 4, 0, CPU,
                                        False).features)
    weight, bias = xavier_head(3, features.shape[1], seed=0)
    config = settings(iterations=12, eval_every=4, batch_size=5, seed=3, lr=1e-3)
    cached = finetune(Classifier(nn.Identity(), nn.Identity(), weight, bias, 0.5), TensorInputs(features), labels,
                      TensorInputs(features), labels, WNIDS, config, CPU)
    images = ImageInputs(paths, resize, crop, mean, std, augment=False)
    through = finetune(Classifier(nn.Sequential(parts.trunk, parts.trainable), nn.Identity(), weight, bias, 0.5), images,
                       labels, images, labels, WNIDS, config, CPU)
    np.testing.assert_allclose(cached["train_loss"].dropna(), through["train_loss"].dropna(), rtol=1e-4)
    np.testing.assert_allclose(cached["macro_f1"], through["macro_f1"])
