"""The classifiers a run can train (linear, Qi et al.'s cosine, Co-Tuning's two heads) and the validation
split evaluated beside the test split: values by hand."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from headstart.core.vocabulary import RunId
from headstart.finetune.classifiers import CosineClassifier, CoTuningClassifier, classifier_from_head, cotuning_loss
from headstart.finetune.lockstep import (
    EvalSet,
    LockstepData,
    Run,
    TensorBatches,
    TrainSettings,
    evaluate,
    train_lockstep,
)
from headstart.heads.initial import xavier_head

CPU = torch.device("cpu")


def settings(**kw) -> TrainSettings:
    base = dict(
        iterations=6, eval_every=2, checkpoint_every=1, batch_size=4, dropout=0.5, lr=1e-2, betas=(0.9, 0.999), eps=1e-8
    )
    return TrainSettings(**{**base, "seed": 0, **kw})


def test_cosine_logits_and_rows_renormalised_after_every_step():
    weight = np.array([[3.0, 4.0], [0.0, 2.0]], np.float32)  # rows of norm 5 and 2
    model = CosineClassifier(nn.Identity(), weight, 10.0, dropout=0.0)
    np.testing.assert_allclose(model.head.weight.detach().norm(dim=1), [1, 1], atol=1e-6)  # unit rows from the start
    logits = model.logits(torch.tensor([[2.0, 0.0], [0.0, -1.0]]))
    # 10 * cos: (1, 0) against (0.6, 0.8) and (0, 1); (0, -1) against the same
    np.testing.assert_allclose(logits.detach().numpy(), [[6.0, 0.0], [-8.0, -10.0]], atol=1e-5)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    loss = model.loss(torch.tensor([[2.0, 1.0]]), torch.tensor([1]))
    loss.backward()
    assert model.head.scale.grad is not None and model.head.scale.grad.abs() > 0  # the scale is learned
    optimizer.step()
    assert not torch.allclose(model.head.weight.detach().norm(dim=1), torch.ones(2))  # the step leaves the sphere
    model.after_step()
    np.testing.assert_allclose(model.head.weight.detach().norm(dim=1), [1, 1], atol=1e-6)


def test_cotuning_loss_on_two_target_and_three_source_classes_by_hand():
    source_logits = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, math.log(2.0)]])
    relationship = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    targets = torch.tensor([1, 0])  # image 0 is of target class 1, image 1 of class 0
    rows = relationship[targets]
    # log softmax of (1, 0, 0): 1 - log(e + 2), then -log(e + 2) twice;
    # of (0, 0, log 2): -log 4 twice, then log 2 - log 4
    z0, z1 = math.log(math.e + 2), math.log(4)
    image0 = -(0.2 * (1 - z0) + 0.3 * -z0 + 0.5 * -z0)
    image1 = -(0.5 * -z1 + 0.5 * -z1 + 0.0 * (math.log(2) - z1))
    assert cotuning_loss(source_logits, rows).item() == pytest.approx((image0 + image1) / 2, rel=1e-6)


def test_cotuning_classifier_adds_the_weighted_source_loss_and_trains_the_source_head():
    rng = np.random.default_rng(0)
    trainable = nn.Linear(4, 4)
    target = (rng.normal(size=(2, 4)).astype(np.float32), np.zeros(2, np.float32))
    source = (rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=3).astype(np.float32))
    relationship = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]], np.float32)
    model = CoTuningClassifier(trainable, *target, 0.0, *source, relationship, trade_off=2.3)
    hidden, targets = torch.tensor(rng.normal(size=(5, 4)), dtype=torch.float32), torch.tensor([0, 1, 1, 0, 1])
    features = trainable(hidden)
    target_logits = features @ torch.tensor(target[0]).T
    source_logits = features @ torch.tensor(source[0]).T + torch.tensor(source[1])
    expected = nn.functional.cross_entropy(target_logits, targets) + 2.3 * cotuning_loss(
        source_logits, torch.tensor(relationship)[targets]
    )
    loss = model.loss(hidden, targets)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    assert model.source_head.weight.grad.abs().sum() > 0 and trainable.weight.grad.abs().sum() > 0
    # evaluation: the target head only
    torch.testing.assert_close(model.logits(hidden), target_logits.detach())


def test_a_head_file_names_its_classifier():
    weight, bias = xavier_head(2, 4, seed=0)
    assert type(classifier_from_head(nn.Identity(), {"weight": weight, "bias": bias}, {}, 0.5)).__name__ == "Classifier"
    cosine = classifier_from_head(
        nn.Identity(), {"weight": weight, "bias": bias, "scale": np.array([7.0])}, {"classifier": "cosine"}, 0.5
    )
    assert isinstance(cosine, CosineClassifier) and cosine.head.scale.item() == 7.0
    with pytest.raises(ValueError, match="unknown classifier 'svm'"):
        classifier_from_head(nn.Identity(), {"weight": weight, "bias": bias}, {"classifier": "svm"}, 0.5)


def test_lockstep_scores_the_validation_split_at_every_evaluation():
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.normal(size=(12, 4)), dtype=torch.float32)
    y = np.repeat(np.arange(2), 6)
    x_val, y_val = torch.tensor(rng.normal(size=(8, 4)), dtype=torch.float32), np.repeat(np.arange(2), 4)
    weight, bias = xavier_head(2, 4, seed=1)
    runs = [
        Run(RunId("random", "0"), classifier_from_head(nn.Identity(), {"weight": weight, "bias": bias}, {}, 0.5)),
        Run(RunId("imprint", "0"), CosineClassifier(nn.Identity(), weight, 10.0, 0.5)),
    ]
    data = LockstepData(
        nn.Identity(),
        TensorBatches(x, CPU),
        y,
        EvalSet(TensorBatches(x, CPU), y),
        ["a", "b"],
        val=EvalSet(TensorBatches(x_val, CPU), y_val),
    )
    curves = train_lockstep(runs, data, settings(), CPU)
    for run in runs:
        curve = curves[run.id]
        assert sorted(curve["iteration"].unique()) == [0, 2, 4, 6]
        last = curve[curve["iteration"] == 6].iloc[0]
        # the last evaluation's validation score is the trained model's, computed as the test one is
        val = evaluate(run.model, TensorBatches(x_val, CPU), y_val, 2)
        assert last["val_macro_f1"] == pytest.approx(val.macro_f1) and last["val_accuracy"] == pytest.approx(
            val.accuracy
        )
        assert curve["val_macro_f1"].notna().all()
    # the cosine run's rows are unit vectors after training
    np.testing.assert_allclose(runs[1].model.head.weight.detach().norm(dim=1), [1, 1], atol=1e-6)
    assert isinstance(curves[RunId("random", "0")], pd.DataFrame)
