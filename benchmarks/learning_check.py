"""Quick learning check: does a preset learn a Point task on this machine, with small nets?

    python benchmarks/learning_check.py [--model hiro] [--task PointMazeSingle]
        [--steps 150000] [--seeds 0,1] [--threshold 0.5] [--hidden 64]

Trains with the preset's settings except the network width (`--hidden`, CPU-sized) and the
low level's exploration noise (0.1, as HIRO's point_maze.gin advises), evaluating every 10k
steps on 20 episodes per target. Prints the headline target's success curve and the first
step at which the success rate, averaged over seeds, reaches the threshold. The run's files
land in --out. For the shipped evidence (every model, paper-size networks, 5 seeds, HIRO's
three targets) see the learning suite, config/point.yaml.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from hflow.resolve import resolve
from hflow.run import Run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="hiro")
    parser.add_argument("--task", default="PointMazeSingle")
    parser.add_argument("--steps", type=int, default=150_000)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--out", default="/tmp/hflow-learning-check")
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args()
    h = f"[{args.hidden},{args.hidden}]"
    sets = [f"high.actor={h}", f"high.critic={h}", f"low.actor={h}", f"low.critic={h}",
            "low.explore_sigma=0.1", "train.eval_every=10000", "train.eval_episodes=20",
            "train.device=cpu", *args.set]
    cfg = resolve(args.model, options={"task.name": args.task, "train.steps": args.steps,
                                       "train.seeds": [int(s) for s in args.seeds.split(",")]},
                  sets=sets)
    start = time.time()
    run = Run(cfg, args.out)
    run.run()
    minutes = (time.time() - start) / 60
    steps = [r["step"] for r in run.metrics[0].rows]
    success = np.mean([[r["eval_success"] for r in m.rows] for m in run.metrics], axis=0)
    reward = np.mean([[r["eval_reward"] for r in m.rows] for m in run.metrics], axis=0)
    print(f"\n{args.model} on {args.task}, seeds {args.seeds}, nets {h}, {minutes:.1f} min")
    print(f"{'step':>8} {'success':>8} {'eval reward':>12}")
    for s, p, r in zip(steps, success, reward):
        print(f"{s:>8} {p:>8.2f} {r:>12.1f}")
    reached = [s for s, p in zip(steps, success) if p >= args.threshold]
    print(f"first step with mean success >= {args.threshold}: "
          + (f"{reached[0]:,}" if reached else f"not reached in {args.steps:,} steps"))


if __name__ == "__main__":
    main()
