"""Fine-tuning: determinism, resume with lean checkpoints, lockstep == separate runs, fp32 evaluation
under bf16 autocast, and the decode-once / cached-activation paths against today's PIL path."""

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image
from torch import nn

from headstart.core.tables import read_tensors
from headstart.core.vocabulary import RunId
from headstart.data.pixels import CropBatches, PixelCache, decode_images
from headstart.data.split import imagenet1k_wnids
from headstart.extract.features import CentreCrops, SplitOutputs, extract_split
from headstart.extract.models import load_source_model, normalization, split_model
from headstart.finetune.classifiers import Classifier, CosineClassifier, CoTuningClassifier
from headstart.finetune.lockstep import (
    EvalSet,
    LockstepData,
    LockstepOptions,
    Run,
    SGDSettings,
    TensorBatches,
    TrainSettings,
    batch_indices,
    crop_seeds,
    evaluate,
    evaluation_rows,
    first_evaluation_rows,
    train_lockstep,
)
from headstart.heads.initial import xavier_head

import legacy_train
from conftest import ROOT

CPU = torch.device("cpu")
WNIDS = ["a", "b", "c"]
LITE0 = yaml.safe_load((ROOT / "config.yaml").read_text())["models"]["efficientnet_lite0"]


def blobs(n_per_class: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), n_per_class)
    centres = np.random.default_rng(99).normal(size=(3, 16)) * 2
    return torch.tensor(centres[labels] + rng.normal(size=(len(labels), 16)), dtype=torch.float32), labels


def settings(**kw) -> TrainSettings:
    base = dict(
        iterations=40,
        eval_every=5,
        checkpoint_every=2,
        batch_size=8,
        dropout=0.5,
        lr=1e-2,
        betas=(0.9, 0.999),
        eps=1e-8,
        seed=7,
    )
    return TrainSettings(**{**base, **kw})


def make_run(name: str, head_seed: int, trainable: bool) -> Run:
    """A run on 16-d inputs: the head alone, or a small trainable part (Linear + BatchNorm + ReLU) + head."""
    part = nn.Identity()
    if trainable:
        torch.manual_seed(head_seed)
        part = nn.Sequential(nn.Linear(16, 16), nn.BatchNorm1d(16), nn.ReLU())
    weight, bias = xavier_head(3, 16, seed=head_seed)
    return Run(RunId(*name.split("/k")), Classifier(part, weight, bias, 0.5))


