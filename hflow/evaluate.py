"""Deterministic evaluation at the task's fixed eval target.

All eval episodes of all members run together: K x E envs, one batched forward pass per level
and step. Episode e of the member with seed s always starts from the same initial state
(seeded by (s, e)), so successive points of a curve differ by the policy only.
"""

from __future__ import annotations

import numpy as np
import torch

from hflow.envs.batch import EnvBatch, task_env
from hflow.seeding import stream_seed


def make_eval_envs(cfg, seeds: list[int]) -> EnvBatch:
    return EnvBatch([[task_env(cfg.task, "eval") for _ in range(cfg.train.eval_episodes)]
                     for _ in seeds])


@torch.no_grad()
def evaluate(agent, envs: EnvBatch, seeds: list[int], cfg, device) -> dict[str, np.ndarray]:
    """Per member [K]: eval_reward, eval_success, eval_distance."""
    K, E = envs.shape
    episode_seeds = np.array([[stream_seed(s, f"eval/{e}") % 2**32 for e in range(E)]
                              for s in seeds])
    obs, target = envs.reset(episode_seeds)

    def to_device(x):
        return torch.as_tensor(x, dtype=torch.float32, device=device)

    state, target_t = to_device(obs), to_device(target)
    returns = np.zeros((K, E))
    goal = None
    for t in range(cfg.task.episode_steps):
        if t % cfg.hierarchy.c == 0:
            goal = agent.act_hi(state, target_t)
        action, _ = agent.act_lo(state, goal)
        obs, reward, distance, success = envs.step(action.cpu().numpy())
        next_state = to_device(obs)
        goal = agent.goal_transition(state, goal, next_state)
        state = next_state
        returns += reward
    return {"eval_reward": returns.mean(axis=1), "eval_success": success.mean(axis=1),
            "eval_distance": distance.mean(axis=1)}
