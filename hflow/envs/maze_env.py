"""HIRO's maze tasks as gymnasium environments on the `mujoco` bindings.

Observation (ant: 30 dims): the robot's qpos (ant: x, y, z, quaternion, 8 joints), its qvel,
and 0.001 * t. Blocks are not observed. Episodes last `episode_steps` (500) steps and end by
truncation only: no healthy-z rule (on Fall's platform the ant's torso sits near z = 4.6).
Reward: -||s[target_indices] - target||. The target is drawn per episode (multi, train mode)
or fixed (single, or eval mode) and reported in `info["target"]`; the high level reads it
from there.
"""

from __future__ import annotations

import gymnasium as gym
import mujoco
import numpy as np

from hflow.envs.maze import WALL, Layout, build_mjcf
from hflow.envs.tasks import GoalSpace, TaskError, TaskSpec, get_task, goal_space

MODES = ("train", "eval")


class MazeEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, task: str | TaskSpec, hi: int | None = None, mode: str = "train",
                 episode_steps: int = 500, block_shrink: float = 0.99,
                 eval_target: tuple[float, ...] | None = None, manual_collision: bool = True):
        self.task = get_task(task) if isinstance(task, str) else task
        if mode not in MODES:
            raise TaskError(f"mode={mode!r} is not valid; allowed: {', '.join(MODES)}")
        if episode_steps < 1:
            raise TaskError(f"episode_steps={episode_steps!r} must be >= 1")
        self.goals: GoalSpace = goal_space(self.task, hi=hi, eval_target=eval_target)
        self.mode = mode
        self.episode_steps = episode_steps
        robot = self.task.robot
        self.model = mujoco.MjModel.from_xml_string(
            build_mjcf(self.task.layout, robot, block_shrink=block_shrink))
        self.data = mujoco.MjData(self.model)
        self.frame_skip = robot.frame_skip
        self._nq, self._nv = robot.nq, robot.nv
        self._init_qpos = self.model.qpos0.copy()
        self._target_idx = np.array(self.goals.target_indices)
        self._fixed_target = np.array(self.goals.eval_target, dtype=np.float64)
        self._target_low = np.array(self.goals.target_low, dtype=np.float64)
        self._target_high = np.array(self.goals.target_high, dtype=np.float64)
        self._multi = self.task.variant == "multi" and mode == "train"

        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self.task.obs_dim,), np.float64)
        high = np.array(robot.action_bound, dtype=np.float32)
        self.action_space = gym.spaces.Box(-high, high, dtype=np.float32)
        self._action_bound = high.astype(np.float64)
        self._kinematic = robot.drive == "kinematic"
        # HIRO's maze_env.py `manual_collision`: a step whose end point lies in a wall cell is
        # undone (x, y only). Contacts alone cannot stop a point teleported 0.2 per step.
        self._walls = (_wall_boxes(self.task.layout, robot.maze_scale)
                       if self._kinematic and manual_collision else None)
        self.target = self._fixed_target.copy()
        self.t = 0

    # -- gymnasium API ----------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        rng = self.np_random
        mujoco.mj_resetData(self.model, self.data)
        nq, nv = self._nq, self._nv
        qpos = self._init_qpos.copy()
        qpos[:nq] += rng.uniform(-0.1, 0.1, size=nq)
        qvel = np.zeros(self.model.nv)
        qvel[:nv] = 0.1 * rng.standard_normal(nv)
        self.data.qpos[:] = qpos  # blocks go back to their start, at rest
        self.data.qvel[:] = qvel
        mujoco.mj_forward(self.model, self.data)
        if options and "target" in options:
            self.target = np.asarray(options["target"], dtype=np.float64).reshape(-1)
            if self.target.shape != self._fixed_target.shape:
                raise TaskError(f"options['target'] has {self.target.size} dims; this env's "
                                f"target has hi={self.goals.hi}")
        elif self._multi:
            self.target = rng.uniform(self._target_low, self._target_high)
        else:
            self.target = self._fixed_target.copy()
        self.t = 0
        obs = self._obs()
        return obs, self._info(obs)

    def step(self, action):
        if self._kinematic:
            before = self.data.qpos[:2].copy()
            self._move_point(action)
            mujoco.mj_step(self.model, self.data, nstep=self.frame_skip)
            if self._walls is not None and _in_box(self.data.qpos[:2], self._walls):
                self.data.qpos[:2] = before
                mujoco.mj_forward(self.model, self.data)
        else:
            self.data.ctrl[:] = action
            mujoco.mj_step(self.model, self.data, nstep=self.frame_skip)
        self.t += 1
        obs = self._obs()
        info = self._info(obs)
        return obs, -info["distance"], False, self.t >= self.episode_steps, info

    # -- helpers ----------------------------------------------------------------------------
    def _move_point(self, action) -> None:
        """HIRO's point.py: turn by action[1], then move 0.2 * action[0] along the new heading
        (x, y clipped to +-100) by setting the state; velocities are left as they are."""
        forward, turn = np.clip(np.asarray(action, dtype=np.float64),
                                -self._action_bound, self._action_bound)
        qpos = self.data.qpos
        qpos[2] += turn
        step = 0.2 * forward
        qpos[0] = np.clip(qpos[0] + np.cos(qpos[2]) * step, -100, 100)
        qpos[1] = np.clip(qpos[1] + np.sin(qpos[2]) * step, -100, 100)
        mujoco.mj_forward(self.model, self.data)  # what set_state does before the step

    def _obs(self) -> np.ndarray:
        obs = np.empty(self.task.obs_dim)
        nq, nv = self._nq, self._nv
        obs[:nq] = self.data.qpos[:nq]
        obs[nq:nq + nv] = self.data.qvel[:nv]
        obs[-1] = 0.001 * self.t
        return obs

    def _info(self, obs: np.ndarray) -> dict:
        distance = float(np.linalg.norm(obs[self._target_idx] - self.target))
        return {"target": self.target.copy(), "distance": distance,
                "is_success": distance < self.task.success_distance}

    def block_position(self, name: str | None = None) -> np.ndarray:
        """World position of a movable block (the first one by default); for checks and plots."""
        blocks = self.task.layout.blocks
        if not blocks:
            raise TaskError(f"{self.task.name} has no movable block")
        return self.data.body(name or blocks[0].name).xpos.copy()


def _wall_boxes(layout: Layout, scale: float) -> np.ndarray:
    """[n, 4] (xmin, xmax, ymin, ymax) of the wall cells, faces included (HIRO's test)."""
    boxes = [(x - scale / 2, x + scale / 2, y - scale / 2, y + scale / 2)
             for x, y in (layout.center(i, j, scale) for i, j in layout.cells(WALL))]
    return np.array(boxes, dtype=np.float64).reshape(-1, 4)


def _in_box(xy: np.ndarray, boxes: np.ndarray) -> bool:
    x, y = xy
    return bool(np.any((boxes[:, 0] <= x) & (x <= boxes[:, 1])
                       & (boxes[:, 2] <= y) & (y <= boxes[:, 3])))
