"""HIRO's maze tasks on MuJoCo; importing this module registers `hflow/<Task>-v0` ids."""

import gymnasium as gym

from hflow.envs.maze_env import MazeEnv
from hflow.envs.tasks import TASKS, GoalSpace, TaskError, TaskSpec, get_task, goal_space

__all__ = ["MazeEnv", "TASKS", "GoalSpace", "TaskError", "TaskSpec", "get_task", "goal_space",
           "env_id", "make"]


def env_id(task: str) -> str:
    return f"hflow/{get_task(task).name}-v0"


for _name in TASKS:
    if f"hflow/{_name}-v0" not in gym.registry:
        gym.register(id=f"hflow/{_name}-v0", entry_point=MazeEnv, kwargs={"task": _name},
                     disable_env_checker=True)


def make(task: str, **kwargs) -> MazeEnv:
    """The bare environment (no gymnasium wrappers: the trainer steps it millions of times)."""
    return MazeEnv(task, **kwargs)
