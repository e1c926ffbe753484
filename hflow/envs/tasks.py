"""Task specifications (HIRO's Maze, Push, Fall; single and multi) and goal spaces.

`goal_space(task, hi, lo)` is the one place that turns the `{model}_{hi}_{lo}` labels of the
paper into indices, ranges and targets (docs/tasks.md). Every run writes its result
into its config record.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass

from hflow import HflowError
from hflow.envs.maze import HEIGHT, LAYOUTS, Layout
from hflow.envs.robots import ROBOTS, Robot

VARIANTS = ("single", "multi")


@dataclass(frozen=True)
class MazeSpec:
    """One layout's target, in ant units (S = 8); point tasks scale it by S / 8."""

    layout: str
    eval_target: tuple[float, ...]  # the headline target; its length is the task's own hi
    target_low: tuple[float, ...]  # multi: training targets ~ U(target_low, target_high)
    target_high: tuple[float, ...]
    # Every target evaluated, each reported on its own (the headline among them).
    eval_targets: tuple[tuple[float, ...], ...] = ()
    # False where HIRO's code has no such task (it always sampled Ant Maze's targets).
    in_hiro: tuple[str, ...] = ("single", "multi")


MAZES: dict[str, MazeSpec] = {
    # HIRO's ant_maze.gin: eval at (16, 0), (16, 16), (0, 16); (0, 16), the U's end, is the
    # number papers report.
    "maze": MazeSpec("maze", (0, 16), (-4, -4), (20, 20),
                     eval_targets=((16, 0), (16, 16), (0, 16)), in_hiro=("multi",)),
    "push": MazeSpec("push", (0, 19), (-16, -4), (16, 20)),
    "fall": MazeSpec("fall", (0, 27, 4.5), (-4, -4, 0), (12, 28, 5)),
}
SUCCESS_DISTANCE = 5.0  # in ant units; scaled by S / 8 for the point


class TaskError(HflowError):
    pass


@dataclass(frozen=True)
class TaskSpec:
    name: str  # e.g. "AntPushSingle"
    robot: Robot
    maze: MazeSpec
    variant: str

    @property
    def layout(self) -> Layout:
        return Layout.parse(LAYOUTS[self.maze.layout])

    @property
    def scale(self) -> float:
        """Point tasks are the ant's maze shrunk by S_point / S_ant."""
        return self.robot.maze_scale / ROBOTS["ant"].maze_scale

    @property
    def ground_z(self) -> float:
        """Height of the ground the robot starts on (the top of Fall's platforms)."""
        return HEIGHT * self.robot.maze_scale if self.layout.elevated else 0.0

    @property
    def in_hiro(self) -> bool:
        """Whether HIRO's code has this task (its Ant Maze always samples training targets)."""
        return self.variant in self.maze.in_hiro

    @property
    def native_hi(self) -> int:
        return len(self.maze.eval_target)

    @property
    def success_distance(self) -> float:
        return SUCCESS_DISTANCE * self.scale

    @property
    def obs_dim(self) -> int:
        return self.robot.nq + self.robot.nv + 1

    def _scaled(self, values: tuple[float, ...]) -> tuple[float, ...]:
        # x, y scale with the maze; a z target is a height above the ground (Fall: platform
        # top at 4 for the ant) and scales the same way.
        return tuple(float(v) * self.scale for v in values)


def _task_name(robot: str, layout: str, variant: str) -> str:
    return f"{robot.capitalize()}{layout.capitalize()}{variant.capitalize()}"


# HIRO's kinematic point cannot push or drop a block: Push and Fall at its scale use the ball.
ROBOT_LAYOUTS: dict[str, tuple[str, ...]] = {
    "ant": ("maze", "push", "fall"),
    "point": ("maze",),
    "ball": ("push", "fall"),
}
TASKS: dict[str, TaskSpec] = {
    _task_name(r, m, v): TaskSpec(_task_name(r, m, v), ROBOTS[r], MAZES[m], v)
    for r, layouts in ROBOT_LAYOUTS.items()
    for m in layouts
    for v in VARIANTS
}


