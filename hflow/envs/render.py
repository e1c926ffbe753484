"""Top-down pictures of a task's layout: walls, chasms, blocks, start, target(s)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from hflow.envs.maze import CHASM, WALL  # noqa: E402
from hflow.envs.tasks import get_task, goal_space  # noqa: E402
from hflow.io import atomic_path  # noqa: E402


def draw_task(task: str, ax, target: tuple[float, ...] | None = None) -> None:
    """The layout on `ax`; `target` replaces the headline eval target (star and circle)."""
    spec = get_task(task)
    layout, S = spec.layout, spec.robot.maze_scale
    goals = goal_space(spec)
    ground = "#e8e8e8" if layout.elevated else "#f4f7f0"
    for i, row in enumerate(layout.grid):
        for j, cell in enumerate(row):
            x, y = layout.center(i, j, S)
            color = {WALL: "#555555", CHASM: "#111111"}.get(cell, ground)
            ax.add_patch(Rectangle((x - S / 2, y - S / 2), S, S, color=color, lw=0))
    for block in layout.blocks:
        x, y = layout.center(block.row, block.col, S)
        side = 0.99 * S
        ax.add_patch(Rectangle((x - side / 2, y - side / 2), side, side, color="#d62728", lw=0))
        ax.text(x, y, f"block\nmoves {block.axes}", ha="center", va="center", color="white",
                fontsize=8)
    if spec.variant == "multi":
        (x0, y0), (x1, y1) = goals.target_low[:2], goals.target_high[:2]
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ls="--", ec="#1f77b4",
                               label="training targets"))
    ax.plot(0, 0, "o", color="#2ca02c", ms=10, label="start")
    tx, ty = (target or goals.eval_target)[:2]
    ax.plot(tx, ty, "*", color="#ffbf00", mec="black", ms=16, label="eval target")
    ax.add_patch(plt.Circle((tx, ty), spec.success_distance, fill=False, ec="#ffbf00", ls=":"))
    xmin, xmax, ymin, ymax = layout.extent(S)
    ax.set_xlim(xmin, xmax)
    ax.set_ylim(ymin, ymax)
    ax.set_aspect("equal")
    shown = ", ".join(f"{v:g}" for v in (target or goals.eval_target))
    ax.set_title(f"{spec.name}\ntarget ({shown})", fontsize=9)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.07), ncol=3, fontsize=7, frameon=False)


def render_task(task: str, out: str | Path) -> Path:
    fig, ax = plt.subplots(figsize=(4, 4.6))
    draw_task(task, ax)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format=Path(out).suffix.lstrip(".") or "png")
    plt.close(fig)
    return Path(out)
