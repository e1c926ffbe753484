"""Off-policy corrections: HIRO's candidates and the flow's exact inverse (Algorithms 1, 2)."""


import numpy as np
import pytest
import torch

from hflow.agents.corrections import FlowInverseCorrection, HiroCorrection
from hflow.agents.hiro import HierarchicalAgent
from hflow.agents.level import Level
from hflow.agents.td3 import draw_target_noise
from hflow.envs import get_task, goal_space
from hflow.nets.flow import squash
from hflow.resolve import resolve
from hflow.seeding import MemberRNG


class KnownLowLevel(torch.nn.Module):
    """A low level we know: a = clip(0.5 * g_xy), whatever the state."""

    def forward(self, obs):
        goal_xy = obs[..., -3:-1]  # PointMaze: obs (7) + goal (x, y, z)
        return (0.5 * goal_xy).clamp(-1, 1)

    def forward_candidates(self, state_in, goals):
        return (0.5 * goals[..., :2]).clamp(-1, 1)


def test_hiro_correction_finds_a_goal_closer_than_the_stale_one(tiny):
    cfg = resolve("hiro", sets=tiny("hiro", ["task.name=PointMazeSingle"]))
    task = get_task("PointMazeSingle")
    agent = HierarchicalAgent(cfg, task, goal_space(task), seeds=[0, 1])
    agent.low.actor = KnownLowLevel()
    c, batch = cfg.hierarchy.c, 16
    rng = np.random.default_rng(0)
    true_goal = torch.tensor(rng.uniform(-1.5, 1.5, (2, batch, 2)), dtype=torch.float32)
    states = torch.zeros(2, batch, c + 1, 7)
    states[..., :3] = torch.tensor(rng.uniform(-3, 3, (2, batch, 1, 3)), dtype=torch.float32)
    actions = torch.zeros(2, batch, c, 2)
    goal = true_goal.clone()
    for i in range(c):  # roll the segment under the known policy: s' = s + 0.2 a
        obs = torch.cat([states[:, :, i], goal], dim=-1)
        actions[:, :, i] = agent.low.actor(obs)
        states[:, :, i + 1] = states[:, :, i]
        states[:, :, i + 1, :2] += 0.2 * actions[:, :, i]
        goal = agent.goal_transition(states[:, :, i], goal, states[:, :, i + 1])
    stale = true_goal + torch.tensor([3.0, -3.0])  # what an older high level asked for
    batch_ = {"states": states, "actions": actions, "goal": stale}
    # sigma 0.25 x the point's half-range 10: candidates spread +-2.5, as on the goal scale
    # of the stale offset
    correction = HiroCorrection(8, 0.25)
    batch_.update(correction.draw(MemberRNG([0, 1], "correction"), batch, 2))
    relabelled, unclipped, _, _ = correction(agent, batch_)
    assert torch.equal(relabelled, unclipped.clamp(-10, 10))  # the point's subgoal bound
    err_new = (relabelled - true_goal)[..., :2].norm(dim=-1)
    err_old = (stale - true_goal)[..., :2].norm(dim=-1)
    assert (err_new < err_old).all()
    assert err_new.mean() < 0.5 * err_old.mean()


@pytest.fixture(scope="session")
def ours_agent(tiny):
    def make(model="ours", members=2, paper_size=False):
        """paper_size: the preset's own networks (180-180, flow 150-150, 4 layers)."""
        seeds = [0, 1][:members]
        cfg = resolve(model, options={"task.name": "AntPushSingle", "train.seeds": seeds},
                      sets=[] if paper_size else tiny(model))
        task = get_task("AntPushSingle")
        agent = HierarchicalAgent(cfg, task, goal_space(task), seeds=seeds)
        torch.manual_seed(3)
        with torch.no_grad():  # move the low level off its near-identity init: conditions matter
            for p in agent.low.actor.parameters():
                p.add_(0.1 * torch.randn_like(p))
        return cfg, agent

    return make


def _segments(agent, cfg, batch=32, seed=0, true_goal=None):
    """Segments acted by the current low level (no noise) from known true goals (drawn inside
    the range unless given)."""
    gen = torch.Generator().manual_seed(seed)
    K, c, o, lo = 2, cfg.hierarchy.c, agent.obs_dim, agent.lo_dim
    # A random walk: rolled goals stay near the range, as in real segments.
    steps = torch.randn(K, batch, c + 1, o, generator=gen) * 0.05
    states = torch.randn(K, batch, 1, o, generator=gen) + steps.cumsum(dim=2)
    if true_goal is None:
        true_goal = (2 * torch.rand(K, batch, lo, generator=gen) - 1) * 0.8 * agent.subgoal_bound
    actions, extras = [], []
    goal = true_goal
    for i in range(c):
        a, ex = agent.act_low(states[:, :, i], goal)
        actions.append(a)
        extras.append(ex)
        goal = agent.goal_transition(states[:, :, i], goal, states[:, :, i + 1])
    stored = {k: torch.stack([ex[k] for ex in extras], 2) for k in extras[0]}
    return {"states": states, "actions": torch.stack(actions, 2), **stored}, true_goal


