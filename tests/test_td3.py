"""Member-batched TD3 and its networks, on a problem small enough for CI."""

import numpy as np
import torch
from helpers import tiny

from hflow.agents.hiro import MLPActor
from hflow.agents.td3 import TD3
from hflow.config import TD3Config
from hflow.nets import MemberLinear, MemberMLP, TwinCritic
from hflow.resolve import resolve
from hflow.seeding import MemberRNG
from hflow.train import Trainer


class DriftToZero:
    """1-D point, s' = s + 0.25 a, reward -|s'|, 20-step episodes from s ~ U(-1, 1).
    Random actions return about -12 per episode; moving to 0 and staying there about -2."""

    def __init__(self, members, seed):
        self.rng = np.random.default_rng(seed)
        self.members = members

    def reset(self):
        self.s = self.rng.uniform(-1, 1, (self.members, 1, 1))
        return self.s

    def step(self, a):
        self.s = self.s + 0.25 * a
        return self.s, -np.abs(self.s)


def _td3(members, seeds, hidden=(32, 32)):
    rng = MemberRNG(seeds, "init")
    actor = MLPActor(members, 1, 1, list(hidden), torch.ones(1), rng)
    critic = TwinCritic(members, 1, 1, list(hidden), rng)
    return TD3(actor, critic, TD3Config(gamma=0.9, actor_lr=1e-3, batch_size=64))


def _episode_return(agent, env, members):
    s, total = env.reset(), np.zeros(members)
    for _ in range(20):
        with torch.no_grad():
            a = agent.actor(torch.as_tensor(s, dtype=torch.float32)).numpy()
        s, r = env.step(a)
        total += r[:, 0, 0]
    return total


def test_member_batched_td3_learns_a_small_control_problem():
    torch.manual_seed(0)
    members, seeds = 2, [0, 1]
    agent = _td3(members, seeds)
    env, explore = DriftToZero(members, 0), np.random.default_rng(1)
    replay = {k: [] for k in ("s", "a", "r", "s2")}
    noise_rng, sample_rng = MemberRNG(seeds, "noise"), np.random.default_rng(2)
    before = _episode_return(agent, DriftToZero(members, 9), members)
    for _episode in range(60):
        s = env.reset()
        for _ in range(20):
            with torch.no_grad():
                a = agent.actor(torch.as_tensor(s, dtype=torch.float32)).numpy()
            a = np.clip(a + 0.3 * explore.standard_normal(a.shape), -1, 1)
            s2, r = env.step(a)
            for k, v in zip(("s", "a", "r", "s2"), (s, a, r, s2)):
                replay[k].append(v)
            s = s2
            if len(replay["s"]) >= 64:
                idx = sample_rng.integers(0, len(replay["s"]), 64)
                batch = [torch.as_tensor(np.concatenate([replay[k][i] for i in idx], axis=1),
                                         dtype=torch.float32) for k in ("s", "a", "r", "s2")]
                agent.update(*batch, noise_rng)
    after = _episode_return(agent, DriftToZero(members, 9), members)
    print("returns before", before, "after", after)
    assert (after > -3.5).all(), (before, after)
    assert (after > before + 3).all(), (before, after)


def test_member_linear_is_a_batched_matmul_and_slices_members():
    rng = MemberRNG([0, 1, 2], "t")
    layer = MemberLinear(3, 4, 5)
    layer.reset_parameters(rng)
    x = torch.randn(3, 7, 2, 4)
    y = layer(x)
    assert y.shape == (3, 7, 2, 5)
    for k in range(3):
        assert torch.allclose(y[k], x[k] @ layer.weight[k] + layer.bias[k], atol=1e-6)
    assert torch.allclose(layer(x[:2], members=slice(0, 2)), y[:2])


def test_hiro_initialisation():
    rng = MemberRNG([0, 1], "init")
    mlp = MemberMLP(2, [50, 300, 300, 8], rng)
    hidden, final = mlp.layers[0].weight, mlp.layers[-1].weight
    assert hidden.abs().max() <= 1 / np.sqrt(50) and hidden.abs().max() > 0.9 / np.sqrt(50)
    assert final.abs().max() <= 0.003
    assert (mlp.layers[0].bias == 0).all()
    assert not torch.equal(hidden[0], hidden[1])  # members get their own streams


