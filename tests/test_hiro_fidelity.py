"""hflow's defaults are HIRO's code (efficient-hrl); each test fails on the other behaviour."""

import copy

import numpy as np
import pytest
import torch

from hflow.agents.hiro import HierarchicalAgent
from hflow.agents.level import Level, make_levels
from hflow.agents.td3 import TD3, draw_target_noise
from hflow.envs.tasks import get_task, goal_space
from hflow.evaluate import metric_names
from hflow.metrics import read_metrics
from hflow.nets import TwinCritic
from hflow.nets.dense import MemberMLP
from hflow.resolve import resolve
from hflow.run import Run
from hflow.seeding import MemberRNG
from hflow.train import Trainer


def _critic(action_input):
    return TwinCritic(2, 5, 3, [16, 16], MemberRNG([0, 1], "init"), action_input)


def test_critic_takes_the_action_at_its_first_and_second_layer():
    """agents/ddpg_networks.py: concat([states, actions]) before the first layer, and
    concat([states, actions], 1) again before the joint layer."""
    assert resolve("hiro").td3.critic_action_input == "both_layers"
    critic = _critic("both_layers")
    assert [layer.in_features for layer in critic.layers] == [5 + 3, 16 + 3, 16]
    obs, action = torch.randn(2, 4, 5), torch.randn(2, 4, 3)
    other = action + 1.0
    for i in (0, 1):  # cut the action out of one layer: Q still depends on it via the other
        cut = _critic("both_layers")
        with torch.no_grad():
            cut.layers[i].weight[:, -3:] = 0
        assert not torch.allclose(cut(obs, action), cut(obs, other))
    assert [layer.in_features for layer in _critic("second_layer").layers] == [5, 16 + 3, 16]
    assert [layer.in_features for layer in _critic("first_layer").layers] == [5 + 3, 16, 16]


def _td3(mode):
    cfg = resolve("hiro", sets=[f"td3.policy_delay_mode={mode}"]).td3
    rng = MemberRNG([0], "init")
    actor = MemberMLP(1, [4, 8, 2], rng, out_act="tanh")
    return TD3(actor, TwinCritic(1, 4, 2, [8, 8], rng), cfg)


def _update(td3):
    gen = torch.Generator().manual_seed(td3.updates)
    obs = torch.randn(1, 16, 4, generator=gen)
    action = torch.rand(1, 16, 2, generator=gen) * 2 - 1
    reward = torch.randn(1, 16, 1, generator=gen)
    Level("low", td3).update(batch=
        {"obs": obs, "action": action, "reward": reward, "next_obs": obs.roll(1, dims=1),
         "noise": draw_target_noise(MemberRNG([0], "noise"), 16, 2)})


@pytest.mark.parametrize("mode", ["zero_loss", "skip"])
def test_delayed_actor_moves_on_adam_momentum_only_with_hiro_delay(mode):
    """train.py: actor_loss *= (n_updates % target_update_period == 0), Adam steps anyway."""
    td3 = _td3(mode)
    _update(td3)  # update 0: the actor's loss counts
    before = [p.detach().clone() for p in td3.actor.parameters()]
    targets = [p.detach().clone() for p in td3.actor_target.parameters()]
    _update(td3)  # update 1: the delayed one
    moved = any(not torch.equal(a, p) for a, p in zip(before, td3.actor.parameters()))
    assert moved == (mode == "zero_loss")
    # targets follow every second update in both modes
    assert all(torch.equal(a, p) for a, p in zip(targets, td3.actor_target.parameters()))
    assert resolve("hiro").td3.policy_delay_mode == "zero_loss"


@pytest.fixture(scope="session")
def hiro_config(tiny):
    def make(extra, task="PointMazeMulti", steps=300):
        return resolve("hiro", options={"train.seeds": [0, 1], "train.steps": steps},
                       sets=tiny("hiro", [f"task.name={task}", *extra]))

    return make


@pytest.fixture(scope="session")
def make_trainer(hiro_config):
    return lambda *args, **kw: Trainer(hiro_config(*args, **kw))


@pytest.mark.parametrize("policy", ["policy", "uniform"])
def test_warmup_acts_with_the_initial_policies(make_trainer, policy):
    """train.py: the first `initial_episodes` are collected by the (untrained) policies plus
    their exploration noise, not by uniform random actions. Noise 0 makes that visible."""
    trainer = make_trainer([f"train.warmup_policy={policy}", "low.explore_sigma=0",
                            "high.explore_sigma=0", "train.warmup=100"])
    for _ in range(60):  # inside the warm-up: no update has run
        trainer.advance()
    data, lo = trainer.low_buffer.storage, trainer.agent.lo_dim
    first_state = trainer.high_buffer.storage["states"][:, :1, 0]  # full state, x and y too
    with torch.no_grad():
        acted, _ = trainer.agent.low.actor.act(data["obs"][:, :60])  # the low level's input
        goal0 = trainer.agent.act_high(first_state, trainer.target)
    same = torch.allclose(acted, data["action"][:, :60], atol=1e-6)
    assert same == (policy == "policy")
    assert torch.allclose(goal0, data["obs"][:, :1, -lo:], atol=1e-6) == (policy == "policy")
    assert resolve("hiro").train.warmup_policy == "policy"


