"""Pictures of behaviour: evaluation episodes of a trained policy, drawn top-down on the maze.

`hflow rollout RUN_DIR/seed<N> -o FILE.png` loads the seed's `policy.pt`, runs deterministic
episodes at each of the task's eval targets (as the evaluation does), and draws for each the
robot's path, the subgoals the high level set (absolute positions s + g at each segment's
start, joined to where they were set), the start and the target. Works for every task
(Ant, Point, Ball). It also prints, per target, what the two levels did (`subgoal_stats`):
how far the subgoals reach, how often they sit at the subgoal bound, and how close the low
level got to each subgoal by the end of its segment.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hflow import HflowError
from hflow.checkpoint import POLICY_FORMAT, load_policy_file
from hflow.config import RESUMABLE_CHANGES, flatten
from hflow.envs.tasks import get_task, goal_space
from hflow.evaluate import make_eval_envs, run_episodes
from hflow.io import atomic_path
from hflow.layout import POLICY, RECORD
from hflow.resolve import from_dict


def load_policy(seed_dir: str | Path):
    """(agent, cfg, member, seeds) from a seed directory's policy.pt (tensors and plain data
    only): a one-member agent for the seed, member 0."""
    from hflow.agents.hiro import HierarchicalAgent

    path = Path(seed_dir) / POLICY
    if not path.is_file():
        raise HflowError(f"{path} does not exist: give a finished run's seed<N>/ directory")
    saved = load_policy_file(path)
    version = saved.get("format", 1)
    if version not in (2, POLICY_FORMAT):  # format 1: the group's nets, levels named hi/lo
        raise HflowError(f"{path} has policy format {version!r}; this hflow reads formats 2 "
                         f"and {POLICY_FORMAT} (format 1 held the whole seed group's "
                         f"networks; draw it with the hflow recorded in the run's "
                         f"config.json)")
    _check_record(path, saved)
    cfg, seeds, member, nets = from_dict(saved["config"]), [saved["seed"]], 0, saved["nets"]
    task = get_task(cfg.task.name)
    goals = goal_space(task, cfg.task.hi, cfg.task.lo, cfg.task.eval_target)
    agent = HierarchicalAgent(cfg, task, goals, seeds)
    agent.high.actor.load_state_dict(nets["high_actor"])
    agent.low.actor.load_state_dict(nets["low_actor"])
    return agent.eval(), cfg, member, seeds


def _check_record(path: Path, saved: dict) -> None:
    """A policy.pt and the config.json beside it describe one run: a policy moved into another
    run's directory is named, not drawn as that run's."""
    record_path = path.with_name(RECORD)
    if not record_path.is_file():
        return
    try:
        record = json.loads(record_path.read_text())
        seed, config = record["seed"], record["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # the policy carries its own config; the record is only a cross-check
    if seed != saved["seed"]:
        raise HflowError(f"{path} holds seed {saved['seed']}'s policy but {record_path} "
                         f"records seed {seed}: a policy.pt from another directory")
    mine, theirs = flatten(saved["config"]), flatten(config)
    differ = sorted(k for k in set(mine) | set(theirs)
                    if k not in RESUMABLE_CHANGES and mine.get(k) != theirs.get(k))
    if differ:
        raise HflowError(f"{path} was trained with another configuration than {record_path} "
                         f"records (differs in " + ", ".join(
                             f"{k}: {theirs.get(k)!r} vs {mine.get(k)!r}" for k in differ[:4])
                         + "): a policy.pt from another run")


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


def subgoal_stats(cfg, runs) -> list[dict]:
    """Per eval target: success, final distance, the subgoals' x-y reach |g_xy|, the share of
    subgoals with x or y at the bound, and the low level's miss: the x-y distance between a
    subgoal's position and where the robot was c steps later (0: it got there)."""
    c = cfg.hierarchy.c
    bound = np.array(agent_goals(cfg).subgoal_bound[:2])
    success_distance = get_task(cfg.task.name).success_distance
    rows = []
    for target in dict.fromkeys(r["target"] for r in runs):
        mine = [r for r in runs if r["target"] == target]
        offsets = np.array([goal - start for r in mine for start, goal in r["subgoals"]])
        misses = [float(np.linalg.norm(r["path"][(k + 1) * c] - goal))
                  for r in mine for k, (_, goal) in enumerate(r["subgoals"])
                  if (k + 1) * c < len(r["path"])]
        rows.append({
            "target": target, "episodes": len(mine),
            "success": float(np.mean([r["distance"] < success_distance for r in mine])),
            "distance": float(np.mean([r["distance"] for r in mine])),
            "subgoal_reach": float(np.linalg.norm(offsets, axis=1).mean()),
            "at_bound": float((np.abs(offsets) >= 0.99 * bound).any(axis=1).mean()),
            "low_miss": float(np.mean(misses))})
    return rows


