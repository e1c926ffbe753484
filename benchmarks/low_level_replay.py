"""How the low level moved toward its subgoals over training, read from a resume checkpoint's
low-level replay (no env steps, no training).

    python benchmarks/low_level_replay.py STATE_DIR_OR_CHECKPOINT [--window 25000]

The replay holds the last `low.buffer_size` transitions of every member, oldest overwritten
first; each is put back at the env step that wrote it. Per window of env steps and member it
prints: the speed of the robot's x, y per env step; the share of that movement which went
toward the subgoal's x, y (1: straight at it; 0: no better than any other direction); the
x, y progress toward the subgoal per env step; the mean |action| over the action bound (1:
every action at the bound). Steps that end a segment are left out (their stored next goal
is the high level's new one, not h(s, g, s')). For runs written before metrics.csv had
`low_subgoal_xy_progress`, and to see the low level between evaluation rows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hflow.checkpoint import list_checkpoints  # noqa: E402
from hflow.envs import get_task  # noqa: E402


def written_steps(step: int, pointer: int, size: int, capacity: int) -> np.ndarray:
    """The env step each replay slot was last written at (slots written one per env step)."""
    index = np.arange(size)
    if size < capacity:
        return index  # never full: slot i holds env step i
    # full: the pointer's slot is the oldest, written `capacity` steps ago
    return np.where(index < pointer, step - pointer + index, step - pointer - capacity + index)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("state", type=Path, help="a state directory or one checkpoint file")
    parser.add_argument("--window", type=int, default=25_000)
    args = parser.parse_args()
    path = args.state if args.state.is_file() else list_checkpoints(args.state)[-1]
    state = torch.load(path, weights_only=True, map_location="cpu")
    step, cfg, low = state["step"], state["config"], state["replay"]["low"]
    c, fields, data = cfg["hierarchy"]["c"], low["fields"], low["data"].numpy()
    width = [int(np.prod(shape)) for shape in fields.values()]
    start = dict(zip(fields, np.cumsum([0, *width[:-1]])))
    obs_w, act_w = fields["obs"][0], fields["action"][0]
    task = get_task(cfg["task"]["name"])
    lo = obs_w - task.obs_dim  # the low level sees [state, subgoal]
    goal = data[..., start["obs"] + obs_w - lo:start["obs"] + obs_w]
    left = data[..., start["next_obs"] + obs_w - lo:start["next_obs"] + obs_w]
    action = data[..., start["action"]:start["action"] + act_w]
    n = data.shape[1]
    written = written_steps(step, low["pointer"], n, cfg["low"]["buffer_size"])
    inside = written % c != c - 1
    before = np.linalg.norm(goal[..., :2], axis=-1)
    after = np.linalg.norm(left[..., :2], axis=-1)
    moved = np.linalg.norm(goal[..., :2] - left[..., :2], axis=-1)  # h = s + g - s'
    bound = np.asarray(task.robot.action_bound)
    print(f"{path}: env step {step:,}, {data.shape[0]} members, {n:,} transitions each\n"
          f"{'env steps':>17}  {'xy speed/step':>20}  {'share toward':>20}  "
          f"{'xy progress/step':>20}  {'|a| / max':>20}   (one column per member)")
    lowest = int(written.min()) // args.window * args.window
    for first in range(lowest, step, args.window):
        rows = inside & (written >= first) & (written < first + args.window)
        if rows.sum() < args.window // 10:
            continue
        speed = moved[:, rows].mean(1)
        progress = (before - after)[:, rows].mean(1)
        share = progress / speed
        size = (np.abs(action[:, rows]) / bound).mean(axis=(1, 2))
        print(f"{f'{first:,}-{first + args.window:,}':>17}  "
              + "  ".join(" ".join(f"{v:6.4f}" for v in col)
                          for col in (speed, share, progress, size)))


if __name__ == "__main__":
    main()