@pytest.mark.parametrize("mode", ["new_goal", "transition"])
def test_stored_next_goal_at_a_segment_end(make_trainer, mode):
    """train.py stores the context the high level just chose as the low level's next goal of
    a segment's last transition; elsewhere the next goal is h(s, g, s')."""
    trainer = make_trainer([f"hierarchy.segment_end_goal={mode}"])
    steps, c, T = 250, trainer.cfg.hierarchy.c, trainer.cfg.task.episode_steps
    for _ in range(steps):
        trainer.advance()
    # the low transitions' goals (the end of their input) and, from the segments (which keep
    # whole states; the low level's input has x, y zeroed), their states
    obs = {k: v[:, :steps] for k, v in trainer.low_buffer.storage.items()}
    lo = trainer.agent.lo_dim
    d = {"goal": obs["obs"][..., -lo:], "next_goal": obs["next_obs"][..., -lo:]}
    segments = trainer.high_buffer.storage["states"][:, :steps // c]  # [K, n, c + 1, o]
    d["state"] = segments[:, :, :-1].flatten(1, 2)
    d["next_state"] = segments[:, :, 1:].flatten(1, 2)
    carried = trainer.agent.goal_transition(d["state"], d["goal"], d["next_state"])
    for t in range(steps - 1):
        if (t + 1) % c == 0 and (t + 1) % T:  # a segment's end inside an episode
            expected = d["goal"][:, t + 1] if mode == "new_goal" else carried[:, t]
            assert torch.equal(d["next_goal"][:, t], expected), t
            assert not torch.allclose(d["goal"][:, t + 1], carried[:, t])  # a new goal
        else:
            assert torch.allclose(d["next_goal"][:, t], carried[:, t]), t
            if (t + 1) % T:
                assert torch.equal(d["goal"][:, t + 1], d["next_goal"][:, t])
    assert resolve("hiro").hierarchy.segment_end_goal == "new_goal"


def test_ant_maze_reports_each_of_hiros_three_targets(hiro_config, make_trainer, tmp_path):
    """ant_maze.gin evaluates at (16, 0), (16, 16) and (0, 16); (0, 16) is the headline."""
    run = Run(hiro_config(["task.episode_steps=20", "train.eval_every=40",
                           "train.eval_episodes=1", "train.warmup=20"],
                          task="AntMazeMulti", steps=40), tmp_path, progress=False)
    names = metric_names(run.trainer.goals)
    for target in ("16_0", "16_16", "0_16"):
        assert {f"eval_success_{target}", f"eval_reward_{target}"} <= set(names)
    run.run()
    rows = read_metrics(tmp_path / "seed0" / "metrics.csv")
    assert len(rows) == 2
    for row in rows:
        assert row["eval_reward"] == row["eval_reward_0_16"]
        assert row["eval_distance"] == row["eval_distance_0_16"]
        assert row["eval_distance_16_0"] != row["eval_distance_0_16"]
        assert np.isfinite(row["eval_reward_16_16"])
    # one target: no per-target columns
    single = make_trainer([], task="BallPushSingle")
    assert metric_names(single.goals) == ["eval_reward", "eval_success", "eval_distance"]


@pytest.mark.parametrize("mode", ["terminal", "bootstrap"])
def test_the_segment_that_ends_an_episode_is_terminal_for_the_high_level(make_trainer, mode):
    """train.py stores meta transitions with discount * (1 - next_reset_episode_cond): the
    one that ends an episode (every 500 steps) does not bootstrap."""
    trainer = make_trainer([f"hierarchy.high_episode_end={mode}"])
    T, c = trainer.cfg.task.episode_steps, trainer.cfg.hierarchy.c
    for _ in range(2 * T):
        trainer.advance()
    discount = trainer.high_buffer.storage["discount"][:, :2 * T // c, 0]
    ends = [(i + 1) * c % T == 0 for i in range(2 * T // c)]
    for i, end in enumerate(ends):
        assert (discount[:, i] == (0.0 if end and mode == "terminal" else 1.0)).all(), i
    # and the critic's TD target uses it: the loss differs between discount 0 and 1
    batch = trainer.high_buffer.sample(8, trainer.rng["replay_hi"])
    agent, lo = trainer.agent, trainer.agent.lo_dim
    drawn = {"noise": FixedNoise().normal(8, lo), **agent.correction.draw(FixedNoise(), 8, lo)}
    losses = []
    for value in (0.0, 1.0):
        high = make_levels(copy.deepcopy(agent), None, None, trainer.rng, trainer.cfg)[1]
        losses.append(high.update(batch={**batch, **drawn, "discount": torch.full_like(
            batch["discount"], value)})["critic"])
    assert not torch.allclose(losses[0], losses[1])
    assert resolve("hiro").hierarchy.high_episode_end == "terminal"


class FixedNoise:
    def normal(self, *shape):
        return torch.zeros(2, *shape)

    def uniform(self, *shape):
        return torch.full((2, *shape), 0.5)


@pytest.mark.parametrize("task,setting,masked", [
    ("AntMazeMulti", None, True), ("PointMazeMulti", None, False),
    ("PointMazeMulti", True, True), ("AntMazeMulti", False, False)])
def test_low_level_sees_xy_as_hiros_subgoal_config_says(task, setting, masked):
    """ZERO_OBS: true in hiro_orig.gin (the ant's 15-dim subgoal), false in hiro_xy.gin (the
    point's x, y); low.zero_xy overrides either."""
    sets = [] if setting is None else [f"low.zero_xy={str(setting).lower()}"]
    cfg = resolve("hiro", options={"task.name": task}, sets=sets)
    spec = get_task(task)
    agent = HierarchicalAgent(cfg, spec, goal_space(spec), [0])
    assert agent.low_state_mask[:2].tolist() == ([0.0, 0.0] if masked else [1.0, 1.0])
    assert agent.low_state_mask[2:].eq(1).all()