SOURCES = ["fdgm_output", "executed_action"]


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("reduce", ["first", "mean"])
def test_alg1_recovers_the_goal_that_produced_each_action(ours_agent, reduce, source):
    cfg, agent = ours_agent()
    agent.low.actor.relabel_from = source
    batch, true_goal = _segments(agent, cfg)
    states = batch["states"]
    stale = (2 * torch.rand_like(true_goal) - 1) * agent.subgoal_bound
    batch["goal"] = stale
    out = FlowInverseCorrection("alg1", reduce)(agent, batch).goal
    d = agent.action_dim
    assert torch.allclose(out[..., :d], true_goal[..., :d], atol=1e-3)
    assert torch.equal(out[..., d:], stale[..., d:])  # elements beyond d keep stored values
    delta = FlowInverseCorrection("alg1", reduce, rest="delta_s")(agent, batch).goal
    s_lo = agent.subgoal_part(states)
    delta_s, scale = (s_lo[:, :, -1] - s_lo[:, :, 0])[..., d:], agent.subgoal_bound[d:]
    assert torch.allclose(delta[..., :d], out[..., :d])
    assert torch.allclose(delta[..., d:], torch.maximum(torch.minimum(delta_s, scale), -scale))


def test_alg2_recovers_the_goal_when_the_stored_goal_is_true(ours_agent):
    cfg, agent = ours_agent()
    batch, true_goal = _segments(agent, cfg)
    batch["goal"] = true_goal
    out = FlowInverseCorrection("alg2", "mean")(agent, batch).goal
    assert torch.allclose(out, true_goal, atol=1e-3)
    # With a stale goal the recomputed condition differs: alg2 is not alg1.
    batch["goal"] = true_goal.flip(1)
    assert not torch.allclose(FlowInverseCorrection("alg2", "first")(agent, batch).goal
                              [..., :8], true_goal[..., :8], atol=1e-2)


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("inverse", ["alg1", "alg2"])
def test_relabelled_goal_reproduces_stored_action_after_an_update(ours_agent, inverse, source):
    cfg, agent = ours_agent()
    agent.low.actor.relabel_from = source
    batch, true_goal = _segments(agent, cfg)
    states, actions, cond = batch["states"], batch["actions"], batch["cond"]
    before = [p.detach().clone() for p in agent.low.actor.parameters()]
    low = Level("low", agent.low)
    for _ in range(4):  # change the low level: the stored goals are now stale
        obs = agent.low_input(states[:, :, 0], true_goal)
        low.update(batch={
            "obs": obs, "action": actions[:, :, 0], "reward": torch.randn(2, 32, 1),
            "next_obs": obs,
            "noise": draw_target_noise(MemberRNG([0, 1], "noise"), 32, agent.action_dim)})
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.low.actor.parameters()))
    batch["goal"] = true_goal
    relabelled = FlowInverseCorrection(inverse, "first")(agent, batch).goal
    actor = agent.low.actor
    with torch.no_grad():
        if inverse == "alg1":
            c0 = cond[:, :, 0]
        else:
            c0 = actor.condition(agent.low_input(states[:, :, 0], true_goal))
        x = relabelled[..., :agent.action_dim] / actor.subgoal_bound
        y = actor.flow(x, c0)[0]
    if source == "fdgm_output":  # the FDGM part's stored output itself
        assert torch.allclose(y, batch["fdgm_output"][:, :, 0], atol=1e-4)
    else:
        assert torch.allclose(squash(y, actor.action_bound), actions[:, :, 0], atol=1e-3)
    moved = (relabelled[..., :8] - true_goal[..., :8]).abs().max()
    assert moved > 1e-4  # the update really moved the goal that explains the action


# -- the hard regime: a saturated squash, trained-size weights ---------------------------------

