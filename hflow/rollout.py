"""Pictures of behaviour: evaluation episodes of a trained policy, drawn top-down on the maze.

`hflow rollout RUN_DIR/seed<N> -o FILE.png` loads the seed's `policy.pt`, runs deterministic
episodes at each of the task's eval targets (as the evaluation does), and draws for each the
robot's path, the subgoals the high level set (absolute positions s + g at each segment's
start, joined to where they were set), the start and the target. Works for every task
(Ant and Point).
"""

from __future__ import annotations

from pathlib import Path

import torch

from hflow import HflowError
from hflow.config import from_dict
from hflow.envs.tasks import get_task, goal_space
from hflow.evaluate import make_eval_envs, run_episodes
from hflow.io import atomic_path


def load_policy(seed_dir: str | Path):
    """(agent, cfg, member) from a seed directory's policy.pt (tensors and plain data only)."""
    from hflow.agents.hiro import HierarchicalAgent

    path = Path(seed_dir) / "policy.pt"
    if not path.is_file():
        raise HflowError(f"{path} does not exist: give a finished run's seed<N>/ directory")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    cfg = from_dict(saved["config"])
    task = get_task(cfg.task.name)
    goals = goal_space(task, cfg.task.hi, cfg.task.lo, cfg.task.eval_target)
    agent = HierarchicalAgent(cfg, task, goals, saved["seeds"])
    agent.hi.actor.load_state_dict(saved["nets"]["hi_actor"])
    agent.lo.actor.load_state_dict(saved["nets"]["lo_actor"])
    return agent.eval(), cfg, saved["member"], saved["seeds"]


def rollouts(seed_dir: str | Path, episodes: int = 3):
    """(cfg, runs): per eval target and episode, the path [T+1, 2], the subgoals
    [(from_xy, to_xy)] and the final distance, as the evaluation runs them."""
    agent, cfg, member, seeds = load_policy(seed_dir)
    goals = agent_goals(cfg)
    envs = make_eval_envs(cfg, seeds, goals, episodes=episodes)
    done = run_episodes(agent, envs, seeds, cfg, "cpu", episodes, trace=True)
    return cfg, [{"target": goals.eval_targets[n // episodes], "path": done["path"][member, n],
                  "subgoals": [(a, b) for a, b in done["subgoals"][member, n]],
                  "distance": float(done["distance"][member, n])}
                 for n in range(envs.shape[1])]


def agent_goals(cfg):
    return goal_space(get_task(cfg.task.name), cfg.task.hi, cfg.task.lo, cfg.task.eval_target)


def draw_rollouts(seed_dir: str | Path, out: str | Path, episodes: int = 3) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hflow.envs.render import draw_task

    cfg, runs = rollouts(seed_dir, episodes)
    targets = agent_goals(cfg).eval_targets
    fig, axes = plt.subplots(1, len(targets), figsize=(4.2 * len(targets), 4.8), squeeze=False)
    colors = plt.get_cmap("tab10")
    for ax, target in zip(axes[0], targets):
        draw_task(cfg.task.name, ax, target)
        for e, run in enumerate(r for r in runs if r["target"] == target):
            color = colors(e)
            ax.plot(run["path"][:, 0], run["path"][:, 1], color=color, lw=1.2,
                    label=f"episode {e}: final distance {run['distance']:.2f}")
            for start, goal in run["subgoals"]:
                ax.plot([start[0], goal[0]], [start[1], goal[1]], color=color, lw=0.5,
                        alpha=0.5)
                ax.plot(goal[0], goal[1], "x", color=color, ms=4, alpha=0.7)
        ax.set_title(f"{cfg.model} on {cfg.task.name}, target "
                     f"({', '.join(f'{v:g}' for v in target[:2])})\npaths (lines), subgoals "
                     f"(x, joined to where they were set)", fontsize=8)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.07), fontsize=7, frameon=False)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format=Path(out).suffix.lstrip(".") or "png")
    plt.close(fig)
    return Path(out)
