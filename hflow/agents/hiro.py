"""The two-level agent of HIRO (Nachum et al. 2018), shared by every model of the paper.

High level: every c steps, mu_hi(s, target) -> a relative subgoal g over the first `lo`
elements of the robot's tuple. Low level: mu_lo(s with x, y zeroed, g) -> action; between
high-level steps the goal follows h(s, g, s') = s + g - s' and the intrinsic reward is
-||s + g - s'||. Both levels are member-batched TD3; the high level trains on c-step segments
whose goals are first relabelled by the model's off-policy correction.
"""

from __future__ import annotations

import torch
from torch import nn

from hflow.agents.corrections import Relabel, build_correction
from hflow.agents.flow_actor import FlowActor
from hflow.agents.td3 import TD3
from hflow.bounds import clip_to_bound
from hflow.config import RunConfig
from hflow.envs import GoalSpace, TaskSpec
from hflow.nets import MemberMLP, TwinCritic
from hflow.seeding import MemberRNG


def draw_exploration(rng: MemberRNG, size: int) -> torch.Tensor:
    """N(0, 1) exploration noise for one step of every member, [K, 1, size]."""
    return rng.normal(1, size)


def explore(value: torch.Tensor, noise: torch.Tensor, sigma: float,
            bound: torch.Tensor) -> torch.Tensor:
    """Gaussian exploration (HIRO): value + sigma * noise, clipped to +-bound."""
    return clip_to_bound(value + sigma * noise, bound)


