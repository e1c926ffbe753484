"""The conditional RealNVP, the flow low level, the flow-inverse correction and the presets."""

import pytest
import torch
from helpers import tiny

from hflow.agents.corrections import FlowInverseCorrection
from hflow.agents.hiro import HierarchicalAgent
from hflow.agents.registry import PRESETS, table2_markdown
from hflow.cli import main
from hflow.config import ConfigError
from hflow.envs import get_task, goal_space
from hflow.metrics import read_metrics
from hflow.nets.flow import ConditionalRealNVP, squash, unsquash
from hflow.resolve import resolve
from hflow.seeding import MemberRNG
from hflow.train import Trainer


def _random_flow(members=3, dim=8, cond_dim=5):
    flow = ConditionalRealNVP(members, dim, cond_dim, layers=4, hidden=[32, 32],
                              rng=MemberRNG(list(range(members)), "init"), scale_bound=2.0)
    with torch.no_grad():  # away from the near-identity init, so the test means something
        for p in flow.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return flow


def test_flow_inverse_of_forward_is_identity():
    torch.manual_seed(0)
    flow = _random_flow()
    x, cond = torch.randn(3, 64, 8), torch.randn(3, 64, 5)
    y, _ = flow(x, cond)
    assert (y - x).abs().max() > 0.1
    assert torch.allclose(flow.inverse(y, cond), x, atol=1e-5)


def test_flow_log_det_matches_autograd_jacobian():
    torch.manual_seed(1)
    flow = _random_flow(members=2, dim=6, cond_dim=3)
    for k in range(2):
        for _ in range(3):
            x, cond = torch.randn(6), torch.randn(3)

            def f(v, k=k, cond=cond):
                full = torch.zeros(2, 1, 6)
                full[k, 0] = v
                c = torch.zeros(2, 1, 3)
                c[k, 0] = cond
                return flow(full, c)[0][k, 0]

            jac = torch.autograd.functional.jacobian(f, x)
            full, c = torch.zeros(2, 1, 6), torch.zeros(2, 1, 3)
            full[k, 0], c[k, 0] = x, cond
            logdet = flow(full, c)[1][k, 0]
            assert torch.allclose(logdet, torch.linalg.slogdet(jac).logabsdet, atol=1e-4)


def test_squash_inverse_is_finite_at_the_bounds():
    high = torch.full((8,), 30.0)
    actions = torch.tensor([[-30.0] * 4 + [30.0] * 4, [-31.0] * 4 + [1e9] * 4])
    y = unsquash(actions, high)
    assert torch.isfinite(y).all()
    inner = torch.linspace(-29, 29, 8)
    assert torch.allclose(squash(unsquash(inner, high), high), inner, atol=1e-4)


def _ours_agent(model="ours", members=2):
    cfg = resolve(model, options={"task.name": "AntPushSingle", "train.seeds": [0, 1][:members]},
                  sets=tiny(model))
    task = get_task("AntPushSingle")
    agent = HierarchicalAgent(cfg, task, goal_space(task), seeds=[0, 1][:members])
    torch.manual_seed(3)
    with torch.no_grad():  # move the low level off its near-identity init: conditions matter
        for p in agent.lo.actor.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return cfg, agent


def _segments(agent, cfg, batch=32, seed=0):
    """Segments acted by the current low level (no noise) from known true goals."""
    gen = torch.Generator().manual_seed(seed)
    K, c, o, lo = 2, cfg.hierarchy.c, agent.obs_dim, agent.lo_dim
    # A random walk: rolled goals stay near the range, as in real segments.
    steps = torch.randn(K, batch, c + 1, o, generator=gen) * 0.05
    states = torch.randn(K, batch, 1, o, generator=gen) + steps.cumsum(dim=2)
    true_goal = (2 * torch.rand(K, batch, lo, generator=gen) - 1) * 0.8 * agent.goal_scale
    actions, conds = [], []
    goal = true_goal
    for i in range(c):
        a, extras = agent.act_lo(states[:, :, i], goal)
        actions.append(a)
        conds.append(extras["cond"])
        goal = agent.goal_transition(states[:, :, i], goal, states[:, :, i + 1])
    return states, torch.stack(actions, 2), torch.stack(conds, 2), true_goal


@pytest.mark.parametrize("reduce", ["first", "mean"])
def test_alg1_recovers_the_goal_that_produced_each_action(reduce):
    cfg, agent = _ours_agent()
    states, actions, cond, true_goal = _segments(agent, cfg)
    stale = (2 * torch.rand_like(true_goal) - 1) * agent.goal_scale
    batch = {"states": states, "actions": actions, "cond": cond, "goal": stale}
    out = FlowInverseCorrection("alg1", reduce)(agent, batch, None)
    d = agent.action_dim
    assert torch.allclose(out[..., :d], true_goal[..., :d], atol=1e-3)
    assert torch.equal(out[..., d:], stale[..., d:])  # elements beyond d keep stored values
    delta = FlowInverseCorrection("alg1", reduce, rest="delta_s")(agent, batch, None)
    s_lo = agent.subgoal_part(states)
    delta_s, scale = (s_lo[:, :, -1] - s_lo[:, :, 0])[..., d:], agent.goal_scale[d:]
    assert torch.allclose(delta[..., :d], out[..., :d])
    assert torch.allclose(delta[..., d:], torch.maximum(torch.minimum(delta_s, scale), -scale))


