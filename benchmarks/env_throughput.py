"""Env steps/s of AntPush through hflow's env next to raw `mujoco.mj_step` of the same model.

    python benchmarks/env_throughput.py [--steps 20000] [--task AntPushSingle]

Both loops use the same model, frame skip and precomputed random actions, so the difference is
the wrapper's own cost (observation, reward, info, episode bookkeeping). Target: <= 15%.

Measured on the 2-core CI machine: raw 3413 env steps/s, MazeEnv 3197, overhead 6.8%.
"""

from __future__ import annotations

import argparse
import time

import mujoco
import numpy as np

from hflow.envs import make


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--task", default="AntPushSingle")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    env = make(args.task)
    rng = np.random.default_rng(0)
    high = env.action_space.high
    actions = rng.uniform(-high, high, size=(args.steps, len(high)))
    model, data = env.model, env.data

    def raw() -> float:
        mujoco.mj_resetData(model, data)
        start = time.perf_counter()
        for a in actions:
            data.ctrl[:] = a
            mujoco.mj_step(model, data, nstep=env.frame_skip)
        return args.steps / (time.perf_counter() - start)

    def wrapped() -> float:
        env.reset(seed=0)
        start = time.perf_counter()
        for a in actions:
            _, _, _, truncated, _ = env.step(a)
            if truncated:
                env.reset()
        return args.steps / (time.perf_counter() - start)

    # Interleave and keep the best of each, so a busy moment on the machine hits both alike.
    raw_runs, env_runs = [], []
    for _ in range(args.repeats):
        raw_runs.append(raw())
        env_runs.append(wrapped())
    raw_sps, env_sps = max(raw_runs), max(env_runs)
    overhead = raw_sps / env_sps - 1
    print(f"task {args.task}, frame skip {env.frame_skip}, {args.steps} steps, "
          f"best of {args.repeats}")
    print(f"raw mujoco.mj_step : {raw_sps:8.0f} env steps/s")
    print(f"hflow MazeEnv.step : {env_sps:8.0f} env steps/s")
    print(f"wrapper overhead   : {100 * overhead:6.1f}%  (target <= 15%)")


if __name__ == "__main__":
    main()