def get_task(name: str) -> TaskSpec:
    """Accepts 'AntPushSingle' or a gymnasium id 'hflow/AntPushSingle-v0'."""
    key = name.removeprefix("hflow/").removesuffix("-v0")
    if key not in TASKS:
        for layout in ("Push", "Fall"):
            if key.startswith(f"Point{layout}"):
                raise TaskError(f"unknown task {name!r}: HIRO's point is kinematic and cannot "
                                f"move blocks; the force-driven ball does Push and Fall at the "
                                f"point's scale: {key.replace('Point', 'Ball', 1)}")
        close = difflib.get_close_matches(key, TASKS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise TaskError(f"unknown task {name!r}{hint}; valid tasks: {', '.join(TASKS)}")
    return TASKS[key]


@dataclass(frozen=True)
class GoalSpace:
    task: str
    hi: int
    lo: int
    target_indices: tuple[int, ...]  # observation indices the target is compared with
    target_names: tuple[str, ...]
    target_low: tuple[float, ...]  # training target range (multi tasks)
    target_high: tuple[float, ...]
    eval_target: tuple[float, ...]  # the headline target (single tasks also train on it)
    eval_targets: tuple[tuple[float, ...], ...]  # every eval target, the headline included
    eval_target_names: tuple[str, ...]  # metric suffixes, e.g. '16_0' (task's own dims)
    subgoal_indices: tuple[int, ...]  # observation indices of the low-level tuple
    subgoal_names: tuple[str, ...]
    subgoal_bound: tuple[float, ...]

    def to_dict(self) -> dict:
        return asdict(self)


def target_name(values) -> str:
    """A metric suffix for a target: (16, 0) -> '16_0', (-4.5, 8) -> 'm4.5_8'."""
    return "_".join(f"{v:g}".replace("-", "m") for v in values)


def dims_range(task: TaskSpec) -> tuple[int, int]:
    """Allowed hi and lo: from (x, y) to the robot's whole tuple."""
    return (2, task.robot.nq)


def goal_space(task: str | TaskSpec, hi: int | None = None, lo: int | None = None,
               eval_target: tuple[float, ...] | None = None) -> GoalSpace:
    """Indices, ranges and targets of both levels for a (task, hi, lo) triple.

    hi: the size of the task target, i.e. the first `hi` elements of the low-level tuple
    (x, y, z, quaternion, joints). Dims beyond the task's own target are set to the robot's
    upright pose for evaluation and single tasks, and sampled in upright +- the low-level
    half-range for multi tasks. hi below the task's own size drops trailing dims (Fall with
    hi = 2 targets (x, y) only).
    lo: the subgoal size, the first `lo` elements of the low-level tuple.
    Defaults: the task's own target size and the robot's default subgoal size (the ant's full
    tuple, HIRO's "optimal"; the point's x, y, HIRO's hiro_xy).
    eval_target: replaces the task's eval targets by this one (hi values); single tasks also
    train on it. Without it, tasks with several eval targets (Maze: HIRO's three along the U)
    evaluate at each, and `eval_target` is the headline one.
    """
    spec = get_task(task) if isinstance(task, str) else task
    robot = spec.robot
    hi = spec.native_hi if hi is None else hi
    lo = robot.lo if lo is None else lo
    low, high = dims_range(spec)
    for key, value in (("hi", hi), ("lo", lo)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise TaskError(f"{key}={value!r} is out of range for {spec.name}: "
                            f"allowed {low}..{high}")

    native = spec.native_hi
    own_evals = [spec._scaled(t) for t in (spec.maze.eval_targets or (spec.maze.eval_target,))]
    own_eval = spec._scaled(spec.maze.eval_target)
    own_low, own_high = spec._scaled(spec.maze.target_low), spec._scaled(spec.maze.target_high)
    extra, low, high = [], [], []
    for k in range(hi):
        if k < native:
            low.append(own_low[k])
            high.append(own_high[k])
        else:
            upright = robot.upright[k - 2] + (spec.ground_z if robot.names[k] == "z" else 0.0)
            half = robot.subgoal_bound[k]
            extra.append(float(upright))
            low.append(float(upright - half))
            high.append(float(upright + half))
    targets = [tuple(float(v) for v in t[:hi]) + tuple(extra) for t in own_evals]
    fixed = tuple(own_eval[:hi]) + tuple(extra)
    if eval_target is not None:
        if len(eval_target) != hi:
            raise TaskError(f"eval_target {list(eval_target)} has {len(eval_target)} values; "
                            f"{spec.name} with hi={hi} needs {hi}")
        fixed = tuple(float(v) for v in eval_target)
        targets = [fixed]
    names = [target_name(t[:native]) for t in targets]
    return GoalSpace(
        task=spec.name,
        hi=hi,
        lo=lo,
        target_indices=tuple(range(hi)),
        target_names=robot.names[:hi],
        target_low=tuple(low),
        target_high=tuple(high),
        eval_target=tuple(float(v) for v in fixed),
        eval_targets=tuple(targets),
        eval_target_names=tuple(names),
        subgoal_indices=tuple(range(lo)),
        subgoal_names=robot.names[:lo],
        subgoal_bound=tuple(float(v) for v in robot.subgoal_bound[:lo]),
    )
