"""Off-policy corrections: relabel a stored high-level goal for the current low level.

One interface, three pieces: `none` (keep the stored goal; LSP, Ma et al.), `hiro` (HIRO's
10 candidates scored by the low level's likelihood of the stored actions) and `flow` (the
paper's exact inverse of the flow, Algorithms 1 and 2). A batch holds c-step segments:
states [K, B, c+1, obs], actions [K, B, c, a], goal [K, B, lo] and the low level's stored
extras (the flow condition `cond` [K, B, c, z] and output `fdgm_output` [K, B, c, d]).
A correction returns a `Relabel`: the goals the high level trains on (inside the subgoal range),
the correction's own result before clipping or fallback, which segments took the correction's
goal (the others keep their stored goal), and for the flow the round trip on the stored values;
hflow.agents.hiro counts them per segment (the relabel accounting in metrics.csv).

A correction is a function of its batch: HIRO's random candidates come in it, drawn by the loop
with `draw` (the others draw nothing), so it can run inside a captured step.

A correction sees the agent only through `LowLevelView`: the low-level policy, the low
level's input and the two bounds; it does not import the agent.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import torch
from torch import nn

from hflow.bounds import clip_to_bound
from hflow.seeding import MemberRNG


class LowLevelView(Protocol):
    """What a correction may use of the agent."""

    subgoal_bound: torch.Tensor  # the subgoal bound (half-range): relabelled goals stay inside
    action_bound: torch.Tensor  # the action bound: HIRO's likelihood divides by it

    @property
    def low_actor(self) -> nn.Module: ...  # the low-level policy: an MLPActor or a FlowActor

    def subgoal_part(self, states: torch.Tensor) -> torch.Tensor: ...

    def low_state_input(self, states: torch.Tensor) -> torch.Tensor: ...

    def low_input(self, states: torch.Tensor, goal: torch.Tensor) -> torch.Tensor: ...


def goal_offsets(low: LowLevelView, states: torch.Tensor) -> torch.Tensor:
    """s_t - s_{t+i} over the subgoal dims for i < c: [..., c+1, obs] -> [..., c, lo].

    The goal the low level held at step i of a segment is g_{t+i} = g_t + offset_i (the goal
    transition h applied i times), and a goal inferred at step i maps back to t by
    g_t = g_{t+i} - offset_i.
    """
    s = low.subgoal_part(states[..., :-1, :])
    return s[..., :1, :] - s


class Relabel(NamedTuple):
    """What a correction did to a batch of segments."""

    goal: torch.Tensor  # [K, B, lo] what the high level trains on, inside the subgoal range
    raw: torch.Tensor  # [K, B, lo] the correction's own result, before clipping or fallback
    replaced: torch.Tensor  # [K, B] bool: the segment took the correction's goal (clipped
    # or not); False: it kept its stored goal
    round_trip: torch.Tensor | None = None  # [K, B] flow: max |f(g~_t; cond_t) - stored_t|


class NoCorrection:
    def draw(self, rng: MemberRNG, batch_size: int, goal_dim: int) -> dict[str, torch.Tensor]:
        return {}

    def __call__(self, low: LowLevelView, batch) -> Relabel:
        goal = batch["goal"]
        return Relabel(goal, goal, torch.zeros(goal.shape[:-1], dtype=torch.bool,
                                               device=goal.device))


class HiroCorrection:
    """HIRO: candidates g, delta-s = s_{t+c} - s_t and `samples` draws N(delta-s,
    (sigma * half-range)^2), all clipped to the subgoal range; keep the one that maximises
    -1/2 sum_i ||(a_i - mu_lo(s_i, g~_i)) / a_max||^2 with g~_i rolled by the transition h."""

    def __init__(self, samples: int = 8, sigma: float = 0.5):
        self.samples, self.sigma = samples, sigma

    def draw(self, rng: MemberRNG, batch_size: int, goal_dim: int) -> dict[str, torch.Tensor]:
        """N(0, 1) for the sampled candidates, [K, B, samples, lo]."""
        return {"candidate_noise": rng.normal(batch_size, self.samples, goal_dim)}

    def candidates(self, low: LowLevelView, states, goal, noise) -> torch.Tensor:
        """[K, B, n, lo], before clipping to the subgoal range."""
        s = low.subgoal_part(states)
        delta = s[:, :, -1] - s[:, :, 0]  # [K, B, lo]
        sampled = delta.unsqueeze(2) + noise * self.sigma * low.subgoal_bound
        return torch.cat([goal.unsqueeze(2), delta.unsqueeze(2), sampled], dim=2)

    @torch.no_grad()
    def score(self, low: LowLevelView, states, actions, cands) -> torch.Tensor:
        goals = goal_offsets(low, states).unsqueeze(2) + cands.unsqueeze(3)  # [K, B, n, c, lo]
        # The state part is the same for every candidate: not copied into each of them.
        predicted = low.low_actor.forward_candidates(
            low.low_state_input(states[:, :, :-1]), goals)  # [K, B, n, c, a]
        diff = predicted.sub_(actions.unsqueeze(2)).div_(low.action_bound)
        return -0.5 * diff.square_().sum(dim=(-1, -2))  # [K, B, n]

    @torch.no_grad()
    def __call__(self, low: LowLevelView, batch) -> Relabel:
        states, actions, goal = batch["states"], batch["actions"], batch["goal"]
        raw = self.candidates(low, states, goal, batch["candidate_noise"])
        cands = clip_to_bound(raw, low.subgoal_bound)
        best = self.score(low, states, actions, cands).argmax(dim=-1)  # [K, B]
        index = best[..., None, None].expand(-1, -1, 1, goal.shape[-1])
        # candidate 0 is the stored goal: picking it keeps the segment as it was
        return Relabel(cands.gather(2, index).squeeze(2), raw.gather(2, index).squeeze(2),
                       best != 0)


class FlowInverseCorrection:
    """The paper's relabelling: g~_{1:d} = f^-1(a_rnvp; condition) for the stored output
    a_rnvp of the FDGM part (or the stored executed action: `flow.relabel_from`).

    alg1 (Algorithm 1): the condition stored at acting time.
    alg2 (Algorithm 2): the condition recomputed by the current forward and conditional parts
    from (s, g) of the segment. The per-step inverses g~_{t+i} are mapped back to time t
    through the goal transition (g~_t = g~_{t+i} + s_{t+i} - s_t) and reduced by `reduce`
    ('first': step t only; 'mean': mean over the c steps). Goal elements beyond d, which the
    flow does not see, keep their stored values (`rest='keep'`) or take HIRO's delta-s
    candidate s_{t+c} - s_t (`rest='delta_s'`). A relabel outside the subgoal range means no
    goal the high level can set reproduces the stored output today: it is clipped to the
    range (`outside_range='clip'`) or the segment keeps its stored goal (`'keep'`); either
    way the unclipped relabel is returned, so the accounting counts it. The round trip
    f(g~_t; cond_t) against the stored value at t checks the inverse on what was stored.
    """

    def __init__(self, inverse: str = "alg1", reduce: str = "first", rest: str = "keep",
                 outside_range: str = "clip"):
        assert inverse in ("alg1", "alg2") and reduce in ("first", "mean")
        assert rest in ("keep", "delta_s") and outside_range in ("clip", "keep")
        self.inverse, self.reduce, self.rest = inverse, reduce, rest
        self.outside_range = outside_range

    def draw(self, rng: MemberRNG, batch_size: int, goal_dim: int) -> dict[str, torch.Tensor]:
        return {}

    @torch.no_grad()
    def __call__(self, low: LowLevelView, batch) -> Relabel:
        actor = low.low_actor
        states, actions, goal = batch["states"], batch["actions"], batch["goal"]
        steps = 1 if self.reduce == "first" else actions.shape[2]
        offsets = goal_offsets(low, states)[:, :, :steps]  # [K, B, n, lo]
        goals = goal.unsqueeze(2) + offsets
        if self.inverse == "alg1":
            cond = batch["cond"][:, :, :steps]
        else:
            cond = actor.condition(low.low_input(states[:, :, :steps], goals))
        d = actor.flow_dim
        stored = actor.relabel_source(actions, batch)[:, :, :steps]
        inverted = actor.invert(stored, cond)  # g~_{t+i}[:d]
        back = inverted - offsets[..., :d]  # to time t
        head = back.mean(dim=2) if self.reduce == "mean" else back[:, :, 0]
        if self.rest == "keep":
            tail = goal[..., d:]
        else:
            s_lo = low.subgoal_part(states)
            tail = (s_lo[:, :, -1] - s_lo[:, :, 0])[..., d:]
        relabelled = torch.cat([head, tail], dim=-1)
        clipped = clip_to_bound(relabelled, low.subgoal_bound)
        replaced = torch.ones(goal.shape[:-1], dtype=torch.bool, device=goal.device)
        if self.outside_range == "keep":
            replaced = ~(relabelled.abs() > low.subgoal_bound).any(dim=-1)
            clipped = torch.where(replaced.unsqueeze(-1), clipped, goal)
        redone = actor.reproduce(inverted[:, :, 0], cond[:, :, 0])
        round_trip = (redone - stored[:, :, 0]).abs().amax(dim=-1)
        return Relabel(clipped, relabelled, replaced, round_trip)


def build_correction(name: str, cfg) -> NoCorrection | HiroCorrection | FlowInverseCorrection:
    if name == "none":
        return NoCorrection()
    if name == "hiro":
        return HiroCorrection(cfg.hierarchy.hiro_candidates, cfg.hierarchy.hiro_candidate_sigma)
    if name == "flow":
        return FlowInverseCorrection(cfg.flow.inverse, cfg.flow.reduce, cfg.flow.rest,
                                     cfg.flow.outside_range)
    raise ValueError(name)
