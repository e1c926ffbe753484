"""K x N environments stepped together, with [K, N, ...] arrays in and out.

The trainer uses N = 1 (one env per member), evaluation N = eval episodes. Stepping is a plain
loop: on the 2-core CI machine threads would not help, and a loop keeps runs deterministic.
"""

from __future__ import annotations

import numpy as np

from hflow.envs.maze_env import MazeEnv


def task_env(task_cfg, mode: str, eval_target=None) -> MazeEnv:
    """The env a run's `task` config section describes (train or eval mode); `eval_target`
    replaces its fixed target (evaluation at one of several targets)."""
    return MazeEnv(task_cfg.name, hi=task_cfg.hi, mode=mode, episode_steps=task_cfg.episode_steps,
                   block_shrink=task_cfg.block_shrink,
                   eval_target=task_cfg.eval_target if eval_target is None else eval_target)


class EnvBatch:
    def __init__(self, envs: list[list[MazeEnv]]):
        self.envs = envs
        self.shape = (len(envs), len(envs[0]))
        first = envs[0][0]
        self.obs_dim = first.observation_space.shape[0]
        self.hi = first.goals.hi

    def reset(self, seeds: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        obs = np.empty((*self.shape, self.obs_dim))
        target = np.empty((*self.shape, self.hi))
        for k, row in enumerate(self.envs):
            for n, env in enumerate(row):
                seed = None if seeds is None else int(seeds[k, n])
                obs[k, n], info = env.reset(seed=seed)
                target[k, n] = info["target"]
        return obs, target

    def step(self, actions: np.ndarray):
        """-> obs [K, N, o], reward [K, N], distance [K, N], success [K, N]."""
        obs = np.empty((*self.shape, self.obs_dim))
        reward = np.empty(self.shape)
        distance = np.empty(self.shape)
        for k, row in enumerate(self.envs):
            for n, env in enumerate(row):
                obs[k, n], reward[k, n], _, _, info = env.step(actions[k, n])
                distance[k, n] = info["distance"]
        return obs, reward, distance, distance < self.envs[0][0].task.success_distance

    def rng_states(self) -> list[list[dict]]:
        return [[env.np_random.bit_generator.state for env in row] for row in self.envs]

    def load_rng_states(self, states: list[list[dict]]) -> None:
        for row, row_states in zip(self.envs, states, strict=True):
            for env, state in zip(row, row_states, strict=True):
                env.np_random = np.random.Generator(np.random.PCG64())
                env.np_random.bit_generator.state = state
