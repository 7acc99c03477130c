"""The fine-tuning optimisers: torch's own Adam and SGD updates, called through torch's functional API
(``torch.optim.adam.adam``, ``torch.optim.sgd.sgd``), the kernels ``torch.optim.Adam(fused=True)`` and
``torch.optim.SGD`` run, with the same arguments and state, so every step is the same bit for bit
(tests/test_optimizers.py).

Why not ``torch.optim.Optimizer`` itself: its constructor, ``step``, ``zero_grad`` and ``state_dict`` each
import ``torch._dynamo`` (for ``torch.compile``, which fine-tuning never uses), 2.6 s of an 11 s
fine-tuning job on 2 CPU cores, paid by each of the default's 24 jobs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.optim.adam import adam
from torch.optim.sgd import sgd


class _Functional:
    """Parameter groups (``{"params": [...], "lr": ..., ...}``) and each parameter's state, in the order
    of the groups' parameters (the order ``torch.optim.Optimizer.state_dict`` numbers them in)."""

    def __init__(self, groups: Sequence[dict[str, Any]]) -> None:
        if not any(group["params"] for group in groups) or any(group["lr"] < 0 for group in groups):
            raise ValueError("an optimizer needs parameters and a learning rate of at least 0")
        self.param_groups = [dict(group, params=list(group["params"])) for group in groups]
        self._params = [p for group in self.param_groups for p in group["params"]]
        self._index = {id(p): i for i, p in enumerate(self._params)}
        self.state: list[dict[str, torch.Tensor]] = [{} for _ in self._params]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self._params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def _with_grad(self, group: dict[str, Any]) -> list[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
        """The group's parameters that have a gradient, each with its state (torch.optim skips the others)."""
        return [(p, self.state[self._index[id(p)]]) for p in group["params"] if p.grad is not None]

    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain types only (a checkpoint loads with ``weights_only=True``)."""
        return {"state": [dict(state) for state in self.state], "lr": [group["lr"] for group in self.param_groups]}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        if len(saved["state"]) != len(self._params) or len(saved["lr"]) != len(self.param_groups):
            raise ValueError("the saved optimizer state is for other parameters")
        # on each parameter's device, as torch.optim puts it (fused Adam needs its step counter there)
        self.state = [
            {key: value.to(device=p.device) for key, value in state.items()}
            for p, state in zip(self._params, saved["state"], strict=True)
        ]
        for group, lr in zip(self.param_groups, saved["lr"], strict=True):
            group["lr"] = lr


class Adam(_Functional):
    """``torch.optim.Adam(params, lr, betas, eps, fused=True)``: no weight decay, no AMSGrad."""

    def __init__(self, params: Sequence[torch.Tensor], lr: float, betas: tuple[float, float], eps: float) -> None:
        if not all(0.0 <= beta < 1.0 for beta in betas) or len(betas) != 2 or eps < 0:
            raise ValueError(f"Adam needs two betas in [0, 1) and eps >= 0, not betas {betas}, eps {eps}")
        super().__init__([{"params": params, "lr": lr, "betas": tuple(betas), "eps": eps}])

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            params = self._with_grad(group)
            for p, state in params:
                if not state:  # torch.optim.Adam's lazy state: a float32 step counter on p's device (fused)
                    state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            beta1, beta2 = group["betas"]
            adam(
                [p for p, _ in params],
                [p.grad for p, _ in params],
                [state["exp_avg"] for _, state in params],
                [state["exp_avg_sq"] for _, state in params],
                [],
                [state["step"] for _, state in params],
                fused=True,
                amsgrad=False,
                has_complex=False,
                beta1=beta1,
                beta2=beta2,
                lr=group["lr"],
                weight_decay=0.0,
                eps=group["eps"],
                maximize=False,
            )


class SGD(_Functional):
    """``torch.optim.SGD(groups, lr, momentum, nesterov=..., weight_decay=...)``: each group's own ``lr``,
    no dampening."""

    def __init__(self, groups: Sequence[dict[str, Any]], momentum: float, nesterov: bool, weight_decay: float) -> None:
        if momentum < 0 or weight_decay < 0 or (nesterov and momentum <= 0):
            raise ValueError("SGD needs momentum and weight decay >= 0, and a momentum for Nesterov's")
        super().__init__(groups)
        self.momentum, self.nesterov, self.weight_decay = momentum, nesterov, weight_decay

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            params = self._with_grad(group)
            buffers = [state.get("momentum_buffer") for _, state in params]
            sgd(
                [p for p, _ in params],
                [p.grad for p, _ in params],
                buffers,
                weight_decay=self.weight_decay,
                momentum=self.momentum,
                lr=group["lr"],
                dampening=0.0,
                nesterov=self.nesterov,
                maximize=False,
            )
            if self.momentum != 0:  # sgd() creates each buffer at its first step
                for (_, state), buffer in zip(params, buffers, strict=True):
                    state["momentum_buffer"] = buffer
