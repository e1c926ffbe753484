"""Physics checks that our tasks behave as HIRO's: used by the tests and `hflow envs check`.

Every check returns a `Check` with the measured numbers, so a failure says how far off it is.
External pushes are capped at the ant's largest horizontal ground force, friction 1 times its
weight (about 8.9 N): whatever torque its motors make, its feet cannot push harder than that.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import mujoco
import numpy as np

from hflow.envs.maze import HEIGHT, WALL
from hflow.envs.maze_env import MazeEnv
from hflow.envs.tasks import goal_space


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


def ant_push_force(env: MazeEnv) -> float:
    """The ant's friction-limited horizontal push: mu * m * g with mu = 1."""
    torso = env.model.body("torso").id
    return float(env.model.body_subtreemass[torso] * -env.model.opt.gravity[2])


def _place_robot(env: MazeEnv, x: float, y: float, z: float | None = None) -> None:
    env.data.qpos[0], env.data.qpos[1] = x, y
    if z is not None:
        env.data.qpos[2] = z
    mujoco.mj_forward(env.model, env.data)


def _push(env: MazeEnv, body: str, force, steps: int, action=None) -> list[np.ndarray]:
    """Steps with a constant world-frame force on `body`; returns the body's positions."""
    bid = env.model.body(body).id
    env.data.xfrc_applied[bid, :3] = force
    action = np.zeros(env.action_space.shape) if action is None else action
    path = []
    for _ in range(steps):
        env.step(action)
        path.append(env.data.xpos[bid].copy())
    env.data.xfrc_applied[bid, :3] = 0
    return path


def check_push_block_legs() -> Check:
    """The ant's own legs, flailing next to the Push block, move it (3 seeds, 200 steps)."""
    moved = []
    for seed in range(3):
        env = MazeEnv("AntPushSingle")
        env.reset(seed=seed)
        _place_robot(env, 0.0, 3.1)  # torso 0.9 below the block's face: the legs reach it
        start = env.block_position()
        rng = np.random.default_rng(seed)
        for _ in range(200):
            env.step(rng.uniform(-30, 30, size=8))
        moved.append(float(np.linalg.norm(env.block_position() - start)))
    return Check("push: ant legs move the block", min(moved) > 0.1,
                 "block displacement per seed: " + ", ".join(f"{m:.2f}" for m in moved)
                 + " (need > 0.1 each)")


def check_push_block_opens_path() -> Check:
    """Half the ant's largest ground force pushes the block from (0,8) to (8,8) in 10 s."""
    env = MazeEnv("AntPushSingle")
    env.reset(seed=0)
    force = 0.5 * ant_push_force(env)
    path = _push(env, env.task.layout.blocks[0].name, (force, 0, 0), steps=100)
    x = path[-1][0]
    return Check("push: capped force opens the path", x > 7.5,
                 f"block x after 10 s at {force:.2f} N: {x:.2f} (need > 7.5; start 0)")


def _fall_block_in_chasm(env: MazeEnv) -> np.ndarray:
    block = env.task.layout.blocks[0].name
    path = _push(env, block, (0, 0.5 * ant_push_force(env), 0), steps=100)
    for _ in range(20):  # let it settle in the chasm
        env.step(np.zeros(env.action_space.shape))
    return path[-1]


def check_fall_block_fills_chasm() -> Check:
    env = MazeEnv("AntFallSingle")
    env.reset(seed=0)
    _place_robot(env, 0.0, -1.0)  # out of the block's way
    _fall_block_in_chasm(env)
    pos = env.block_position()
    top = pos[2] + HEIGHT * env.task.robot.maze_scale / 2
    platform = env.task.ground_z
    return Check("fall: block drops into the chasm level with the platform",
                 abs(top - platform) <= 0.1 and pos[1] > 15.5,
                 f"block at y={pos[1]:.2f} (chasm row y=16), top z={top:.3f}, platform "
                 f"z={platform:.1f} (need |diff| <= 0.1)")


def _drive_across(env: MazeEnv) -> tuple[float, float]:
    """Pushes the ant from (8, 8) towards (8, 24); returns (final y, lowest torso z)."""
    _place_robot(env, 8.0, 8.0, env.task.ground_z + 0.75)
    for _ in range(10):
        env.step(np.zeros(8))
    path = _push(env, "torso", (0, ant_push_force(env), 0), steps=150)
    return float(path[-1][1]), float(min(p[2] for p in path))


