"""Env steps/s of AntPush through hflow's env next to raw `mujoco.mj_step` of the same model,
and hflow's batched env step (EnvBatch, K envs) next to a bare `mujoco.rollout` of the same
models from the same states (MuJoCo's own thread pool, no Python per env).

    python benchmarks/env_throughput.py [--steps 20000] [--task AntPushSingle]
    python benchmarks/env_throughput.py --members 1 16 64 [--threads 2] [--batch-steps 200]

Why hflow does not step through `mujoco.rollout` (mujoco 3.14): one rollout call per env step
starts each call without the constraint solver's warm start of the previous step (rollout
takes an initial warm start but returns none), so chained calls drift from `mj_step`'s
trajectory (AntPush: identical after one step, 2e-14 apart after 50), while hflow's
trajectories are bit-identical to stepping each env with `mj_step`. The comparison here
measures what that would gain.

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


def batched(task: str, members: int, threads: int, steps: int, repeats: int) -> None:
    """ms per batched env step: hflow's EnvBatch (thread pool over envs, observations and
    rewards per env in Python) vs `mujoco.rollout` (the same models and start states, one
    call per step, MuJoCo's thread pool)."""
    from mujoco import rollout

    from hflow.envs.batch import EnvBatch

    envs = EnvBatch([[make(task)] for _ in range(members)], threads)
    envs.reset(np.arange(members)[:, None])
    first = envs.envs[0][0]
    nu, skip = first.action_space.shape[0], first.frame_skip
    high = first.action_space.high
    rng = np.random.default_rng(0)
    actions = rng.uniform(-high, high, size=(steps, members, 1, nu))
    models = [row[0].model for row in envs.envs]
    datas = [mujoco.MjData(models[0]) for _ in range(threads)]
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    size = mujoco.mj_stateSize(models[0], spec)
    start_state = np.empty((members, size))
    for k, row in enumerate(envs.envs):
        mujoco.mj_getState(row[0].model, row[0].data, start_state[k], spec)

    def hflow_step() -> float:
        begin = time.perf_counter()
        for a in actions:
            envs.step(a)
        return (time.perf_counter() - begin) / steps * 1e3

    def bare_rollout() -> float:
        state = start_state.copy()
        with rollout.Rollout(nthread=threads) as pool:
            begin = time.perf_counter()
            for a in actions:
                control = np.repeat(a[:, 0, None, :], skip, axis=1)
                out, _ = pool.rollout(models, datas, state, control, nstep=skip)
                state = out[:, -1]
            return (time.perf_counter() - begin) / steps * 1e3

    ours, bare = [], []
    for _ in range(repeats):  # interleaved, best of each
        ours.append(hflow_step())
        bare.append(bare_rollout())
    print(f"K = {members:3d}, {threads} threads: hflow {min(ours):7.3f} ms/step, "
          f"mujoco.rollout {min(bare):7.3f} ms/step, ratio {min(ours) / min(bare):5.2f}x "
          f"({members / min(bare) * 1e3:,.0f} env steps/s bare)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--task", default="AntPushSingle")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--members", type=int, nargs="+",
                        help="compare batched stepping of K envs with mujoco.rollout")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-steps", type=int, default=200)
    args = parser.parse_args()
    if args.members:
        for k in args.members:
            batched(args.task, k, args.threads, args.batch_steps, args.repeats)
        return

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
