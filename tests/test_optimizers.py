"""headstart.finetune.optimizers against torch.optim itself: the same steps, bit for bit, and a checkpoint's round
trip."""

import io
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from headstart.finetune.optimizers import SGD, Adam


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
    return model.to(memory_format=torch.channels_last)


def _train(model: nn.Module, optimizer, steps: range, schedule=None) -> list[float]:
    generator = torch.Generator().manual_seed(steps.start)
    losses = []
    for step in steps:
        if schedule is not None:
            schedule(optimizer, step)
        x = torch.randn(8, 3, 8, 8, generator=generator).to(memory_format=torch.channels_last)
        y = torch.randint(0, 5, (8,), generator=generator)
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def _same(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def _sgd_groups(model: nn.Module) -> list[dict]:
    """Co-Tuning's two groups: the pretrained part at a tenth of the head's rate."""
    head = list(model[2].parameters())
    pretrained = list(model[0].parameters())
    return [{"params": pretrained, "lr": 0.01, "base_lr": 0.01}, {"params": head, "lr": 0.1, "base_lr": 0.1}]


def _milestone(optimizer, step: int) -> None:
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * (0.1 if step >= 6 else 1.0)


def test_adam_steps_equal_torchs_fused_adam_bit_for_bit():
    ours, theirs = _model(0), _model(0)
    ours[0].weight.requires_grad_(False)  # a frozen parameter has no gradient and no state in either
    theirs[0].weight.requires_grad_(False)
    settings = {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8}
    adam = Adam([p for p in ours.parameters() if p.requires_grad], **settings)
    reference = torch.optim.Adam([p for p in theirs.parameters() if p.requires_grad], **settings, fused=True)
    assert _train(ours, adam, range(10)) == _train(theirs, reference, range(10))
    assert _same(ours, theirs)
    moments = [state["exp_avg_sq"] for state in reference.state_dict()["state"].values()]
    assert all(torch.equal(a["exp_avg_sq"], b) for a, b in zip(adam.state, moments, strict=True))


def test_sgd_steps_equal_torchs_sgd_with_groups_nesterov_weight_decay_and_a_schedule():
    ours, theirs = _model(1), _model(1)
    sgd = SGD(_sgd_groups(ours), momentum=0.9, nesterov=True, weight_decay=5e-4)
    reference = torch.optim.SGD(_sgd_groups(theirs), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    assert _train(ours, sgd, range(10), _milestone) == _train(theirs, reference, range(10), _milestone)
    assert _same(ours, theirs)


@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_a_run_resumed_from_a_saved_state_continues_as_the_uninterrupted_one(kind):
    schedule = None if kind == "adam" else _milestone  # the paper's Adam keeps its rate

    def optimizer(model):
        if kind == "adam":
            return Adam(list(model.parameters()), lr=1e-2, betas=(0.9, 0.999), eps=1e-8)
        return SGD(_sgd_groups(model), momentum=0.9, nesterov=True, weight_decay=5e-4)

    first = _model(2)
    first_optimizer = optimizer(first)
    _train(first, first_optimizer, range(5), schedule)
    buffer = io.BytesIO()
    torch.save({"model": first.state_dict(), "optimizer": first_optimizer.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)  # as a checkpoint is read: tensors and plain types only
    resumed = _model(3)
    resumed.load_state_dict(saved["model"])
    resumed_optimizer = optimizer(resumed)
    resumed_optimizer.load_state_dict(saved["optimizer"])
    _train(resumed, resumed_optimizer, range(5, 10), schedule)
    uninterrupted = _model(2)  # the same 10 steps in one optimizer
    uninterrupted_optimizer = optimizer(uninterrupted)
    _train(uninterrupted, uninterrupted_optimizer, range(5), schedule)
    _train(uninterrupted, uninterrupted_optimizer, range(5, 10), schedule)
    assert _same(resumed, uninterrupted)
    assert not _same(resumed, first)


@pytest.mark.parametrize(
    "make",
    [
        lambda p: Adam([], lr=1e-3, betas=(0.9, 0.999), eps=1e-8),
        lambda p: Adam([p], lr=-1.0, betas=(0.9, 0.999), eps=1e-8),
        lambda p: Adam([p], lr=1e-3, betas=(0.9, 1.0), eps=1e-8),
        lambda p: SGD([{"params": [p], "lr": 0.1}], momentum=0.0, nesterov=True, weight_decay=0.0),
        lambda p: SGD([{"params": [p], "lr": 0.1}], momentum=0.9, nesterov=False, weight_decay=-1.0),
    ],
)
def test_settings_torch_refuses_are_refused(make):
    with pytest.raises(ValueError):
        make(torch.zeros(2, requires_grad=True))


def test_a_state_for_other_parameters_is_refused():
    small = Adam([torch.zeros(2, requires_grad=True)], lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    large = Adam([torch.zeros(2, requires_grad=True)] * 2, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    with pytest.raises(ValueError, match="other parameters"):
        small.load_state_dict(large.state_dict())


def test_training_never_imports_torch_dynamo():
    """torch.optim.Optimizer imports torch._dynamo at construction (seconds of every fine-tuning job)."""
    code = (
        "import sys, torch\n"
        "from headstart.finetune.optimizers import SGD, Adam\n"
        "p = torch.zeros(3, requires_grad=True)\n"
        "for opt in (Adam([p], lr=1e-3, betas=(0.9, 0.999), eps=1e-8),"
        " SGD([{'params': [p], 'lr': 0.1}], momentum=0.9, nesterov=True, weight_decay=1e-4)):\n"
        "    (p * p).sum().backward(); opt.step(); opt.zero_grad(); opt.load_state_dict(opt.state_dict())\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    workflow = Path(__file__).resolve().parents[1] / "workflow"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=workflow)
    assert result.stdout.strip() == "False"