def stats_text(rows: list[dict]) -> str:
    lines = [f"{'target':<12} {'episodes':>8} {'success':>8} {'distance':>9} "
             f"{'|g_xy|':>7} {'at bound':>9} {'low miss':>9}"]
    for r in rows:
        target = "(" + ", ".join(f"{v:g}" for v in r["target"][:2]) + ")"
        lines.append(f"{target:<12} {r['episodes']:>8} {r['success']:>8.2f} "
                     f"{r['distance']:>9.2f} {r['subgoal_reach']:>7.2f} "
                     f"{r['at_bound']:>9.2f} {r['low_miss']:>9.2f}")
    return "\n".join(lines)


def agent_goals(cfg):
    return goal_space(get_task(cfg.task.name), cfg.task.hi, cfg.task.lo, cfg.task.eval_target)


def draw_rollouts(seed_dir: str | Path, out: str | Path, episodes: int = 3):
    """Draws the rollouts to `out`; returns (out, subgoal_stats rows)."""
    import matplotlib.pyplot as plt

    cfg, runs = rollouts(seed_dir, episodes)
    fig = rollout_figure(cfg, runs)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format=Path(out).suffix.lstrip(".") or "png")
    plt.close(fig)
    return Path(out), subgoal_stats(cfg, runs)


def rollout_figure(cfg, runs):
    """One panel per eval target: the maze, each episode's path and its subgoals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hflow.envs.render import draw_task

    targets = agent_goals(cfg).eval_targets
    fig, axes = plt.subplots(1, len(targets), figsize=(4.2 * len(targets), 5.2), squeeze=False,
                             layout="constrained")  # makes room for titles and legends
    fig.suptitle(f"{cfg.model} on {cfg.task.name}: paths (lines), subgoals (x, joined to "
                 f"where they were set)", fontsize=9)
    colors = plt.get_cmap("tab10")
    for ax, target in zip(axes[0], targets):
        draw_task(cfg.task.name, ax, target)
        mine = [r for r in runs if r["target"] == target]
        for e, run in enumerate(mine):
            color = colors(e)
            ax.plot(run["path"][:, 0], run["path"][:, 1], color=color, lw=1.2,
                    label=f"episode {e + 1}: path")
            for start, goal in run["subgoals"]:
                ax.plot([start[0], goal[0]], [start[1], goal[1]], color=color, lw=0.5,
                        alpha=0.5)
                ax.plot(goal[0], goal[1], "x", color=color, ms=4, alpha=0.7)
        _show_all_subgoals(ax, [g for r in mine for _, g in r["subgoals"]])
        distances = ", ".join(f"{r['distance']:.2f}" for r in mine)
        ax.set_title(f"target ({', '.join(f'{v:g}' for v in target[:2])}): final distance "
                     f"{distances}", fontsize=8)
    # one legend for what every panel shows, below them (constrained layout makes room)
    for ax in axes[0]:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    handles, labels = axes[0][0].get_legend_handles_labels()
    handles.append(matplotlib.lines.Line2D([], [], color="gray", marker="x", lw=0.5, ms=4))
    labels.append("subgoal (x), joined to where it was set; episode's colour")
    fig.legend(handles, labels, loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    return fig


def _show_all_subgoals(ax, goals: list) -> None:
    """Widens the axes past the maze where a subgoal lies outside it: none is cut off."""
    if not goals:
        return
    xs, ys = np.array(goals)[:, 0], np.array(goals)[:, 1]
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    ax.set_xlim(min(x0, xs.min() - 1), max(x1, xs.max() + 1))
    ax.set_ylim(min(y0, ys.min() - 1), max(y1, ys.max() + 1))


def cut_off(fig) -> list[str]:
    """The titles and legends of `fig` that reach outside its area (laid out at its dpi)."""
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    area = fig.bbox.padded(1)
    texts = [("suptitle", fig._suptitle), *(("legend", leg) for leg in fig.legends)] + [
        (f"title of panel {i}", ax.title) for i, ax in enumerate(fig.axes)]
    outside = []
    for name, artist in texts:
        if artist is None:
            continue
        extent = artist.get_window_extent(renderer)
        if not (area.contains(*extent.min) and area.contains(*extent.max)):
            outside.append(name)
    return outside