class CountingTrunk(nn.Module):
    """A frozen 'trunk' that counts its forwards."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(16, 16)
        generator = torch.Generator().manual_seed(123)  # the same trunk every time
        with torch.no_grad():
            self.linear.weight.copy_(torch.randn(16, 16, generator=generator) / 4)
            self.linear.bias.copy_(torch.randn(16, generator=generator) / 4)
        self.calls = 0
        for parameter in self.parameters():
            parameter.requires_grad_(False)

    def forward(self, x):
        self.calls += 1
        return torch.tanh(self.linear(x)) * 3


def train(runs, tmp_path=None, stop_at=None, frozen=None, mixed_precision=None, **kw) -> dict[str, pd.DataFrame]:
    """Each run's curve by the run's name ('random/k0')."""
    x, y = blobs(10, 0)
    x_test, y_test = blobs(5, 1)
    data = LockstepData(
        frozen or nn.Identity(), TensorBatches(x, CPU), y, EvalSet(TensorBatches(x_test, CPU), y_test), WNIDS
    )
    curves = train_lockstep(
        runs,
        data,
        settings(**kw),
        CPU,
        checkpoint=None if tmp_path is None else tmp_path / "ckpt.pt",
        options=LockstepOptions(stop_at=stop_at, mixed_precision=mixed_precision),
    )
    return {str(run): curve for run, curve in curves.items()}


def run(tmp_path=None, stop_at=None, trainable=False, **kw) -> pd.DataFrame:
    return train([make_run("random/k0", 0, trainable)], tmp_path, stop_at, **kw)["random/k0"]


def test_curve_columns_and_iteration_zero():
    curve = run()
    assert list(curve.columns) == [
        "iteration",
        "class_id",
        "precision",
        "recall",
        "fscore",
        "support",
        "macro_f1",
        "accuracy",
        "val_macro_f1",
        "val_accuracy",
        "train_loss",
    ]
    assert curve["val_macro_f1"].isna().all()  # no validation split given
    assert sorted(curve["iteration"].unique()) == list(range(0, 41, 5))
    assert curve[curve["iteration"] == 0]["train_loss"].isna().all()
    per_iteration = curve.groupby("iteration")
    np.testing.assert_allclose(per_iteration["fscore"].mean(), per_iteration["macro_f1"].first())
    assert curve["macro_f1"].iloc[-1] > 0.9  # separable blobs are learnt


def test_same_seed_same_curve_other_seed_other_curve():
    pd.testing.assert_frame_equal(run(), run())
    assert not run(seed=8)["train_loss"].equals(run()["train_loss"])


@pytest.mark.parametrize("trainable", [False, True])
def test_resume_after_interruption_gives_the_same_curve(tmp_path, trainable):
    uninterrupted = run(trainable=trainable)
    partial = run(tmp_path, stop_at=23, trainable=trainable)  # "killed" at iteration 23; last checkpoint: 20
    assert partial["iteration"].max() == 20 and (tmp_path / "ckpt.pt").exists()
    resumed = run(tmp_path, trainable=trainable)
    pd.testing.assert_frame_equal(resumed, uninterrupted)


def test_resume_under_another_checkpoint_spacing(tmp_path, caplog):
    run(tmp_path, stop_at=23)
    with caplog.at_level("INFO", logger="headstart"):
        resumed = run(tmp_path, checkpoint_every=3)
    assert "from iteration 15" in caplog.text  # evaluations 2 and 4 (iterations 5, 15) were checkpointed
    pd.testing.assert_frame_equal(resumed, run())


TLLIB_SGD = SGDSettings(
    lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4, pretrained_lr_scale=0.1, lr_milestones=(0.6,), lr_gamma=0.1
)


def test_the_sgd_schedule_by_hand():
    # TLlib: x0.1 after epoch 12 of 20; over 100 iterations, from step 60 (0-based) on
    assert [TLLIB_SGD.factor(t, 100) for t in (0, 59, 60, 99)] == [1.0, 1.0, 0.1, 0.1]
    two = SGDSettings(0.1, 0.9, True, 0.0, 1.0, (0.25, 0.5), 0.5)
    assert [two.factor(t, 8) for t in range(8)] == [1, 1, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25]


def test_a_methods_own_sgd_trains_as_torch_sgd_with_multisteplr():
    """A run whose method has its own optimiser (here 'cotuning') takes TLlib's SGD: its steps equal a plain
    loop with torch's SGD in two parameter groups (pretrained part at 0.1x) and torch's MultiStepLR; another
    run of the same job keeps the paper's Adam."""
    own, adam = make_run("cotuning/k0", 0, trainable=True), make_run("random/k0", 0, trainable=True)
    for run_ in (own, adam):
        run_.model.dropout.p = 0.0  # the reference loop draws no dropout masks
    reference = make_run("cotuning/k0", 0, trainable=True).model
    reference.dropout.p = 0.0
    train([own, adam], dropout=0.0, method_optimizers={"cotuning": TLLIB_SGD})
    x, y = blobs(10, 0)
    optimizer = torch.optim.SGD(
        [
            {"params": reference.trainable.parameters(), "lr": 0.001},
            {"params": reference.head.parameters(), "lr": 0.01},
        ],
        lr=0.01,
        momentum=0.9,
        nesterov=True,
        weight_decay=5e-4,
    )
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[24], gamma=0.1)  # 0.6 of 40 iterations
    reference.train()
    for t in range(40):
        indices = batch_indices(len(x), 8, 7, t)
        loss = nn.functional.cross_entropy(reference(x[indices]), torch.as_tensor(y[indices]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(own.model.state_dict()[key], value, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(adam.model.head.weight, own.model.head.weight)


def test_resume_of_a_run_with_its_own_sgd_gives_the_same_curve(tmp_path):
    kw = {"method_optimizers": {"random": TLLIB_SGD}, "trainable": True}
    uninterrupted = run(**kw)
    run(tmp_path, stop_at=27, **kw)  # killed after the learning rate dropped (step 24); last checkpoint: 20
    pd.testing.assert_frame_equal(run(tmp_path, **kw), uninterrupted)


def test_checkpoint_of_other_settings_is_ignored(tmp_path):
    run(tmp_path, stop_at=12)
    pd.testing.assert_frame_equal(run(tmp_path, lr=5e-3), run(lr=5e-3))


class Planted:
    """A pickle that runs code when unpickled (what a checkpoint planted in results/ could hold)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_planted_or_corrupt_checkpoint_runs_no_code_and_the_job_starts_over(tmp_path, caplog):
    marker = tmp_path / "pwned"
    torch.save({"signature": Planted(marker), "iteration": 20}, tmp_path / "ckpt.pt")
    with caplog.at_level("WARNING", logger="headstart"):
        planted = run(tmp_path)
    assert not marker.exists()  # its code did not run
    assert "not a readable checkpoint" in caplog.text and "starting over" in caplog.text
    pd.testing.assert_frame_equal(planted, run())
    (tmp_path / "ckpt.pt").write_bytes(np.random.default_rng(0).bytes(4096))  # random bytes
    pd.testing.assert_frame_equal(run(tmp_path), run())  # the job finishes, from iteration 0


def test_batches_cover_each_epoch_once():
    seen = np.concatenate([batch_indices(10, 4, seed=1, iteration=t) for t in range(3)])
    assert sorted(seen.tolist()) == list(range(10))
    assert len(batch_indices(3, 64, seed=0, iteration=0)) == 3


def test_lockstep_runs_equal_separate_runs_with_one_trunk_pass_per_step():
    names = [("random/k0", 0), ("inference/k1", 1), ("wordnet/kbest", 2)]
    trunk = CountingTrunk()
    together = train([make_run(name, seed, True) for name, seed in names], frozen=trunk)
    assert trunk.calls == 40  # one forward of the frozen part per step, for the three runs
    for name, seed in names:
        alone = train([make_run(name, seed, True)], frozen=CountingTrunk())[name]
        pd.testing.assert_frame_equal(together[name], alone)  # bit for bit
    assert not together["random/k0"]["train_loss"].equals(together["inference/k1"]["train_loss"])


def runs_from_one_part() -> list[Run]:
    """Runs as a job makes them: each its own copy of one trainable part (a conv + BatchNorm + ReLU6 stage
    on 2 x 2 activations, channels_last, as a last stage), with a linear, a cosine and a Co-Tuning head."""
    import copy

    torch.manual_seed(5)
    part = nn.Sequential(nn.Conv2d(4, 16, 1), nn.BatchNorm2d(16), nn.ReLU6(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with torch.no_grad():  # running statistics other than the defaults: evaluation uses them
        part[1].running_mean.uniform_(-0.5, 0.5)
        part[1].running_var.uniform_(0.5, 2.0)
    weight, bias = xavier_head(3, 16, seed=1)
    source = xavier_head(5, 16, seed=2)
    classifiers = {
        "random/k0": Classifier(copy.deepcopy(part), *xavier_head(3, 16, seed=0), 0.5),
        "inference/k1": Classifier(copy.deepcopy(part), weight, bias, 0.5),
        "imprint/k0": CosineClassifier(copy.deepcopy(part), weight, 7.0, 0.5),
        "cotuning/k0": CoTuningClassifier(copy.deepcopy(part), weight, bias, 0.5, *source, np.full((3, 5), 0.2), 2.3),
    }
    return [
        Run(RunId(*name.split("/k")), model.to(memory_format=torch.channels_last))
        for name, model in classifiers.items()
    ]


def test_first_evaluation_runs_the_shared_trainable_part_once_and_scores_as_each_alone():
    images = torch.randn(70, 4, 2, 2, generator=torch.Generator().manual_seed(3))
    labels = np.arange(70) % 3
    data = LockstepData(nn.Identity(), None, None, EvalSet(TensorBatches(images[:40], CPU), labels[:40]), WNIDS)
    data.val = EvalSet(TensorBatches(images[40:], CPU), labels[40:])
    runs = runs_from_one_part()
    alone = {r.name: pd.DataFrame(evaluation_rows(r.model, 0, data.test, data.val, WNIDS, float("nan"))) for r in runs}
    forwards = []
    for r in runs:
        r.model.trainable.register_forward_hook(lambda module, args, output, name=r.name: forwards.append(name))
    together = first_evaluation_rows(runs, data)
    assert forwards == ["random/k0", "random/k0"]  # once per split (one batch each), for the four runs
    for r in runs:
        pd.testing.assert_frame_equal(pd.DataFrame(together[r.name]), alone[r.name], check_exact=True)
    assert alone["random/k0"]["macro_f1"].iloc[0] != alone["inference/k1"]["macro_f1"].iloc[0]
    # a run whose trainable part differs, if only in a buffer (BatchNorm's running mean): each alone
    with torch.no_grad():
        runs[2].model.trainable[1].running_mean.add_(3.0)
    changed = pd.DataFrame(evaluation_rows(runs[2].model, 0, data.test, data.val, WNIDS, float("nan")))
    assert not changed.equals(alone["imprint/k0"])
    forwards.clear()
    again = first_evaluation_rows(runs, data)
    assert len(forwards) == 8
    pd.testing.assert_frame_equal(pd.DataFrame(again["imprint/k0"]), changed, check_exact=True)
    pd.testing.assert_frame_equal(pd.DataFrame(again["random/k0"]), alone["random/k0"], check_exact=True)


def test_a_lockstep_job_evaluates_its_runs_first_through_one_trainable_part():
    """train_lockstep's start takes the shared path: forwards of each run's trainable part over one step
    with an evaluation after it (one batch per split)."""
    images = torch.randn(30, 4, 2, 2, generator=torch.Generator().manual_seed(4))
    labels = np.arange(30) % 3
    split = EvalSet(TensorBatches(images[:12], CPU), labels[:12])
    data = LockstepData(nn.Identity(), TensorBatches(images, CPU), labels, split, WNIDS, val=split)
    runs = runs_from_one_part()
    forwards = {r.name: 0 for r in runs}
    for r in runs:
        r.model.trainable.register_forward_hook(
            lambda module, args, output, name=r.name: forwards.__setitem__(name, forwards[name] + 1)
        )
    train_lockstep(runs, data, settings(iterations=1, eval_every=1), CPU)
    # iteration 0: the first run's part for both splits; the step: each run once; iteration 1: each, both splits
    assert forwards == {"random/k0": 5, "inference/k1": 3, "imprint/k0": 3, "cotuning/k0": 3}


def test_lean_checkpoint_holds_only_what_training_changes(tmp_path):
    runs = [make_run("random/k0", 0, True), make_run("inference/k1", 1, True)]
    train(runs, tmp_path, stop_at=12, frozen=CountingTrunk())
    state = torch.load(tmp_path / "ckpt.pt", weights_only=True)  # tensors and plain types only
    assert state["iteration"] == 5 and set(state["runs"]) == {"random/k0", "inference/k1"}
    keys = set(state["runs"]["random/k0"]["model"])
    assert keys == {
        "trainable.0.weight",
        "trainable.0.bias",
        "trainable.1.weight",
        "trainable.1.bias",
        "trainable.1.running_mean",
        "trainable.1.running_var",
        "trainable.1.num_batches_tracked",
        "head.weight",
        "head.bias",
    }  # no frozen trunk
    moments = state["runs"]["random/k0"]["optimizer"]["state"]
    assert moments and all({"step", "exp_avg", "exp_avg_sq"} <= set(moment) for moment in moments)  # Adam's
    resumed = train(
        [make_run("random/k0", 0, True), make_run("inference/k1", 1, True)], tmp_path, frozen=CountingTrunk()
    )
    uninterrupted = train([make_run("random/k0", 0, True), make_run("inference/k1", 1, True)], frozen=CountingTrunk())
    for name in resumed:
        pd.testing.assert_frame_equal(resumed[name], uninterrupted[name])


def test_iteration_zero_predictions_under_bf16_autocast_equal_fp32():
    # 100 classes whose logits sit near 10, 0.01 apart: bf16 rounds them in steps of 0.0625
    rng = np.random.default_rng(0)
    features = torch.tensor(rng.normal(size=(300, 16)), dtype=torch.float32)
    weight = (rng.normal(size=(100, 16)) * 0.01).astype(np.float32)
    bias = np.full(100, 10.0, dtype=np.float32)
    labels = rng.integers(0, 100, 300)
    model = Classifier(nn.Linear(16, 16), weight, bias, 0.5)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        rounded = model(features).argmax(1).numpy()
        exact = model.logits(features).argmax(1).numpy()
    with torch.inference_mode():
        fp32 = model.logits(features).argmax(1).numpy()
    assert (rounded != fp32).mean() > 0.3  # what bf16 logits would do to arg-max
    np.testing.assert_array_equal(exact, fp32)
    wnids = [str(i) for i in range(100)]
    runs = lambda: [Run(RunId("random", "0"), Classifier(nn.Linear(16, 16), weight, bias, 0.5))]  # noqa: E731
    torch.manual_seed(0)
    common = dict(iterations=2, eval_every=1, batch_size=32)

    def train(mixed_precision=None):
        test = EvalSet(TensorBatches(features, CPU), labels)
        data = LockstepData(nn.Identity(), TensorBatches(features, CPU), labels, test, wnids)
        options = LockstepOptions(mixed_precision=mixed_precision)
        return train_lockstep(runs(), data, settings(**common), CPU, options=options)[RunId("random", "0")]

    fp32_curve = train()
    torch.manual_seed(0)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # everything, evaluation included, inside autocast
        bf16_curve = train(mixed_precision=lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    first = lambda curve: curve[curve["iteration"] == 0].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(first(bf16_curve), first(fp32_curve))


# ---------------------------------------------------------------------------------------------
# The decode-once and cached-activation paths against the PIL path they replace


def write_images(directory, sizes) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for i, (height, width, channels) in enumerate(sizes):
        shape = (height, width, channels) if channels == 3 else (height, width)
        path = directory / f"{i}.{'jpg' if i % 2 else 'png'}"
        Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def test_cached_batch_equals_the_pil_batch_bit_for_bit(tmp_path):
    paths = write_images(tmp_path, [(28, 28, 1), (50, 37, 3), (37, 61, 3), (90, 90, 1), (40, 41, 3)])
    resize, crop, mean, std = 44, 32, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    decode_images(paths, [str(i) for i in range(5)], tmp_path / "train.safetensors", resize, crop, centre_crop=False)
    decode_images(paths, [str(i) for i in range(5)], tmp_path / "test.safetensors", resize, crop, centre_crop=True)
    train_cache, test_cache = PixelCache(tmp_path / "train.safetensors"), PixelCache(tmp_path / "test.safetensors")
    pil_train = legacy_train._SeededImages(paths, resize, crop, mean, std, augment=True)
    pil_test = legacy_train._SeededImages(paths, resize, crop, mean, std, augment=False)
    batches = CropBatches(train_cache, range(5), crop, mean, std, CPU, augment=True, max_batch=8)
    for seed, iteration in [(0, 0), (3, 17), (2, 999)]:
        indices = batch_indices(5, 4, seed, iteration)
        seeds = crop_seeds(seed, iteration, indices)
        ours = batches.batch(indices, seeds)
        # today's path: the (example, crop seed) keys of legacy_train.finetune's schedule
        keys = [(int(i), legacy_train.iteration_seed(seed, iteration) + int(i)) for i in indices]
        theirs = torch.stack([pil_train[key] for key in keys])
        assert ours.dtype == theirs.dtype == torch.float32
        assert torch.equal(ours, theirs)
        assert ours.is_contiguous(memory_format=torch.channels_last)
    centre = CropBatches(test_cache, range(5), crop, mean, std, CPU, augment=False, max_batch=8).batch(
        np.arange(5), None
    )
    assert torch.equal(centre, torch.stack([pil_test[(i, 0)] for i in range(5)]))
    # centre crops of the resized training images equal the stored val/test crops
    centre_of_train = CropBatches(train_cache, range(5), crop, mean, std, CPU, augment=False, max_batch=8)
    assert torch.equal(centre_of_train.batch(np.arange(5), None), centre)


def test_evaluation_on_cached_activations_equals_the_whole_network(tmp_path):
    model = load_source_model(LITE0)
    mean, std = normalization(model, LITE0)
    parts = split_model(model, LITE0["trainable"], LITE0["head"])
    paths = write_images(tmp_path, [(28, 28, 1)] * 12 + [(30, 26, 3)] * 12)
    labels = np.arange(24) % 3
    resize, crop = 40, 32
    decode_images(paths, [str(i) for i in range(24)], tmp_path / "test.safetensors", resize, crop, centre_crop=True)
    extract_split(
        parts,
        tmp_path / "test.safetensors",
        CentreCrops(crop, mean, std, 5, CPU),
        imagenet1k_wnids(),
        SplitOutputs(tmp_path / "logits.parquet", tmp_path / "features.safetensors"),
    )
    trunk = read_tensors(tmp_path / "features.safetensors")[0]["trunk"]
    weight, bias = xavier_head(3, parts.head.in_features, seed=0)
    ours = Classifier(parts.trainable, weight, bias, 0.5)
    cached = evaluate(ours, TensorBatches(trunk, CPU), labels, 3)
    # the whole network on PIL-decoded images, as legacy_train.finetune evaluated
    whole = legacy_train.Classifier(parts.trunk, parts.trainable, weight, bias, 0.5)
    images = legacy_train.ImageInputs(paths, resize, crop, mean, std, augment=False)
    full = legacy_train.evaluate(whole, images, labels, 3, CPU)
    with torch.inference_mode():
        ours_logits = ours.logits(trunk)
        whole_logits = torch.cat(
            [whole(batch.contiguous(memory_format=torch.channels_last)) for batch in images.all(256)]
        )
    np.testing.assert_array_equal(ours_logits.argmax(1).numpy(), whole_logits.argmax(1).numpy())
    np.testing.assert_allclose(ours_logits.numpy(), whole_logits.numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_array_equal(cached.fscore, full.fscore)