def check_fall_bridge_carries_ant() -> Check:
    """With the block in the chasm the ant crosses; without it, it falls (control)."""
    bridged = MazeEnv("AntFallSingle")
    bridged.reset(seed=0)
    _place_robot(bridged, 0.0, -1.0)
    _fall_block_in_chasm(bridged)
    y, z_min = _drive_across(bridged)
    control = MazeEnv("AntFallSingle")
    control.reset(seed=0)
    bid = control.model.body(control.task.layout.blocks[0].name).id
    control.model.body_pos[bid][0] = 100.0  # remove the block: nothing to walk on
    y_c, z_c = _drive_across(control)
    ok = y > 21.0 and z_min > 3.8 and z_c < 2.0
    return Check("fall: the block carries the ant across the chasm", ok,
                 f"with block: reached y={y:.1f}, lowest torso z={z_min:.2f} (need y > 21, "
                 f"z > 3.8); without block: lowest z={z_c:.2f} (need < 2)")


def check_platform_supports_ant() -> Check:
    env = MazeEnv("AntFallSingle")
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    zs = [env.step(rng.uniform(-30, 30, size=8))[0][2] for _ in range(200)]
    return Check("fall: the ant does not sink through the platform", min(zs) > 4.2,
                 f"lowest torso z over 200 random steps: {min(zs):.2f} (platform top 4.0, "
                 f"need > 4.2)")


def check_walls_stop_robot() -> Check:
    """The ant pushed at twice its own ground force, and HIRO's point driven at full speed,
    towards the wall at y = -S for 100 steps do not pass its face."""
    details, ok = [], True
    env = MazeEnv("AntMazeSingle")
    env.reset(seed=0)
    force = 2 * ant_push_force(env)
    runs = [("AntMazeSingle", env, [p[1] for p in _push(env, "torso", (0, -force, 0), 100)])]
    env = MazeEnv("PointMazeSingle")
    env.reset(seed=0)
    env.data.qpos[2] = -np.pi / 2  # heading -y
    runs.append(("PointMazeSingle", env, [env.step(np.array([1.0, 0.0]))[0][1]
                                          for _ in range(100)]))
    for task, env, ys in runs:
        S = env.task.robot.maze_scale
        # the point's body origin is its centre; its sphere (radius 0.5) meets the face first
        y = float(min(ys))
        ok &= y > -S / 2
        details.append(f"{task}: lowest y {y:.2f} (wall face at {-S / 2:.1f})")
    return Check("walls stop the robot", ok, "; ".join(details))


def check_point_is_hiros() -> Check:
    """HIRO's point.py in free space: a step turns by action[1], then moves 0.2 * action[0]
    along the new heading; the observation is qpos[:3] + qvel[:3] + 0.001 t."""
    env = MazeEnv("PointMazeSingle")
    env.reset(seed=0)
    errors = []
    for action in ([1.0, 0.0], [0.5, 0.25], [-1.0, -0.1], [1.0, 0.25]):
        env.data.qvel[:] = 0  # at rest, the physics step adds nothing in free space
        before = env.data.qpos[:3].copy()
        obs = env.step(np.array(action))[0]
        heading = before[2] + action[1]
        want = np.append(before[:2] + 0.2 * action[0] * np.array([np.cos(heading),
                                                                   np.sin(heading)]), heading)
        errors.append(float(np.abs(obs[:3] - want).max()))
    bounds = tuple(env.action_space.high.tolist())
    ok = max(errors) < 1e-9 and env.observation_space.shape == (7,) and bounds == (1.0, 0.25)
    return Check("point: HIRO's kinematic step, obs and bounds", ok,
                 f"largest step error {max(errors):.2g}; obs "
                 f"{env.observation_space.shape[0]} dims; action bounds {bounds}")


def _inside_wall(env: MazeEnv, x: float, y: float, depth: float) -> bool:
    layout, S = env.task.layout, env.task.robot.maze_scale
    for i, j in layout.cells(WALL):
        cx, cy = layout.center(i, j, S)
        if abs(x - cx) < S / 2 - depth and abs(y - cy) < S / 2 - depth:
            return True
    return False


def check_robot_stays_inside(steps: int = 500) -> Check:
    bad = []
    for task in ("AntMazeSingle", "AntPushSingle", "AntFallSingle",
                 "PointMazeSingle", "BallPushSingle", "BallFallSingle"):
        env = MazeEnv(task)
        env.reset(seed=1)
        rng = np.random.default_rng(1)
        high = env.action_space.high
        for _ in range(steps):
            obs = env.step(rng.uniform(-high, high, size=env.action_space.shape))[0]
            if _inside_wall(env, obs[0], obs[1], depth=0.1):
                bad.append(f"{task} at ({obs[0]:.1f}, {obs[1]:.1f})")
                break
    return Check("a robot started in the free cells stays inside the maze", not bad,
                 "inside a wall: " + ", ".join(bad) if bad else f"{steps} random steps on 6 tasks")