class MLPActor(nn.Module):
    """mu(obs) = bound * tanh(MLP(obs)): HIRO's actor for either level (bound: the subgoal
    bound for the high level, the action bound for the low level)."""

    def __init__(self, members: int, in_dim: int, out_dim: int, hidden: list[int],
                 bound: torch.Tensor, rng: MemberRNG):
        super().__init__()
        self.net = MemberMLP(members, [in_dim, *hidden, out_dim], rng, out_act="tanh")
        self.register_buffer("bound", bound.clone(), persistent=False)  # from the task

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.bound * self.net(obs)

    def act(self, obs: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self(obs), {}

    def act_for_loss(self, obs: torch.Tensor) -> tuple[torch.Tensor, None]:
        """(action, the actor loss's terms besides -Q: none for HIRO's actor)."""
        return self(obs), None

    def forward_candidates(self, state_in: torch.Tensor, goals: torch.Tensor) -> torch.Tensor:
        """mu([s_i, g]) for n candidate goals per state: state_in [K, B, c, o] (the low
        level's state input), goals [K, B, n, c, g] -> [K, B, n, c, a]."""
        return self.bound * self.net.forward_shared(state_in, goals)

    def extras_shapes(self) -> dict[str, tuple[int, ...]]:
        return {}


class HierarchicalAgent(nn.Module):
    def __init__(self, cfg: RunConfig, task: TaskSpec, goals: GoalSpace, seeds: list[int]):
        super().__init__()
        K = len(seeds)
        self.cfg = cfg
        self.obs_dim, self.lo_dim, self.hi_dim = task.obs_dim, goals.lo, goals.hi
        self.action_dim = task.robot.nu
        subgoal_bound = torch.tensor(goals.subgoal_bound, dtype=torch.float32)
        action_bound = torch.tensor(task.robot.action_bound, dtype=torch.float32)
        # the bounds come from the task, not from training: not part of the saved state
        self.register_buffer("subgoal_bound", subgoal_bound, persistent=False)
        self.register_buffer("action_bound", action_bound, persistent=False)
        rng = MemberRNG(seeds, "init")  # networks are built in a fixed order from it

        high_obs = self.obs_dim + self.hi_dim
        self.high = TD3(MLPActor(K, high_obs, self.lo_dim, cfg.high.actor, subgoal_bound, rng),
                        TwinCritic(K, high_obs, self.lo_dim, cfg.high.critic, rng,
                                   cfg.td3.critic_action_input), cfg.td3,
                        cfg.high.reward_scale)
        low_obs = self.obs_dim + self.lo_dim
        if cfg.low.policy == "flow":
            low_actor = FlowActor(K, self.obs_dim, self.lo_dim, self.action_dim, action_bound,
                                  subgoal_bound, cfg.low.actor, cfg.flow, rng)
        else:
            low_actor = MLPActor(K, low_obs, self.action_dim, cfg.low.actor, action_bound, rng)
        self.low = TD3(low_actor, TwinCritic(K, low_obs, self.action_dim, cfg.low.critic, rng,
                                             cfg.td3.critic_action_input), cfg.td3,
                       cfg.low.reward_scale)
        self.correction = build_correction(cfg.hierarchy.correction, cfg)
        self.high.relabel = self.relabel
        xy_mask = torch.ones(self.obs_dim)
        zero_xy = task.robot.zero_xy if cfg.low.zero_xy is None else cfg.low.zero_xy
        if zero_xy:
            xy_mask[:2] = 0
        self.register_buffer("low_state_mask", xy_mask)

    @property
    def low_actor(self) -> nn.Module:
        return self.low.actor

    # -- the hierarchy's fixed functions -------------------------------------------------------
    def subgoal_part(self, states: torch.Tensor) -> torch.Tensor:
        return states[..., :self.lo_dim]

    def goal_transition(self, s, g, s_next):
        """h(s, g, s') = s + g - s': the same absolute point, seen from s'."""
        return self.subgoal_part(s) + g - self.subgoal_part(s_next)

    def intrinsic_reward(self, next_goal):
        """-||s + g - s'||, i.e. minus the size of the goal that is left after the step."""
        return -torch.linalg.vector_norm(next_goal, dim=-1, keepdim=True)

    def low_state_input(self, states):
        """The state as the low level sees it (x, y zeroed by default)."""
        return states * self.low_state_mask

    def low_input(self, states, goal):
        return torch.cat([self.low_state_input(states), goal], dim=-1)

    def high_input(self, states, target):
        return torch.cat([states, target], dim=-1)

    # -- acting: noise-free here; the loop's steps add exploration noise it drew (explore_*)
    @torch.no_grad()
    def act_high(self, states, target):
        return self.high.actor(self.high_input(states, target))

    @torch.no_grad()
    def act_low(self, states, goal):
        return self.low.actor.act(self.low_input(states, goal))

    def explore_high(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """inputs: state, target and `noise` (draw_exploration) -> the next goal."""
        goal = self.act_high(inputs["state"], inputs["target"])
        return {"goal": explore(goal, inputs["noise"], self.cfg.high.explore_sigma,
                                self.subgoal_bound)}

    def explore_low(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """inputs: state, goal and `noise` -> the action and what the segment stores."""
        action, extras = self.act_low(inputs["state"], inputs["goal"])
        return {"action": explore(action, inputs["noise"], self.cfg.low.explore_sigma,
                                  self.action_bound), **extras}

    # -- learning: each level is a TD3 (hflow.agents.td3) updated by its Level
    # (hflow.agents.level); the low level's replay holds what its TD3 takes; the high level's
    # critic step first relabels the sampled segments' goals (TD3.relabel is this method)
    def relabel(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        """batch: sampled segments with the correction's draws -> (each segment's goal
        relabelled for today's low level, the high critic's action; what the relabel did)."""
        relabel = self.correction(self, batch)
        return relabel.goal, self.relabel_accounting(batch, relabel)

    @torch.no_grad()
    def relabel_accounting(self, batch: dict, relabel: Relabel) -> dict[str, torch.Tensor]:
        """Per member [K], over the sampled segments. Each segment is counted once: its goal
        was replaced by the correction's result as it came (`segments_relabelled`), replaced
        by that result clipped into the subgoal range (`segments_clipped`), or it kept its
        stored goal (`segments_kept`: a fallback, HIRO picking the stored candidate, or no
        correction). Beside them: `relabel_shift` (mean |goal - stored goal|),
        `relabel_out_of_range` (share of the correction's goal elements outside the range
        before clipping or fallback), `relabelled_at_bound` (share of goal elements at the
        bound among replaced segments; NaN when none was), `saturated` (share of the low
        level's noise-free action elements at s_t, g_t in the squash's saturated end) and,
        for the flow's inverse, `stored_round_trip_error` (mean over the replaced segments of
        max |f(g~_t; cond_t) - stored value at t| with g~_t before clipping: the inverse
        checked on what was stored; NaN when none was replaced)."""
        bound, goal, replaced = self.subgoal_bound, relabel.goal, relabel.replaced
        outside = relabel.raw.abs() > bound
        exact = replaced & ~outside.any(dim=-1)
        obs = self.low_input(batch["states"][:, :, 0], batch["goal"])
        saturated = (self.low.actor(obs) / self.action_bound).abs() > 1 - self.cfg.flow.squash_eps
        at_bound = ((goal.abs() >= bound) & replaced.unsqueeze(-1)).float().sum(dim=(1, 2))
        accounting = {
            "relabel_shift": torch.linalg.vector_norm(goal - batch["goal"], dim=-1).mean(1),
            "segments_relabelled": exact.float().mean(1),
            "segments_clipped": (replaced & ~exact).float().mean(1),
            "segments_kept": (~replaced).float().mean(1),
            "relabel_out_of_range": outside.float().mean(dim=(1, 2)),
            "relabelled_at_bound": at_bound / (replaced.float().sum(1) * goal.shape[-1]),
            "saturated": saturated.float().mean(dim=(1, 2)),
        }
        if relabel.round_trip is not None:
            error = torch.where(replaced, relabel.round_trip, 0.0).sum(1)
            accounting["stored_round_trip_error"] = error / replaced.float().sum(1)
        return accounting

    def mutable_tensors(self) -> list[torch.Tensor]:
        """Every tensor an update changes: networks, target networks, optimizer moments (the
        optimizers are modules of each level's TD3)."""
        return [*self.parameters(), *self.buffers()]

    def replay_fields(self) -> tuple[dict, dict]:
        """Field shapes of the low-level and high-level replay buffers."""
        o, lo, a, c = self.obs_dim, self.lo_dim, self.action_dim, self.cfg.hierarchy.c
        low = {"obs": (o + lo,), "action": (a,), "reward": (1,), "next_obs": (o + lo,)}
        high = {"states": (c + 1, o), "actions": (c, a), "goal": (lo,),
                "target": (self.hi_dim,), "reward": (1,), "discount": (1,),
                "obs": (o + self.hi_dim,), "next_obs": (o + self.hi_dim,)}
        high.update({k: (c, *shape) for k, shape in self.low.actor.extras_shapes().items()})
        return low, high