def test_alg2_recovers_the_goal_when_the_stored_goal_is_true():
    cfg, agent = _ours_agent()
    states, actions, cond, true_goal = _segments(agent, cfg)
    batch = {"states": states, "actions": actions, "cond": cond, "goal": true_goal}
    out = FlowInverseCorrection("alg2", "mean")(agent, batch, None)
    assert torch.allclose(out, true_goal, atol=1e-3)
    # With a stale goal the recomputed condition differs: alg2 is not alg1.
    batch["goal"] = true_goal.flip(1)
    assert not torch.allclose(FlowInverseCorrection("alg2", "first")(agent, batch, None)
                              [..., :8], true_goal[..., :8], atol=1e-2)


@pytest.mark.parametrize("inverse", ["alg1", "alg2"])
def test_relabelled_goal_reproduces_stored_action_after_an_update(inverse):
    cfg, agent = _ours_agent()
    states, actions, cond, true_goal = _segments(agent, cfg)
    before = [p.detach().clone() for p in agent.lo.actor.parameters()]
    for _ in range(4):  # change the low level: the stored goals are now stale
        obs = agent.lo_input(states[:, :, 0], true_goal)
        agent.lo.update(obs, actions[:, :, 0], torch.randn(2, 32, 1), obs,
                        MemberRNG([0, 1], "noise"))
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.lo.actor.parameters()))
    batch = {"states": states, "actions": actions, "cond": cond, "goal": true_goal}
    relabelled = FlowInverseCorrection(inverse, "first")(agent, batch, None)
    actor = agent.lo.actor
    with torch.no_grad():
        if inverse == "alg1":
            c0 = cond[:, :, 0]
        else:
            c0 = actor.condition(agent.lo_input(states[:, :, 0], true_goal))
        x = relabelled[..., :agent.action_dim] / actor.x_scale
        reproduced = squash(actor.flow(x, c0)[0], actor.action_high)
    assert torch.allclose(reproduced, actions[:, :, 0], atol=1e-3)
    moved = (relabelled[..., :8] - true_goal[..., :8]).abs().max()
    assert moved > 1e-4  # the update really moved the goal that explains the action


@pytest.mark.parametrize("model", list(PRESETS))
def test_every_preset_trains_on_a_point_task(model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = resolve(model, options={"task.name": "BallPushSingle", "train.seeds": [0, 1],
                                  "train.steps": 400}, sets=tiny(model))
    Trainer(cfg, tmp_path, progress=False).run()
    for seed in (0, 1):
        rows = read_metrics(tmp_path / f"seed{seed}" / "metrics.csv")
        assert [r["step"] for r in rows] == [0, 200, 400]
        last = rows[-1]
        for col in ("eval_reward", "lo_critic", "lo_actor", "hi_critic", "hi_actor"):
            assert last[col] == last[col] and abs(last[col]) < 1e6, (model, col, last[col])
        assert (last["hi_relabel_shift"] > 0) == PRESETS[model].off_policy_correction


def test_table2_comes_from_the_preset_flags(capsys):
    table = table2_markdown()
    assert "| Our model | O | O |" in table and "| HIRO | O | X |" in table
    assert "| LSP | X | O |" in table and "| Ma et al. | X | O |" in table
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "| Our model | O | O |" in out and "ours_goal_conditioned" in out


def test_table2_flags_are_read_from_the_resolved_config():
    """A preset that leaves a key at its default gets the default's flag (HIRO's correction
    is the config default), and every flag agrees with resolving the preset."""
    from hflow.agents.registry import Preset

    bare = Preset("bare", "bare", "Bare", "defaults only", {})
    assert bare.off_policy_correction and not bare.fdgm
    flow_only = Preset("flow_only", "f", "F", "flow, correction left at its default",
                       {"lo.policy": "flow"})
    assert flow_only.off_policy_correction and flow_only.fdgm
    for name, preset in PRESETS.items():
        cfg = resolve(name)
        assert preset.off_policy_correction == (cfg.hierarchy.correction != "none"), name
        assert preset.fdgm == (cfg.lo.policy == "flow"), name


def test_bad_presets_and_options():
    with pytest.raises(ConfigError, match="unknown model preset 'our'; presets: ours, hiro"):
        resolve("our")
    with pytest.raises(ConfigError, match="'hierarchy.correction' = flow .* model 'hiro'"):
        resolve("hiro", sets=["hierarchy.correction=flow"])
    with pytest.raises(ConfigError, match="'flow.reduce' does not apply to model 'hiro'"):
        resolve("hiro", sets=["flow.reduce=mean"])
    with pytest.raises(ConfigError, match="'flow.inverse' only acts with hierarchy.correction "
                                          "= flow; model 'lsp' uses"):
        resolve("lsp", sets=["flow.inverse=alg2"])
    with pytest.raises(ConfigError, match="flow models need lo >= 8"):
        resolve("ours", sets=["task.lo=6"])
