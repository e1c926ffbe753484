"""The one dense layer of hflow: weights [K, in, out] for K members (seeds) at once.

Every network (actors, critics, the flow's scale/translation nets) is built from it, so K
seeds run as one batched matmul per layer. Inputs are [K, ..., in]; the middle dims are
flattened into one batch dim for `baddbmm`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from hflow.seeding import MemberRNG

FINAL_INIT = 0.003  # HIRO's final layers: U(-0.003, 0.003)
CPU_CHUNK_FLOATS = 1 << 18  # one activation of a forward_shared chunk on the CPU: 1 MiB


class MemberLinear(nn.Module):
    def __init__(self, members: int, in_features: int, out_features: int):
        super().__init__()
        self.members, self.in_features, self.out_features = members, in_features, out_features
        self.weight = nn.Parameter(torch.empty(members, in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(members, 1, out_features))

    def reset_parameters(self, rng: MemberRNG, final: bool = False, copies: int = 1) -> None:
        """HIRO's init: variance scaling 1/3 (fan-in, uniform) = U(+-1/sqrt(fan_in));
        final layers U(+-0.003); biases 0. Member k's weights come from member k's stream;
        with copies > 1 (twin critics) the members are [copy 0 of all seeds, copy 1, ...]."""
        limit = FINAL_INIT if final else 1.0 / math.sqrt(self.in_features)
        with torch.no_grad():
            u = torch.cat([rng.uniform(self.in_features, self.out_features)
                           for _ in range(copies)]).to(self.weight.device)
            self.weight.copy_((2 * u - 1) * limit)
            self.bias.zero_()

    def forward(self, x: torch.Tensor, members: slice | None = None) -> torch.Tensor:
        """members: use a slice of the members (e.g. the first critic of a twin)."""
        weight, bias = self.weight, self.bias
        if members is not None:
            weight, bias = weight[members], bias[members]
        shape = x.shape
        y = torch.baddbmm(bias, x.reshape(shape[0], -1, shape[-1]), weight)
        return y.reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"members={self.members}, in={self.in_features}, out={self.out_features}"


class MemberMLP(nn.Module):
    """ReLU MLP of MemberLinear layers; `out_act` 'tanh' bounds the output to (-1, 1)."""

    def __init__(self, members: int, sizes: list[int], rng: MemberRNG,
                 out_act: str | None = None):
        super().__init__()
        self.layers = nn.ModuleList(MemberLinear(members, a, b)
                                    for a, b in zip(sizes[:-1], sizes[1:]))
        for i, layer in enumerate(self.layers):
            layer.reset_parameters(rng, final=i == len(self.layers) - 1)
        self.out_act = out_act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._after_first(self.layers[0](x))

    def forward_shared(self, shared: torch.Tensor, varied: torch.Tensor) -> torch.Tensor:
        """forward(cat([shared, varied], -1)) for n `varied` rows per `shared` row, without
        building the concatenation: shared [K, B, *rest, p], varied [K, B, n, *rest, q]
        (e.g. one state, n candidate goals). The first layer's shared part is computed once
        per `shared` row.

        On the CPU the B dim is taken in chunks whose activations fit in cache: HIRO's
        correction runs 100 candidate rows per segment through the low-level actor, and in
        one piece its passes wait on memory (1.6x slower at paper size). Each row's
        arithmetic is the same either way, so the results are identical."""
        K, B = varied.shape[:2]
        # floats of the widest activation for one row of B (all members, all n x rest rows)
        per_row = K * varied[0, 0, ..., 0].numel() * max(l.out_features for l in self.layers)
        step = B if varied.device.type != "cpu" else max(1, CPU_CHUNK_FLOATS // per_row)
        if step >= B:
            return self._forward_shared(shared, varied)
        return torch.cat([self._forward_shared(shared[:, i:i + step], varied[:, i:i + step])
                          for i in range(0, B, step)], dim=1)

    def _forward_shared(self, shared: torch.Tensor, varied: torch.Tensor) -> torch.Tensor:
        first = self.layers[0]
        K, p, q = shared.shape[0], shared.shape[-1], varied.shape[-1]
        h_shared = torch.baddbmm(first.bias, shared.reshape(K, -1, p), first.weight[:, :p])
        h_shared = h_shared.reshape(*shared.shape[:-1], -1).unsqueeze(2)
        h_varied = torch.bmm(varied.reshape(K, -1, q), first.weight[:, p:])
        h_varied = h_varied.reshape(*varied.shape[:-1], -1)
        return self._after_first(h_varied.add_(h_shared) if not torch.is_grad_enabled()
                                 else h_varied + h_shared)

    def _after_first(self, x: torch.Tensor) -> torch.Tensor:
        """The rest of the network, from the first layer's pre-activation. Without autograd
        (acting, relabelling) activations are applied in place: on the correction's large
        batches these passes are memory-bound."""
        inplace = not torch.is_grad_enabled()
        for layer in self.layers[1:]:
            x = layer(x.relu_() if inplace else torch.relu(x))
        if self.out_act == "tanh":
            return x.tanh_() if inplace else torch.tanh(x)
        return x


def member_state_dict(module: nn.Module, member: int, members: int) -> dict[str, torch.Tensor]:
    """One member's own weights of a member-batched module, as a state dict that loads into
    the same module built for that member alone. A layer holding `copies x members` members
    (twin critics: copy 0 of every seed, then copy 1) keeps member k of each copy."""
    own = {}
    for prefix, layer in module.named_modules():
        if isinstance(layer, MemberLinear):
            rows = list(range(member, layer.members, members))
            for name in ("weight", "bias"):
                own[f"{prefix}.{name}" if prefix else name] = \
                    getattr(layer, name).detach()[rows].clone()
    # anything else in the state (not member-batched) is the same for every member
    return {name: own[name] if name in own else t.detach().clone()
            for name, t in module.state_dict().items()}
