"""What HIRO's off-policy correction chooses, read from a run's resume checkpoint.

    python benchmarks/correction_choices.py RECORD STATE_DIR [--batch 2000]

e.g. for the learning suite's HIRO job:

    python benchmarks/correction_choices.py \\
        results/point/runs/PointMazeMulti/hiro_2_2/seed0/config.json \\
        results/point/state/PointMazeMulti/hiro_2_2/seeds-0-1-2-3-4

Loads the newest checkpoint (networks and high-level replay), draws `--batch` stored
segments per seed and scores HIRO's candidates with the checkpoint's low level, as an update
would. Prints per seed: how often the stored goal, delta-s = s_{t+c} - s_t, or one of the
sampled candidates wins; how far the chosen goal moves from the stored one (x-y); how often
stored goals sit at the subgoal bound; and the log-likelihood gain of the winner over the
stored goal. Nothing is written to the run.
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np
import torch

from hflow.agents.corrections import HiroCorrection
from hflow.bounds import clip_to_bound
from hflow.resolve import resolve
from hflow.run import Run
from hflow.seeding import BlockedRNG


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("record", help="a seed's config.json of the job (its whole config)")
    parser.add_argument("state_dir", help="the job's resume state directory")
    parser.add_argument("--batch", type=int, default=2000)
    args = parser.parse_args()
    cfg = resolve(file=args.record)
    with tempfile.TemporaryDirectory() as out:
        run = Run(cfg, out, args.state_dir, progress=False)
        if not run.try_resume():
            raise SystemExit(f"{args.state_dir} holds no checkpoint")
        trainer = run.trainer
        agent = trainer.agent.eval()
        correction = agent.correction
        if not isinstance(correction, HiroCorrection):
            raise SystemExit(f"{cfg.model} does not use HIRO's correction")
        batch = trainer.high_buffer.sample(args.batch, BlockedRNG(trainer.seeds, "diagnostics"))
        with torch.no_grad():
            states, actions, goal = batch["states"], batch["actions"], batch["goal"]
            noise = correction.draw(BlockedRNG(trainer.seeds, "diagnostics_cands"), args.batch,
                                    goal.shape[-1])["candidate_noise"]
            cands = clip_to_bound(correction.candidates(agent, states, goal, noise),
                                  agent.subgoal_bound)  # as the correction scores them
            scores = correction.score(agent, states, actions, cands)
        best = scores.argmax(dim=-1)  # [K, B]
        chosen = cands.gather(2, best[..., None, None].expand(-1, -1, 1, goal.shape[-1]))[:, :, 0]
        bound = agent.subgoal_bound[:2]
        print(f"{cfg.model} on {cfg.task.name} at step {trainer.step:,}: {args.batch} stored "
              f"segments per seed, {cands.shape[2]} candidates")
        print(f"{'seed':>4} {'stored g':>9} {'delta-s':>8} {'sampled':>8} {'shift xy':>9} "
              f"{'|g_xy|':>7} {'g at bound':>11} {'gain':>8}")
        for k, seed in enumerate(trainer.seeds):
            b = best[k].numpy()
            shift = torch.linalg.norm(chosen[k, :, :2] - goal[k, :, :2], dim=-1).mean()
            at_bound = (goal[k, :, :2].abs() >= 0.99 * bound).any(dim=-1).float().mean()
            gain = (scores[k].max(dim=-1).values - scores[k, :, 0]).mean()
            print(f"{seed:>4} {np.mean(b == 0):>9.2f} {np.mean(b == 1):>8.2f} "
                  f"{np.mean(b >= 2):>8.2f} {float(shift):>9.2f} "
                  f"{float(torch.linalg.norm(goal[k, :, :2], dim=-1).mean()):>7.2f} "
                  f"{float(at_bound):>11.2f} {float(gain):>8.3f}")


if __name__ == "__main__":
    main()
