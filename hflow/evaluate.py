"""Deterministic evaluation at the task's eval targets (HIRO's eval: no exploration noise).

All eval episodes of all members run together: K x (targets x E) envs, one batched forward
pass per level and step. Episode e of the member with seed s always starts from the same
initial state (seeded by (s, e)), at every target, so successive points of a curve differ by
the policy only.

`eval_reward` is the paper's "average reward": the mean over episodes of the undiscounted sum
of extrinsic rewards, which HIRO's code logs as `average_meta_reward` (its `average_reward` is
the low level's intrinsic sum). Tasks with several targets (Maze: (16, 0), (16, 16), (0, 16))
report each as `eval_reward_16_0`, ...; the unsuffixed columns are the headline target's.
"""

from __future__ import annotations

import numpy as np
import torch

from hflow.envs import GoalSpace
from hflow.envs.batch import EnvBatch, task_env
from hflow.seeding import stream_seed

EVAL_METRICS = ("eval_reward", "eval_success", "eval_distance")


def make_eval_envs(cfg, seeds: list[int], goals: GoalSpace, threads: int = 1,
                   episodes: int | None = None) -> EnvBatch:
    """[K, targets x episodes] envs, grouped by target (episodes: train.eval_episodes)."""
    episodes = cfg.train.eval_episodes if episodes is None else episodes
    return EnvBatch([[task_env(cfg.task, "eval", target) for target in goals.eval_targets
                      for _ in range(episodes)] for _ in seeds], threads)


def metric_names(goals: GoalSpace) -> list[str]:
    """The eval columns of metrics.csv for this goal space."""
    names = list(EVAL_METRICS)
    if len(goals.eval_targets) > 1:
        names += [f"{m}_{t}" for t in goals.eval_target_names for m in EVAL_METRICS]
    return names


@torch.no_grad()
def run_episodes(agent, envs: EnvBatch, seeds: list[int], cfg, device, episodes: int,
                 trace: bool = False) -> dict[str, np.ndarray]:
    """Deterministic episodes of all K x N envs (N = targets x `episodes`): returns [K, N],
    final distance and success [K, N]; with `trace`, also the x, y path [K, N, T+1, 2] and the
    subgoals set ([K, N, T/c, 2]: from, to) for pictures (`hflow rollout`)."""
    K, N = envs.shape
    episode_seeds = np.array([[stream_seed(s, f"eval/{n % episodes}") % 2**32
                               for n in range(N)] for s in seeds])
    obs, target = envs.reset(episode_seeds)

    def to_device(x):
        return torch.as_tensor(x, dtype=torch.float32, device=device)

    state, target_t = to_device(obs), to_device(target)
    returns = np.zeros((K, N))
    paths, subgoals = [obs[..., :2]], []
    goal = None
    for t in range(cfg.task.episode_steps):
        if t % cfg.hierarchy.c == 0:
            goal = agent.act_high(state, target_t)
            if trace:
                here = obs[..., :2]
                subgoals.append(np.stack([here, here + goal[..., :2].cpu().numpy()], axis=-2))
        action, _ = agent.act_low(state, goal)
        obs, reward, distance, success = envs.step(action.cpu().numpy())
        next_state = to_device(obs)
        goal = agent.goal_transition(state, goal, next_state)
        state = next_state
        returns += reward
        if trace:
            paths.append(obs[..., :2])
    out = {"returns": returns, "distance": distance, "success": success}
    if trace:
        out["path"] = np.stack(paths, axis=2)
        out["subgoals"] = np.stack(subgoals, axis=2)
    return out


def evaluate(agent, envs: EnvBatch, seeds: list[int], cfg, device,
             goals: GoalSpace) -> dict[str, np.ndarray]:
    """Per member [K], the columns of `metric_names(goals)`."""
    E = cfg.train.eval_episodes
    done = run_episodes(agent, envs, seeds, cfg, device, E)
    returns, distance, success = done["returns"], done["distance"], done["success"]
    per_target = {}
    for j, name in enumerate(goals.eval_target_names):
        cols = slice(j * E, (j + 1) * E)
        per_target[name] = {"eval_reward": returns[:, cols].mean(axis=1),
                            "eval_success": success[:, cols].mean(axis=1),
                            "eval_distance": distance[:, cols].mean(axis=1)}
    headline = goals.eval_target_names[goals.eval_targets.index(goals.eval_target)]
    out = dict(per_target[headline])
    if len(per_target) > 1:
        out.update({f"{m}_{t}": v for t, values in per_target.items() for m, v in values.items()})
    return out
