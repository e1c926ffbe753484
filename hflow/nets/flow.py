"""Member-batched conditional RealNVP (Dinh et al. 2017) and the action squash.

Each coupling layer keeps the elements where its mask is 1 and transforms the others:
y = m*x + (1-m) * (x * exp(s) + t), with s, t = nets(m*x, condition). Masks alternate, so
every element is transformed by every other layer. The log-scale is bounded,
s = bound * tanh(raw / bound), which keeps exp(s) finite and the inverse well conditioned;
the shift can be bounded the same way (`shift_bound` > 0), which bounds how far the output
can sit from the input and so how much a changed shift moves an inverted value.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from hflow.nets.dense import MemberMLP
from hflow.seeding import MemberRNG


class ConditionalRealNVP(nn.Module):
    def __init__(self, members: int, dim: int, cond_dim: int, layers: int, hidden: list[int],
                 rng: MemberRNG, scale_bound: float = 2.0, shift_bound: float = 0.0):
        super().__init__()
        if dim < 2:
            raise ValueError(f"a coupling flow needs dim >= 2, got {dim}")
        self.dim, self.scale_bound, self.shift_bound = dim, scale_bound, shift_bound
        masks = torch.stack([(torch.arange(dim) + i) % 2 for i in range(layers)]).float()
        self.register_buffer("masks", masks)  # [layers, dim]
        # Final layers start at U(+-0.003): the flow starts close to the identity.
        self.nets = nn.ModuleList(MemberMLP(members, [dim + cond_dim, *hidden, 2 * dim], rng)
                                  for _ in range(layers))

    def _scale_shift(self, i: int, kept: torch.Tensor, cond: torch.Tensor):
        st = self.nets[i](torch.cat([kept, cond], dim=-1))
        raw, shift = st.chunk(2, dim=-1)
        free = 1 - self.masks[i]
        log_scale = self.scale_bound * torch.tanh(raw / self.scale_bound) * free
        if self.shift_bound > 0:
            shift = self.shift_bound * torch.tanh(shift / self.shift_bound)
        return log_scale, shift * free

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [K, ..., dim], cond [K, ..., cond_dim] -> (y, log|det dy/dx| [K, ...])."""
        logdet = torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device)
        for i in range(len(self.nets)):
            mask = self.masks[i]
            log_scale, shift = self._scale_shift(i, x * mask, cond)
            x = x * torch.exp(log_scale) + shift  # kept elements: log_scale = shift = 0
            logdet = logdet + log_scale.sum(dim=-1)
        return x, logdet

    def inverse(self, y: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        for i in reversed(range(len(self.nets))):
            mask = self.masks[i]
            log_scale, shift = self._scale_shift(i, y * mask, cond)
            y = (y - shift) * torch.exp(-log_scale)
        return y


def squash(y: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Flow output -> action in (-high, high)."""
    return high * torch.tanh(y)


def log_squash_jacobian(y: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """log |d squash(y) / dy| per element, computed stably: log(high * (1 - tanh(y)^2))."""
    return torch.log(high) + 2 * (math.log(2) - y - torch.nn.functional.softplus(-2 * y))


def unsquash(action: torch.Tensor, high: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Inverse of `squash`, with the action clamped inside the bounds so that stored actions
    at the bounds (exploration noise is clipped there) map to a finite value."""
    return torch.atanh((action / high).clamp(-1 + eps, 1 - eps))
