"""Off-policy corrections: HIRO's candidates and the flow's exact inverse (Algorithms 1, 2)."""


import numpy as np
import pytest
import torch

from hflow.agents.corrections import FlowInverseCorrection, HiroCorrection
from hflow.agents.hiro import HierarchicalAgent
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
    relabelled, unclipped = correction(agent, batch_)
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


def _segments(agent, cfg, batch=32, seed=0):
    """Segments acted by the current low level (no noise) from known true goals."""
    gen = torch.Generator().manual_seed(seed)
    K, c, o, lo = 2, cfg.hierarchy.c, agent.obs_dim, agent.lo_dim
    # A random walk: rolled goals stay near the range, as in real segments.
    steps = torch.randn(K, batch, c + 1, o, generator=gen) * 0.05
    states = torch.randn(K, batch, 1, o, generator=gen) + steps.cumsum(dim=2)
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
    out, _ = FlowInverseCorrection("alg1", reduce)(agent, batch)
    d = agent.action_dim
    assert torch.allclose(out[..., :d], true_goal[..., :d], atol=1e-3)
    assert torch.equal(out[..., d:], stale[..., d:])  # elements beyond d keep stored values
    delta, _ = FlowInverseCorrection("alg1", reduce, rest="delta_s")(agent, batch)
    s_lo = agent.subgoal_part(states)
    delta_s, scale = (s_lo[:, :, -1] - s_lo[:, :, 0])[..., d:], agent.subgoal_bound[d:]
    assert torch.allclose(delta[..., :d], out[..., :d])
    assert torch.allclose(delta[..., d:], torch.maximum(torch.minimum(delta_s, scale), -scale))


def test_alg2_recovers_the_goal_when_the_stored_goal_is_true(ours_agent):
    cfg, agent = ours_agent()
    batch, true_goal = _segments(agent, cfg)
    batch["goal"] = true_goal
    out, _ = FlowInverseCorrection("alg2", "mean")(agent, batch)
    assert torch.allclose(out, true_goal, atol=1e-3)
    # With a stale goal the recomputed condition differs: alg2 is not alg1.
    batch["goal"] = true_goal.flip(1)
    assert not torch.allclose(FlowInverseCorrection("alg2", "first")(agent, batch)[0]
                              [..., :8], true_goal[..., :8], atol=1e-2)


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("inverse", ["alg1", "alg2"])
def test_relabelled_goal_reproduces_stored_action_after_an_update(ours_agent, inverse, source):
    cfg, agent = ours_agent()
    agent.low.actor.relabel_from = source
    batch, true_goal = _segments(agent, cfg)
    states, actions, cond = batch["states"], batch["actions"], batch["cond"]
    before = [p.detach().clone() for p in agent.low.actor.parameters()]
    for _ in range(4):  # change the low level: the stored goals are now stale
        obs = agent.low_input(states[:, :, 0], true_goal)
        agent.low.update({"obs": obs, "action": actions[:, :, 0], "reward": torch.randn(2, 32, 1),
                          "next_obs": obs, "noise": draw_target_noise(
                              MemberRNG([0, 1], "noise"), 32, agent.action_dim)})
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.low.actor.parameters()))
    batch["goal"] = true_goal
    relabelled, _ = FlowInverseCorrection(inverse, "first")(agent, batch)
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
    out, unclipped = FlowInverseCorrection("alg1", reduce)(agent, batch)
    assert torch.allclose(unclipped, true_goal, atol=1e-3)  # exact, not merely in range
    # The executed action has lost the goal: every action is at +-a_max.
    agent.low.actor.relabel_from = "executed_action"
    lost, _ = FlowInverseCorrection("alg1", reduce)(agent, batch)
    assert (lost - true_goal)[..., :8].abs().amax() > 1


def test_relabel_health_sees_a_saturated_low_level_and_its_failed_round_trip(ours_agent):
    cfg, agent = ours_agent("ours")
    batch, true_goal = _segments(agent, cfg)
    batch["goal"] = true_goal
    goal, unclipped = FlowInverseCorrection("alg1", "first")(agent, batch)
    healthy = agent.relabel_health(batch, goal, unclipped)
    assert (healthy["saturated"] == 0).all() and (healthy["round_trip_miss"] == 0).all()
    assert (healthy["relabel_shift"] < 1e-3).all()

    _saturate(agent)
    batch, true_goal = _segments(agent, cfg)
    batch["goal"] = true_goal
    stored = agent.relabel_health(batch, *FlowInverseCorrection("alg1", "first")(
        agent, batch))
    assert (stored["saturated"] == 1).all()  # every action element at the squash's end
    assert (stored["round_trip_miss"] == 0).all()  # a_rnvp still inverts exactly
    agent.low.actor.relabel_from = "executed_action"
    goal, unclipped = FlowInverseCorrection("alg1", "first")(agent, batch)
    executed = agent.relabel_health(batch, goal, unclipped)
    assert (executed["round_trip_miss"] == 1).all()
    assert (executed["relabel_out_of_range"] > 0.5).all()  # counted before the clip
    assert torch.equal(executed["relabel_at_bound"], executed["relabel_out_of_range"])
    assert (executed["relabel_shift"] > 1).all()


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
    clipped, raw = FlowInverseCorrection("alg1", "first", outside="clip")(agent, batch)
    kept, raw_kept = FlowInverseCorrection("alg1", "first", outside="keep")(agent, batch)
    assert torch.equal(raw, raw_kept)
    outside = (raw.abs() > agent.subgoal_bound).any(dim=-1)
    assert outside[:, ::2].float().mean() > 0.5 and not outside[:, 1::2].any()  # the premise
    assert torch.equal(kept[outside], stale[outside])
    assert torch.equal(kept[~outside], clipped[~outside])
    assert torch.allclose(kept[:, 1::2, :d], true_goal[:, 1::2, :d], atol=1e-3)
    assert (clipped[outside].abs() == agent.subgoal_bound.expand_as(raw)[outside]).any(-1).all()
    health = agent.relabel_health(batch, kept, raw_kept)
    assert torch.equal(health["relabel_out_of_range"],
                       agent.relabel_health(batch, clipped, raw)["relabel_out_of_range"])
    assert (health["relabel_at_bound"] < health["relabel_out_of_range"]).all()
