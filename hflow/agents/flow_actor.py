"""The flow-based low-level policy shared by LSP, Ma et al. and the paper's model.

a = a_max * tanh(f(x; cond)), x = g_{1:d} / half-range (d = action size), f a conditional
RealNVP. The presets differ only in the condition (`flow.condition`):

- `state`  (LSP, Haarnoja et al. 2018 made goal-conditioned): cond = s.
- `goal`   (Ma et al.'s encoder; the paper's Fig. 5 variant): cond = mu_zstate(s, g).
- `action` (ours): a_z = mu_z(s, g) (forward part), cond = a_zstate = mu_zstate(s, a_z)
  (conditional part); the flow is the FDGM part.

Because f is a bijection of g_{1:d} given the condition, `invert` recovers the goal that
produces a stored action: the paper's relabelling.
"""

from __future__ import annotations

import torch
from torch import nn

from hflow.config import FlowConfig
from hflow.nets import MemberMLP
from hflow.nets.flow import ConditionalRealNVP, squash, unsquash
from hflow.seeding import MemberRNG

CONDITIONS = ("state", "goal", "action")


class FlowActor(nn.Module):
    def __init__(self, members: int, state_dim: int, goal_dim: int, action_dim: int,
                 action_bound: torch.Tensor, subgoal_bound: torch.Tensor, hidden: list[int],
                 cfg: FlowConfig, rng: MemberRNG):
        super().__init__()
        assert cfg.condition in CONDITIONS, cfg.condition
        self.state_dim, self.goal_dim, self.flow_dim = state_dim, goal_dim, action_dim
        self.condition_kind, self.eps = cfg.condition, cfg.squash_eps
        self.register_buffer("action_bound", action_bound.clone(), persistent=False)
        # The flow sees g_{1:d} in units of its bound ('range') or as it is ('none').
        self.register_buffer("subgoal_bound", subgoal_bound[:action_dim].clone(),
                             persistent=False)
        self.scale_goals = cfg.goal_scaling == "range"
        if cfg.condition == "state":
            cond_dim = state_dim
        else:
            cond_dim = cfg.z_state_dim
            if cfg.condition == "action":
                self.forward_part = MemberMLP(members, [state_dim + goal_dim, *hidden, action_dim],
                                              rng, out_act="tanh")
                cond_in = state_dim + action_dim
            else:
                cond_in = state_dim + goal_dim
            self.conditional_part = MemberMLP(members, [cond_in, *hidden, cfg.z_state_dim], rng,
                                              out_act="tanh")
        self.flow = ConditionalRealNVP(members, action_dim, cond_dim, cfg.coupling_layers,
                                       cfg.hidden, rng, cfg.scale_bound)
        self.cond_dim = cond_dim

    def condition(self, obs: torch.Tensor) -> torch.Tensor:
        """obs = [s, g] (the low level's input) -> the flow's condition."""
        s = obs[..., :self.state_dim]
        if self.condition_kind == "state":
            return s
        if self.condition_kind == "goal":
            return self.conditional_part(obs)
        a_z = self.forward_part(obs)
        return self.conditional_part(torch.cat([s, a_z], dim=-1))

    def act(self, obs: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cond = self.condition(obs)
        x = obs[..., self.state_dim:self.state_dim + self.flow_dim]
        x = x / self.subgoal_bound if self.scale_goals else x
        y, _ = self.flow(x, cond)
        return squash(y, self.action_bound), {"cond": cond}

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.act(obs)[0]

    def forward_candidates(self, state_in: torch.Tensor, goals: torch.Tensor) -> torch.Tensor:
        """The actions for n candidate goals per state: state_in [K, B, c, o], goals
        [K, B, n, c, g] -> [K, B, n, c, a]."""
        states = state_in.unsqueeze(2).expand(*goals.shape[:-1], -1)
        return self(torch.cat([states, goals], dim=-1))

    def invert(self, action: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The goal elements g_{1:d} that give `action` under `cond`."""
        y = unsquash(action, self.action_bound, self.eps)
        x = self.flow.inverse(y, cond)
        return x * self.subgoal_bound if self.scale_goals else x

    def extras_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"cond": (self.cond_dim,)}
