"""TD3's twin Q networks, stored as 2K members of one network (one matmul per layer)."""

from __future__ import annotations

import torch
from torch import nn

from hflow.nets.dense import MemberLinear
from hflow.seeding import MemberRNG

# Which layers take the action concatenated to their input.
ACTION_INPUTS = {"both_layers": (0, 1), "first_layer": (0,), "second_layer": (1,)}


class TwinCritic(nn.Module):
    """Q1 and Q2 of K members. HIRO's `ddpg_critic_net` concatenates the action with the state
    at the first layer and again with the first layer's output at the second
    (`action_input='both_layers'`); 'first_layer' is the textbook TD3 critic, 'second_layer'
    DDPG's (Lillicrap et al.)."""

    def __init__(self, members: int, obs_dim: int, act_dim: int, hidden: list[int],
                 rng: MemberRNG, action_input: str = "both_layers"):
        super().__init__()
        assert action_input in ACTION_INPUTS, action_input
        self.members = members
        self.joins = ACTION_INPUTS[action_input]
        sizes = [obs_dim, *hidden, 1]
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(MemberLinear(2 * members, a + (act_dim if i in self.joins else 0), b))
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
            if i in self.joins:
                x = torch.cat([x, act], dim=-1)
            x = layer(x, members=rows)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x.reshape(heads, K, *x.shape[1:])
