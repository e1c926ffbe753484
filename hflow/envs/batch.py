"""K x N environments stepped together, with [K, N, ...] arrays in and out.

The trainer uses N = 1 (one env per member), evaluation N = eval episodes. With `threads` > 1
the envs are dealt round-robin into that many chunks stepped by a thread pool: MuJoCo's
`mj_step` releases the GIL, so the physics of different envs runs in parallel. Every env only
touches its own state and its own slots of the output arrays, so results are identical for
any thread count.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from hflow.envs.maze_env import MazeEnv


def task_env(task_cfg, mode: str, eval_target=None) -> MazeEnv:
    """The env a run's `task` config section describes (train or eval mode); `eval_target`
    replaces its fixed target (evaluation at one of several targets)."""
    return MazeEnv(task_cfg.name, hi=task_cfg.hi, mode=mode, episode_steps=task_cfg.episode_steps,
                   block_shrink=task_cfg.block_shrink, manual_collision=task_cfg.manual_collision,
                   eval_target=task_cfg.eval_target if eval_target is None else eval_target)


class EnvBatch:
    def __init__(self, envs: list[list[MazeEnv]], threads: int = 1):
        self.envs = envs
        self.shape = (len(envs), len(envs[0]))
        first = envs[0][0]
        self.obs_dim = first.observation_space.shape[0]
        self.hi = first.goals.hi
        self.success_distance = first.task.success_distance
        cells = [(k, n) for k in range(self.shape[0]) for n in range(self.shape[1])]
        threads = max(1, min(threads, len(cells)))
        self.chunks = [cells[i::threads] for i in range(threads)]
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="env") if threads > 1 \
            else None

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

        def step_chunk(cells):
            for k, n in cells:
                obs[k, n], reward[k, n], _, _, info = self.envs[k][n].step(actions[k, n])
                distance[k, n] = info["distance"]

        if self.pool is None:
            step_chunk(self.chunks[0])
        else:
            for done in [self.pool.submit(step_chunk, c) for c in self.chunks]:
                done.result()  # re-raises an env's error here
        return obs, reward, distance, distance < self.success_distance

    def rng_states(self) -> list[list[dict]]:
        return [[env.np_random.bit_generator.state for env in row] for row in self.envs]

    def load_rng_states(self, states: list[list[dict]]) -> None:
        for row, row_states in zip(self.envs, states, strict=True):
            for env, state in zip(row, row_states, strict=True):
                env.np_random = np.random.Generator(np.random.PCG64())
                env.np_random.bit_generator.state = state