def check_determinism() -> Check:
    diffs = []
    for task in ("AntPushMulti", "PointMazeMulti", "BallFallMulti"):
        runs = []
        for _ in range(2):
            env = MazeEnv(task)
            obs, info = env.reset(seed=7)
            rng = np.random.default_rng(7)
            traj = [obs, info["target"]]
            high = env.action_space.high
            for _ in range(100):
                traj.append(env.step(high * rng.uniform(-1, 1, high.shape))[0])
            runs.append(np.concatenate(traj))
        diffs.append(float(np.abs(runs[0] - runs[1]).max()))
    return Check("same seed, same trajectory", max(diffs) == 0.0,
                 f"largest difference between two runs: {max(diffs)}")


def check_goal_spaces() -> Check:
    """The goal spaces of docs/tasks.md for (push, 2, 15), (fall, 3, 15), (push, 8, 15),
    (fall, 8, 8)."""
    r15 = (10, 10, 0.5, 1, 1, 1, 1, 0.5, 0.3, 0.5, 0.3, 0.5, 0.3, 0.5, 0.3)
    problems = []

    def expect(label, got, want):
        same = len(got) == len(want) and all(
            g == w or (isinstance(g, float) and abs(g - w) < 1e-9) for g, w in zip(got, want))
        if not same:
            problems.append(f"{label}: {got} != {want}")

    g = goal_space("AntPushSingle", 2, 15)
    expect("push_2_15 target", g.eval_target, (0, 19))
    expect("push_2_15 range", g.target_low + g.target_high, (-16, -4, 16, 20))
    expect("push_2_15 subgoal range", g.subgoal_bound, r15)
    g = goal_space("AntFallMulti", 3, 15)
    expect("fall_3_15 target", g.eval_target, (0, 27, 4.5))
    expect("fall_3_15 range", g.target_low + g.target_high, (-4, -4, 0, 12, 28, 5))
    g = goal_space("AntPushMulti", 8, 15)
    expect("push_8_15 indices", g.target_indices, tuple(range(8)))
    expect("push_8_15 names", g.target_names, ("x", "y", "z", "qw", "qx", "qy", "qz", "hip_1"))
    expect("push_8_15 target", g.eval_target, (0, 19, 0.62, 1, 0, 0, 0, 0))
    g = goal_space("AntFallMulti", 8, 8)
    expect("fall_8_8 subgoal", g.subgoal_indices, tuple(range(8)))
    expect("fall_8_8 subgoal range", g.subgoal_bound, r15[:8])
    expect("fall_8_8 target", g.eval_target, (0, 27, 4.5, 1, 0, 0, 0, 0))
    expect("fall_8_8 range low", g.target_low, (-4, -4, 0, 0, -1, -1, -1, -0.5))
    return Check("goal spaces match docs/tasks.md", not problems,
                 "; ".join(problems) or "push_2_15, fall_3_15, push_8_15, fall_8_8")


def _follow(env: MazeEnv, waypoints, steps_each: int = 60) -> np.ndarray:
    """Drives the ball through waypoints with a saturated P-controller; returns the last obs."""
    obs = None
    for wx, wy in waypoints:
        for _ in range(steps_each):
            x, y = env.data.qpos[0], env.data.qpos[1]
            obs = env.step(np.clip(2.0 * np.array([wx - x, wy - y]), -1, 1))[0]
    return obs


def check_ball_tasks_solvable() -> Check:
    """A scripted ball solves Push (block aside) and Fall (block into the chasm, then across)."""
    routes = {
        "BallPushSingle": [(-4, 0), (-4, 4), (1.6, 4), (0, 4.5), (0, 9.5)],
        # stop short of the limit: pushed past it the block rests on the far edge
        "BallFallSingle": [(4, 0), (4, 5.5), (4, 12), (0, 13.5)],
    }
    details, ok = [], True
    for task, route in routes.items():
        env = MazeEnv(task)
        env.reset(seed=0)
        obs = _follow(env, route)
        info = env._info(obs)
        ok &= info["is_success"]
        details.append(f"{task}: final distance {info['distance']:.2f} "
                       f"(success < {env.task.success_distance:g})")
    return Check("ball: scripted routes solve Push and Fall", ok, "; ".join(details))


CHECKS: tuple[Callable[[], Check], ...] = (
    check_push_block_legs,
    check_push_block_opens_path,
    check_fall_block_fills_chasm,
    check_fall_bridge_carries_ant,
    check_platform_supports_ant,
    check_walls_stop_robot,
    check_point_is_hiros,
    check_robot_stays_inside,
    check_ball_tasks_solvable,
    check_determinism,
    check_goal_spaces,
)

