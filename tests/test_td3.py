"""Member-batched TD3 learns a small control problem (fast enough for CI)."""

import numpy as np
import torch

from hflow.agents.hiro import MLPActor
from hflow.agents.level import Level
from hflow.agents.td3 import TD3, draw_target_noise
from hflow.config import TD3Config
from hflow.nets import TwinCritic
from hflow.seeding import MemberRNG


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
    level = Level("low", agent)
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
                level.update(batch={
                    **dict(zip(("obs", "action", "reward", "next_obs"), batch)),
                    "noise": draw_target_noise(noise_rng, 64, batch[1].shape[-1])})
    after = _episode_return(agent, DriftToZero(members, 9), members)
    print("returns before", before, "after", after)
    assert (after > -3.5).all(), (before, after)
    assert (after > before + 3).all(), (before, after)
