def _saturate(agent, scale=30.0):
    """Push the last two coupling layers' shifts (between them every element) far out:
    pre-squash outputs well beyond atanh(1 - 1e-6) = 7.25, where float32 tanh is +-1 and
    `unsquash` clamps."""
    with torch.no_grad():
        for net in agent.low.actor.flow.nets[-2:]:
            last = net.layers[-1]
            last.bias[..., last.bias.shape[-1] // 2:] += scale


@pytest.mark.parametrize("paper_size", [False, True])
@pytest.mark.parametrize("reduce", ["first", "mean"])
def test_stored_fdgm_output_inverts_to_the_stored_goal_beyond_the_squash(ours_agent, reduce,
                                                                          paper_size):
    cfg, agent = ours_agent("ours", paper_size=paper_size)
    _saturate(agent)
    batch, true_goal = _segments(agent, cfg)
    assert batch["fdgm_output"].abs().min() > 7.25  # every output is past the squash's reach
    batch["goal"] = true_goal
    out, unclipped, _, _ = FlowInverseCorrection("alg1", reduce)(agent, batch)
    assert torch.allclose(unclipped, true_goal, atol=1e-3)  # exact, not merely in range
    # The executed action has lost the goal: every action is at +-a_max.
    agent.low.actor.relabel_from = "executed_action"
    lost = FlowInverseCorrection("alg1", reduce)(agent, batch).goal
    assert (lost - true_goal)[..., :8].abs().amax() > 1


def test_relabel_accounting_sees_a_saturated_low_level(ours_agent):
    cfg, agent = ours_agent("ours")
    batch, true_goal = _segments(agent, cfg)
    batch["goal"] = true_goal
    healthy = agent.relabel_accounting(batch, FlowInverseCorrection("alg1", "first")(agent, batch))
    assert (healthy["saturated"] == 0).all() and (healthy["segments_relabelled"] == 1).all()
    assert (healthy["relabel_shift"] < 1e-3).all()
    assert (healthy["stored_round_trip_error"] < 1e-4).all()

    _saturate(agent)
    batch, true_goal = _segments(agent, cfg)
    batch["goal"] = true_goal
    stored = agent.relabel_accounting(batch, FlowInverseCorrection("alg1", "first")(agent, batch))
    assert (stored["saturated"] == 1).all()  # every action element at the squash's end
    assert (stored["relabel_shift"] < 1e-3).all()  # a_rnvp still inverts exactly
    agent.low.actor.relabel_from = "executed_action"
    executed = agent.relabel_accounting(batch, FlowInverseCorrection("alg1", "first")(
        agent, batch))
    assert (executed["relabel_out_of_range"] > 0.5).all()  # counted before the clip
    assert (executed["segments_clipped"] > 0.5).all()
    assert (executed["relabel_shift"] > 1).all()


def _outside(agent, cfg, elements: list[int], segments=32):
    """Segments from true goals of which `elements[b % len]` goal elements (among the flow's
    first d) lie at 1.5 x the bound; the others at 0.5 x. Returns the batch (stored goal: a
    stale in-range one) and the out-of-range mask [K, B, lo]."""
    K, lo, d = 2, agent.lo_dim, agent.action_dim
    outside = torch.zeros(K, segments, lo, dtype=torch.bool)
    for b in range(segments):
        outside[:, b, :elements[b % len(elements)]] = True
    scale = torch.where(outside, 1.5, 0.5)
    sign = torch.where(torch.arange(lo) % 2 == 0, 1.0, -1.0)
    batch, _ = _segments(agent, cfg, segments, true_goal=scale * sign * agent.subgoal_bound)
    gen = torch.Generator().manual_seed(7)
    batch["goal"] = (2 * torch.rand(K, segments, lo, generator=gen) - 1) * 0.9 * \
        agent.subgoal_bound
    assert not outside[..., d:].any()
    return batch, outside


@pytest.mark.parametrize("outside_range", ["clip", "keep"])
def test_relabel_accounting_counts_every_segment_once(ours_agent, outside_range):
    """A batch whose inverses are known: segments with 0, 1 (mixed within the segment) and 3
    goal elements outside the range. Every count follows from the batch alone."""
    cfg, agent = ours_agent("ours")
    batch, outside = _outside(agent, cfg, [0, 0, 1, 3])  # 1/2 in range, 1/4 one out, 1/4 three
    relabel = FlowInverseCorrection("alg1", "first", outside_range=outside_range)(agent, batch)
    got = agent.relabel_accounting(batch, relabel)
    lo = agent.lo_dim
    assert torch.equal(relabel.raw.abs() > agent.subgoal_bound, outside)  # the premise
    assert torch.equal(got["segments_relabelled"], torch.full((2,), 0.5))
    moved = 0.5 if outside_range == "clip" else 0.0
    assert torch.equal(got["segments_clipped"], torch.full((2,), moved))
    assert torch.equal(got["segments_kept"], torch.full((2,), 0.5 - moved))
    assert torch.allclose(got["relabel_out_of_range"], torch.full((2,), (1 + 3) / 4 / lo))
    # at the bound among replaced segments: the clipped elements (none in range sit there)
    replaced = 32 * (0.5 + moved)
    at_bound = 8 * (1 + 3) if outside_range == "clip" else 0
    assert torch.allclose(got["relabelled_at_bound"], torch.full((2,), at_bound / replaced / lo))
    assert (got["stored_round_trip_error"] < 1e-4).all()
    kept = ~relabel.replaced
    assert torch.equal(relabel.goal[kept], batch["goal"][kept])  # the fallback keeps the goal


def test_relabel_accounting_of_hiro_and_no_correction(ours_agent):
    """HIRO's correction keeps a segment when it picks the stored goal (candidate 0); no
    correction keeps every segment and replaces none, so its at-bound share is undefined."""
    from hflow.agents.corrections import NoCorrection
    cfg, agent = ours_agent("ours")
    batch, true_goal = _segments(agent, cfg)
    batch["goal"] = true_goal  # the stored goal explains the actions best
    hiro = HiroCorrection(8, 0.5)
    batch.update(hiro.draw(MemberRNG([0, 1], "correction"), 32, agent.lo_dim))
    batch["candidate_noise"][:, :16] = 5.0  # far candidates: the stored goal must win there
    relabel = hiro(agent, batch)
    got = agent.relabel_accounting(batch, relabel)
    assert not relabel.replaced[:, :16].any()
    assert torch.equal(got["segments_kept"], 1 - relabel.replaced.float().mean(1))
    assert (got["segments_kept"] >= 0.5).all()
    assert "stored_round_trip_error" not in got
    none = agent.relabel_accounting(batch, NoCorrection()(agent, batch))
    assert (none["segments_kept"] == 1).all() and (none["segments_relabelled"] == 0).all()
    assert none["relabelled_at_bound"].isnan().all()


def test_the_stored_round_trip_sees_a_wrong_stored_value_the_fresh_one_did_not(ours_agent):
    """A stored a_rnvp far past what the flow produces (a corrupted replay, or an overflowed
    flow) cannot be inverted in float32: the round trip on the stored value misses it. The
    round trip the project logged before (act afresh at the stored goal, invert that) reads
    nothing stored and stays exact."""
    cfg, agent = ours_agent("ours")
    batch, true_goal = _segments(agent, cfg)
    batch["goal"] = true_goal
    wrong = 3e7 * torch.linspace(1, 2.7, 8)  # float32 keeps ~7 digits: steps of 2 to 4
    batch["fdgm_output"][:, :4, 0] = wrong  # four segments' stored outputs at step t
    got = agent.relabel_accounting(batch, FlowInverseCorrection("alg1", "first")(agent, batch))
    assert (got["stored_round_trip_error"] > 0.1).all()
    actor = agent.low.actor
    with torch.no_grad():  # the old, fresh round trip: f^-1(f(g)) at today's policy
        obs = agent.low_input(batch["states"][:, :, 0], batch["goal"])
        action, extras = actor.act(obs)
        fresh = actor.invert(actor.relabel_source(action, extras), extras["cond"])
    assert (fresh - batch["goal"][..., :8]).abs().amax() < 1e-3


def test_a_relabel_outside_the_range_is_clipped_or_keeps_the_stored_goal(ours_agent):
    """`flow.outside_range`: a segment whose inverse leaves the subgoal range takes the clipped
    inverse ('clip') or keeps its stored goal ('keep'); in-range segments are relabelled alike,
    and the unclipped inverse (what the health metrics count) is the same under both."""
    cfg, agent = ours_agent("ours")
    batch, true_goal = _segments(agent, cfg)
    stale = (2 * torch.rand_like(true_goal) - 1) * agent.subgoal_bound
    batch["goal"] = stale
    d = agent.action_dim
    # Push half the segments' stored outputs far out: their inverse leaves the range.
    batch["fdgm_output"][:, ::2] *= 50
    clipped, raw, _, _ = FlowInverseCorrection(outside_range="clip")(agent, batch)
    kept, raw_kept, _, _ = FlowInverseCorrection(outside_range="keep")(agent, batch)
    assert torch.equal(raw, raw_kept)
    outside = (raw.abs() > agent.subgoal_bound).any(dim=-1)
    assert outside[:, ::2].float().mean() > 0.5 and not outside[:, 1::2].any()  # the premise
    assert torch.equal(kept[outside], stale[outside])
    assert torch.equal(kept[~outside], clipped[~outside])
    assert torch.allclose(kept[:, 1::2, :d], true_goal[:, 1::2, :d], atol=1e-3)
    assert (clipped[outside].abs() == agent.subgoal_bound.expand_as(raw)[outside]).any(-1).all()
