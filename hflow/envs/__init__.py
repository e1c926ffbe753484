"""HIRO's maze tasks on MuJoCo; importing this module registers `hflow/<Task>-v0` ids.

Task specifications and goal spaces (`hflow.envs.tasks`) import neither MuJoCo nor torch, so
a workflow can check a grid on a machine without the training stack; the MuJoCo env class
is imported on first use.
"""

import gymnasium as gym

from hflow.envs.tasks import TASKS, GoalSpace, TaskError, TaskSpec, get_task, goal_space

__all__ = ["MazeEnv", "TASKS", "GoalSpace", "TaskError", "TaskSpec", "get_task", "goal_space",
           "env_id", "make"]


def env_id(task: str) -> str:
    return f"hflow/{get_task(task).name}-v0"


for _name in TASKS:
    if f"hflow/{_name}-v0" not in gym.registry:
        gym.register(id=f"hflow/{_name}-v0", entry_point="hflow.envs.maze_env:MazeEnv",
                     kwargs={"task": _name}, disable_env_checker=True)


def __getattr__(name: str):
    if name == "MazeEnv":
        from hflow.envs.maze_env import MazeEnv

        return MazeEnv
    raise AttributeError(f"module 'hflow.envs' has no attribute {name!r}")


def make(task: str, **kwargs):
    """The bare environment (no gymnasium wrappers: the trainer steps it millions of times)."""
    from hflow.envs.maze_env import MazeEnv

    return MazeEnv(task, **kwargs)
