"""The flow-based low-level policy shared by LSP, Ma et al. and the paper's model.

a = a_max * tanh(f(x; cond)), x = g_{1:d} / half-range (d = action size), f a conditional
RealNVP. The presets differ only in the condition (`flow.condition`):

- `state`  (LSP, Haarnoja et al. 2018 made goal-conditioned): cond = s.
- `goal`   (Ma et al.'s encoder; the paper's Fig. 5 variant): cond = mu_zstate(s, g).
- `action` (ours): a_z = mu_z(s, g) (forward part), cond = a_zstate = mu_zstate(s, a_z)
  (conditional part); the flow is the FDGM part.

Because f is a bijection of g_{1:d} given the condition, the inverse recovers the goal that
produced a stored output: the paper's relabelling. What is inverted is `flow.relabel_from`:
the FDGM part's own output y = f(x; cond) (`fdgm_output`, stored beside the condition at
acting time; exact up to float rounding) or the executed action (`executed_action`: noise
added, squashed, clipped; the squash is inverted with a clamp, lossy where tanh saturates).

The actor loss may carry two terms besides -Q (`act_for_loss`): a penalty on the pre-squash
output, `flow.presquash_penalty` * mean(y^2), which keeps y where tanh is invertible in
float32 (|y| < atanh(1 - squash_eps)); and the log-density of the executed action for a goal
x ~ N(0, I) in flow units, `flow.log_density_weight` * log p(a | cond), as in SAC/LSP's
entropy term (docs/interpretation.md says why both are off by default and on for `ours`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from hflow.config import FlowConfig
from hflow.nets import MemberMLP
from hflow.nets.flow import ConditionalRealNVP, log_squash_jacobian, squash, unsquash
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
        self.relabel_from = cfg.relabel_from
        self.presquash_penalty, self.log_density_weight = (cfg.presquash_penalty,
                                                           cfg.log_density_weight)
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
                                       cfg.hidden, rng, cfg.scale_bound, cfg.shift_bound)
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

    def _flow_input(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs[..., self.state_dim:self.state_dim + self.flow_dim]
        return x / self.subgoal_bound if self.scale_goals else x

    def act(self, obs: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(action, what the segment stores for relabelling: the condition a_z-state and the
        FDGM part's output a_rnvp before the squash)."""
        cond = self.condition(obs)
        y, _ = self.flow(self._flow_input(obs), cond)
        return squash(y, self.action_bound), {"cond": cond, "fdgm_output": y}

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.act(obs)[0]

    def act_for_loss(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(action, the actor loss's terms besides -Q, [K, B, 1] or None)."""
        cond = self.condition(obs)
        x = self._flow_input(obs)
        y, logdet = self.flow(x, cond)
        action = squash(y, self.action_bound)
        extra = None
        if self.presquash_penalty > 0:
            extra = self.presquash_penalty * y.square().mean(dim=-1, keepdim=True)
        if self.log_density_weight > 0:
            # log p(a | cond) for x ~ N(0, I): change of variables through flow and squash
            log_p = (-0.5 * x.square() - 0.5 * math.log(2 * math.pi)).sum(-1) - logdet \
                - log_squash_jacobian(y, self.action_bound).sum(-1)
            term = self.log_density_weight * log_p.unsqueeze(-1)
            extra = term if extra is None else extra + term
        return action, extra

    def forward_candidates(self, state_in: torch.Tensor, goals: torch.Tensor) -> torch.Tensor:
        """The actions for n candidate goals per state: state_in [K, B, c, o], goals
        [K, B, n, c, g] -> [K, B, n, c, a]."""
        states = state_in.unsqueeze(2).expand(*goals.shape[:-1], -1)
        return self(torch.cat([states, goals], dim=-1))

    def invert(self, stored: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The goal elements g_{1:d} that give `stored` (per `relabel_from`: the FDGM
        part's output, or an executed action) under `cond`."""
        y = stored if self.relabel_from == "fdgm_output" else \
            unsquash(stored, self.action_bound, self.eps)
        x = self.flow.inverse(y, cond)
        return x * self.subgoal_bound if self.scale_goals else x

    def reproduce(self, goal_head: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """`invert`'s way back: what the flow gives for the goal elements g_{1:d} under
        `cond`, in the units `invert` takes (a_rnvp, or the noise-free executed action)."""
        x = goal_head / self.subgoal_bound if self.scale_goals else goal_head
        y, _ = self.flow(x, cond)
        return y if self.relabel_from == "fdgm_output" else squash(y, self.action_bound)

    def relabel_source(self, action: torch.Tensor, extras: dict) -> torch.Tensor:
        """What `invert` takes, from an action and its extras (stored or fresh)."""
        return extras["fdgm_output"] if self.relabel_from == "fdgm_output" else action

    def extras_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"cond": (self.cond_dim,), "fdgm_output": (self.flow_dim,)}
