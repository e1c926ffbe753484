"""Adam as `torch.optim.Adam` computes it, in one fused kernel call per step.

On the small networks of this workload `torch.optim.Adam`'s Python bookkeeping (parameter
groups, state look-ups, per-step checks) cost about 100 us per step on the CI CPU, several
times the arithmetic. This keeps only the kernel that `torch.optim.Adam(fused=True)` calls,
with its moments in plain lists. Gradients are passed in (from `torch.autograd.grad`), so no
`.grad` is ever kept or zeroed. tests/test_td3.py checks it against `torch.optim.Adam`.
"""

from __future__ import annotations

import torch


class Adam:
    def __init__(self, params, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        self.params = list(params)
        self.lr, self.betas, self.eps = lr, betas, eps
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.step_count = torch.zeros((), dtype=torch.float32, device=self.params[0].device)

    def apply(self, fn, params: list) -> None:
        """Applies a module conversion (`nn.Module._apply`'s fn: device, dtype) to the state
        and rebinds the parameters (a conversion may replace them)."""
        self.params = list(params)
        self.exp_avg = [fn(t) for t in self.exp_avg]
        self.exp_avg_sq = [fn(t) for t in self.exp_avg_sq]
        self.step_count = fn(self.step_count)

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> None:
        self.step_count += 1
        torch._fused_adam_(self.params, list(grads), self.exp_avg, self.exp_avg_sq, [],
                           [self.step_count] * len(self.params), lr=self.lr,
                           beta1=self.betas[0], beta2=self.betas[1], weight_decay=0.0,
                           eps=self.eps, amsgrad=False, maximize=False)

    def state_dict(self) -> dict:
        return {"exp_avg": [t.cpu() for t in self.exp_avg],
                "exp_avg_sq": [t.cpu() for t in self.exp_avg_sq],
                "step": self.step_count.cpu()}

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            for mine, saved in ((self.exp_avg, state["exp_avg"]),
                                (self.exp_avg_sq, state["exp_avg_sq"])):
                if len(saved) != len(mine) or any(a.shape != b.shape
                                                  for a, b in zip(mine, saved)):
                    raise ValueError("optimizer state does not match the network's parameters")
                for a, b in zip(mine, saved):
                    a.copy_(b)
            self.step_count.copy_(state["step"])
