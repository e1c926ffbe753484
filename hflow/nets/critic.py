"""TD3's twin Q networks, stored as 2K members of one network (one matmul per layer)."""

from __future__ import annotations

import torch
from torch import nn

from hflow.nets.dense import MemberLinear
from hflow.seeding import MemberRNG

ACTION_INPUTS = ("first_layer", "second_layer")


class TwinCritic(nn.Module):
    """Q1 and Q2 of K members. HIRO's critic feeds the state to the first layer and joins the
    action at the second (`action_input='second_layer'`); 'first_layer' concatenates both."""

    def __init__(self, members: int, obs_dim: int, act_dim: int, hidden: list[int],
                 rng: MemberRNG, action_input: str = "second_layer"):
        super().__init__()
        assert action_input in ACTION_INPUTS, action_input
        self.members = members
        self.join = 1 if action_input == "second_layer" and len(hidden) > 1 else 0
        sizes = [obs_dim, *hidden, 1]
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(MemberLinear(2 * members, a + (act_dim if i == self.join else 0), b))
        self.layers = nn.ModuleList(layers)
        for i, layer in enumerate(self.layers):
            layer.reset_parameters(rng, final=i == len(self.layers) - 1, copies=2)

    def forward(self, obs: torch.Tensor, action: torch.Tensor, heads: int = 2) -> torch.Tensor:
        """obs [K, B, o], action [K, B, a] -> Q [heads, K, B, 1] (heads=1: Q1 only)."""
        K = self.members
        rows = slice(0, heads * K)
        x = obs if heads == 1 else torch.cat([obs] * heads)
        act = action if heads == 1 else torch.cat([action] * heads)
        for i, layer in enumerate(self.layers):
            if i == self.join:
                x = torch.cat([x, act], dim=-1)
            x = layer(x, members=rows)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x.reshape(heads, K, *x.shape[1:])
