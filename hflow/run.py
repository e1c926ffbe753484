"""One training run: the loop (hflow.train.Trainer) on a schedule, with its files.

`Run.run`: take the run's lock, resume from the newest readable checkpoint, then advance to
`train.steps`; every `eval_every` steps evaluate and append a metrics row per seed, every
`checkpoint_every` steps (and at the end) also checkpoint; at the end write the policies.
What is written where is hflow.run_files; the loop's own state is `Trainer.state_dict`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from hflow.checkpoint import CHECKPOINT_VERSION, CheckpointError
from hflow.config import RunConfig
from hflow.evaluate import EVAL_METRICS, evaluate, make_eval_envs, metric_names
from hflow.progress import Progress
from hflow.run_files import RunFiles
from hflow.train import Trainer


class Run:
    def __init__(self, cfg: RunConfig, out_dir: str | Path, state_dir: str | Path | None = None,
                 progress: bool = True):
        self.cfg, self.show_progress = cfg, progress
        self.trainer = Trainer(cfg)
        t = self.trainer
        self.eval_envs = make_eval_envs(cfg, t.seeds, t.goals, cfg.train.env_threads)
        per_target = tuple(c for c in metric_names(t.goals) if c not in EVAL_METRICS)
        self.files = RunFiles(cfg, out_dir, state_dir, {"goal_space": t.goals.to_dict(),
                                                         "device": str(t.device)}, per_target)
        self.wall_offset = 0.0  # wall time of the run's earlier processes (from the checkpoint)
        self.start_time = time.monotonic()
        self.interval_start = (self.start_time, 0)  # for the steps/s of the next metrics row

    @property
    def metrics(self):
        return self.files.metrics

    def run(self) -> None:
        """Trains to `train.steps`, resuming first; holds the run's lock throughout."""
        cfg, trainer = self.cfg, self.trainer
        with self.files.locked():
            self.start_time = time.monotonic()
            resumed = self.try_resume()
            self.files.check_seed_dirs(resumed)
            self.interval_start = (self.start_time, trainer.step)
            self.files.write_records()
            self.files.open_tensorboard(trainer.step if resumed else None)
            g = trainer.goals
            label = f"{cfg.model} {cfg.task.name} hi={g.hi} lo={g.lo} " \
                    f"seeds={','.join(map(str, trainer.seeds))}"
            progress = (Progress(cfg.train.steps, label, start=trainer.step)
                        if self.show_progress else None)
            if not resumed:
                self.evaluate_and_checkpoint(progress)
            while trainer.step < cfg.train.steps:
                trainer.advance()
                if trainer.step % cfg.train.eval_every == 0 or trainer.step == cfg.train.steps:
                    self.evaluate_and_checkpoint(progress)
                elif progress is not None:
                    progress.update(trainer.step)
            if progress is not None:
                progress.close()
            agent = trainer.agent
            self.files.write_policies({"high_actor": agent.high.actor, "low_actor": agent.low.actor,
                                       "high_critic": agent.high.critic,
                                       "low_critic": agent.low.critic}, trainer.step)

    def try_resume(self) -> bool:
        state = self.files.latest_checkpoint()
        if state is None:
            return False
        try:
            self.load_state_dict(state)
        except (KeyError, RuntimeError, ValueError, TypeError) as err:
            raise CheckpointError(
                f"{state['_path']} does not fit this run ({type(err).__name__}: "
                f"{str(err)[:300]}); delete {self.files.state_dir} to start over") from None
        print(f"[hflow] resumed from {state['_path']} at step {self.trainer.step:,}",
              flush=True)
        return True

    def evaluate_and_checkpoint(self, progress: Progress | None) -> None:
        trainer, t = self.trainer, self.cfg.train
        trainer.loss_log.check(trainer.seeds)  # before anything is written: keep the last good one
        results = evaluate(trainer.agent, self.eval_envs, trainer.seeds, self.cfg,
                           trainer.device, trainer.goals)
        now, (t0, s0) = time.monotonic(), self.interval_start
        step = trainer.step
        sps = (step - s0) / (now - t0) if step > s0 and now > t0 else float("nan")
        losses, returns = trainer.loss_log.means(), trainer.take_episode_returns()
        low = trainer.low_tally.take()
        rows = [{"step": step, **{name: float(v[k]) for name, v in results.items()},
                 "train_return": float(np.mean(r)) if (r := returns[k]) else math.nan,
                 **low[k], **losses[k], "steps_per_s": sps, "wall_s": self._wall()}
                for k in range(trainer.K)]
        self.files.append_metrics(rows, trainer.loss_log)
        trainer.loss_log.reset()
        if step % (t.checkpoint_every or t.eval_every) == 0 or step == t.steps:
            self.files.save_checkpoint(self.state_dict(), step)
        if progress is not None:
            note = (f"eval reward {np.mean(results['eval_reward']):.1f}, success "
                    f"{np.mean(results['eval_success']):.2f}")
            progress.update(step, note=note, force=True)
        self.interval_start = (time.monotonic(), step)

    def _wall(self) -> float:
        return self.wall_offset + (time.monotonic() - self.start_time)

    def state_dict(self) -> dict:
        """The checkpoint: the loop's state between the run's identity and its metrics rows."""
        loop = self.trainer.state_dict()
        return {"version": CHECKPOINT_VERSION, "config": self.cfg.to_dict(),
                "step": loop.pop("step"), "wall_s": self._wall(), **loop,
                # The rows live here too: a workflow manager may delete a failed job's outputs.
                "metrics": [m.rows for m in self.metrics]}

    def load_state_dict(self, state: dict) -> None:
        self.trainer.load_state_dict(state)
        self.wall_offset = state["wall_s"]
        for m, rows in zip(self.metrics, state["metrics"], strict=True):
            m.restore(rows)


def train(cfg: RunConfig, out_dir: str | Path, state_dir: str | Path | None = None,
          progress: bool = True) -> Run:
    run = Run(cfg, out_dir, state_dir, progress)
    run.run()
    return run