def test_member_weights_depend_on_their_own_seed_only():
    a = MemberMLP(2, [3, 8, 2], MemberRNG([5, 9], "init"))
    b = MemberMLP(1, [3, 8, 2], MemberRNG([9], "init"))
    for la, lb in zip(a.layers, b.layers):
        assert torch.equal(la.weight[1], lb.weight[0])
    twin2 = TwinCritic(2, 3, 1, [8, 8], MemberRNG([5, 9], "init"))
    twin1 = TwinCritic(1, 3, 1, [8, 8], MemberRNG([9], "init"))
    obs, act = torch.randn(1, 4, 3), torch.randn(1, 4, 1)
    q2 = twin2(torch.cat([obs, obs]), torch.cat([act, act]))
    q1 = twin1(obs, act)
    assert torch.allclose(q2[:, 1], q1[:, 0], atol=1e-6)
    assert torch.allclose(twin2(obs.repeat(2, 1, 1), act.repeat(2, 1, 1), heads=1)[0], q2[0])


def _weights(trainer, member):
    actor = trainer.agent.lo.actor.net
    return [layer.weight[member].detach().clone() for layer in actor.layers]


def test_k_members_match_separate_runs(tmp_path):
    """K = 2 with seeds (3, 4) against K = 1 runs of 3 and of 4, over the first updates."""
    sets = tiny("hiro", ["task.name=PointMazeSingle", "train.steps=300"])
    group = Trainer(resolve("hiro", options={"train.seeds": [3, 4]}, sets=sets),
                    tmp_path / "group", progress=False)
    group.run()
    for k, seed in enumerate((3, 4)):
        alone = Trainer(resolve("hiro", options={"train.seeds": [seed]}, sets=sets),
                        tmp_path / f"alone{seed}", progress=False)
        alone.run()
        for wg, wa in zip(_weights(group, k), _weights(alone, 0)):
            assert torch.allclose(wg, wa, atol=1e-5), (seed, (wg - wa).abs().max())
        rows_g, rows_a = group.metrics[k].rows, alone.metrics[0].rows
        for rg, ra in zip(rows_g, rows_a, strict=True):
            for col in ("eval_reward", "train_return", "lo_critic", "hi_critic"):
                assert np.isclose(rg[col], ra[col], rtol=1e-4, equal_nan=True), (seed, col)


def test_fused_adam_matches_torch_adam():
    from hflow.optim import Adam

    gen = torch.Generator().manual_seed(0)
    ours = [torch.randn(3, 4, generator=gen), torch.randn(5, generator=gen)]
    ref = [torch.nn.Parameter(p.clone()) for p in ours]
    mine, torch_adam = Adam(ours, lr=1e-2), torch.optim.Adam(ref, lr=1e-2)
    for _ in range(5):
        grads = [torch.randn(p.shape, generator=gen) for p in ours]
        mine.step(grads)
        for p, g in zip(ref, grads):
            p.grad = g.clone()
        torch_adam.step()
    for a, b in zip(ours, ref):
        assert torch.allclose(a, b.detach(), atol=1e-6)
    restored = Adam([p.clone() for p in ours], lr=1e-2)
    restored.load_state_dict(mine.state_dict())
    assert torch.equal(restored.step_count, mine.step_count)


def test_first_layer_shared_across_candidates_equals_the_plain_forward():
    mlp = MemberMLP(2, [5, 7, 7, 3], MemberRNG([0, 1], "init"), out_act="tanh")
    gen = torch.Generator().manual_seed(1)
    state, goals = torch.randn(2, 4, 6, 3, generator=gen), torch.randn(2, 4, 9, 6, 2,
                                                                       generator=gen)
    joined = torch.cat([state.unsqueeze(2).expand(2, 4, 9, 6, 3), goals], dim=-1)
    assert torch.allclose(mlp.forward_shared(state, goals), mlp(joined), atol=1e-6)


def test_blocked_rng_resumes_mid_block_and_keeps_members_independent():
    from hflow.seeding import BlockedRNG

    a = BlockedRNG([3, 4], "s", block=4)
    first = [a.normal(2) for _ in range(6)]  # one block and a half
    b = BlockedRNG([3, 4], "s", block=4)
    b.load_state_dict(a.state_dict())
    assert all(torch.equal(a.normal(2), b.normal(2)) for _ in range(7))
    alone = BlockedRNG([4], "s", block=4)  # member 1 of the pair, drawn on its own
    assert all(torch.equal(alone.normal(2)[0], x[1]) for x in first)
