"""Training throughput in the steady state the real workload runs in.

    python benchmarks/train_throughput.py [--models hiro ours] [--members 1 4 16] [--tiny]
        [--steps 200] [--device cpu] [--capture auto] [--task AntPushSingle] [--baseline PATH]
        [--repeats 1]

Both levels update while it is timed: the loop first collects `batch_size x c` env steps (so
the high-level buffer holds a batch and HIRO's correction runs), then times `--steps` env
steps of `Trainer.advance` (acting, physics, storing, the low-level update every step, the
high-level update with its correction every 10). Each case runs in its own process.

Prints per case: env steps/s per member and for the group (K members), the time per env step
split into env, acting, replay sampling, low-level update, high-level update (its correction
shown apart), storing and other (the loop's own code), the achieved GFLOP/s of the updates
(FLOPs counted by torch's FlopCounterMode over a policy-delay cycle of each level's updates,
the actor's step and HIRO's momentum step), and the projected
time of one 10M-step seed and of the paper's grid (config/config.yaml) on this device when
its jobs run one after another with K members each.

On CUDA, acting and the updates run as captured graphs unless `--capture eager`
(`train.capture`); the breakdown then times each graph as a whole, so the correction is
inside the high-level update and shows as nan.

`--tiny` uses 16-16 networks (compute negligible): what remains is the per-step overhead.
`--baseline PATH` runs every case also against another checkout of hflow (e.g. the previous
main: `git worktree add /tmp/base main`), interleaved with the current one, and prints the
ratio current / baseline; each checkout runs its own copy of this script, with the same
arguments.

Measurements made with it, each with its machine, date and commit: docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TINY = ["high.actor=[16,16]", "high.critic=[16,16]", "low.actor=[16,16]", "low.critic=[16,16]"]
TINY_FLOW = ["flow.hidden=[16,16]"]
PHASES = ("env", "act", "sample", "low_update", "high_update", "correction", "store")
STEPS_PER_SEED = 10_000_000


# -- the worker: one case, in the process of the checkout it measures -------------------------

class _timed:
    """fn, timed into totals[phase]; other attributes (a correction's `draw`) pass through."""

    def __init__(self, fn, phase, totals, sync):
        self.fn, self.phase, self.totals, self.sync = fn, phase, totals, sync

    def __call__(self, *args, **kwargs):
        self.sync()
        start = time.perf_counter()
        out = self.fn(*args, **kwargs)
        self.sync()
        self.totals[self.phase] += time.perf_counter() - start
        return out

    def __getattr__(self, name):
        return getattr(self.fn, name)


def worker(model: str, members: int, tiny: bool, steps: int, device: str, task: str,
           env_threads: int = 1, capture: str = "auto") -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    import hflow
    from hflow.agents.registry import get_preset
    from hflow.resolve import resolve
    from hflow.train import Trainer

    base = resolve(model)
    fill = base.td3.batch_size * base.hierarchy.c  # high-level buffer holds one batch
    sets = [f"train.warmup={fill}", "train.eval_episodes=1", f"train.capture={capture}"]
    if env_threads > 1:
        sets.append(f"train.env_threads={env_threads}")
    if tiny:
        sets += TINY + (TINY_FLOW if get_preset(model).fdgm else [])
    cfg = resolve(model, options={"task.name": task, "train.seeds": list(range(members)),
                                  "train.device": device}, sets=sets)
    trainer = Trainer(cfg)
    cuda = trainer.device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    for _ in range(fill + 20):  # past the warm-up: both levels update from here on
        trainer.advance()
    assert len(trainer.high_buffer) >= cfg.td3.batch_size

    def run_steps() -> float:
        sync()
        start = time.perf_counter()
        for _ in range(steps):
            trainer.advance()
        sync()
        return time.perf_counter() - start

    total = run_steps()

    # Again with a timer around each phase (syncing on CUDA, so the total above is the honest
    # figure there): acting (both levels), env, each level's update (its replay sampling and,
    # for the high level, the correction timed inside it and shown apart), storing.
    totals = dict.fromkeys(PHASES, 0.0)
    agent = trainer.agent
    captured = trainer.graphs.mode == "cuda"
    patches = [(trainer.envs, "step", "env"), (trainer.low_buffer, "add", "store"),
               (trainer.high_buffer, "add", "store"), (trainer, "_act_low", "act"),
               (trainer, "_pick_goal", "act")]
    for level in trainer.levels:
        patches += [(level, "update", f"{level.name}_update"),
                    (level.replay, "sample", f"sample_{level.name}")]
    if not captured:
        patches.append((agent, "correction", "correction"))
    totals.update(sample_low=0.0, sample_high=0.0)
    originals = [getattr(obj, name) for obj, name, _ in patches]
    for obj, name, phase in patches:
        setattr(obj, name, _timed(getattr(obj, name), phase, totals, sync))
    timed_total = run_steps()
    for (obj, name, _), original in zip(patches, originals):
        setattr(obj, name, original)
    for name in ("low", "high"):  # sampling is inside the update: shown apart
        totals[f"{name}_update"] -= totals[f"sample_{name}"]
        totals["sample"] += totals.pop(f"sample_{name}")

    flops = {}  # per update of each level: the mean over a policy-delay cycle of updates
    for level in trainer.levels:
        counter = FlopCounterMode(display=False)
        with counter:
            for _ in range(cfg.td3.policy_delay):
                level.update()
        flops[level.name] = counter.get_total_flops() / cfg.td3.policy_delay
    per_step = {k: 1000 * v / steps for k, v in totals.items()}
    per_step["high_update"] -= per_step["correction"]
    per_step["other"] = 1000 * timed_total / steps - sum(per_step.values())
    update_s = (totals["low_update"] + totals["high_update"]) / steps
    update_flops = flops["low"] + flops["high"] / cfg.high.update_every
    if captured:
        per_step["correction"] = float("nan")  # inside the high-level update's graph
    return {"model": model, "K": members, "sps": steps / total, "ms_per_step": per_step,
            "gflops": update_flops / update_s / 1e9 if update_s else float("nan"),
            "device": str(trainer.device), "hflow": str(Path(hflow.__file__).parent)}


# -- the driver ----------------------------------------------------------------------------

def run_case(checkout: Path, args, model: str, members: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(checkout))
    # each checkout is measured by its own copy of this script (its loop, its API)
    cmd = [sys.executable, str(checkout / "benchmarks" / "train_throughput.py"), "--worker",
           "--models", model, "--members", str(members),
           "--steps", str(args.steps), "--device", args.device, "--task", args.task,
           "--capture", args.capture]
    if args.tiny:
        cmd.append("--tiny")
    if args.env_threads > 1:
        cmd += ["--env-threads", str(args.env_threads)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=checkout)
    if done.returncode:
        sys.exit(f"case {model} K={members} in {checkout} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def grid_seed_runs() -> dict[str, int]:
    """Seed-runs of the paper's grid per preset (config/config.yaml)."""
    import yaml

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    runs = {(p["task"], r["model"], r["hi"], r["lo"]) for f in config["figures"].values()
            for p in f["panels"] for r in p["runs"]}
    counts: dict[str, int] = {}
    for _, model, _, _ in runs:
        counts[model] = counts.get(model, 0) + len(config["seeds"])
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["hiro", "ours"])
    parser.add_argument("--members", nargs="+", type=int, default=[1, 4, 16])
    parser.add_argument("--tiny", action="store_true", help="16-16 nets: per-step overhead")
    parser.add_argument("--steps", type=int, default=200, help="timed env steps per case")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--task", default="AntPushSingle")
    parser.add_argument("--baseline", type=Path, help="another hflow checkout to compare with")
    parser.add_argument("--repeats", type=int, default=1, help="cases per checkout (best kept)")
    parser.add_argument("--env-threads", type=int, default=1,
                        help="train.env_threads (threads stepping the K envs)")
    parser.add_argument("--capture", default="auto", choices=["auto", "cuda", "eager"],
                        help="train.capture: auto = CUDA graphs on a CUDA device")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.models[0], args.members[0], args.tiny, args.steps,
                                args.device, args.task, args.env_threads, args.capture)))
        return

    checkouts = {"current": ROOT}
    if args.baseline is not None:
        checkouts = {"baseline": args.baseline.resolve(), "current": ROOT}
    print(f"task {args.task}, device {args.device} (capture {args.capture}), "
          f"{'16-16' if args.tiny else 'paper-size'} nets, {args.steps} timed env steps per "
          f"case, both levels updating", flush=True)
    results: dict[tuple, dict] = {}
    for model in args.models:
        for members in args.members:
            for _ in range(args.repeats):
                for name, path in checkouts.items():  # interleaved: same machine state
                    r = run_case(path, args, model, members)
                    key = (name, model, members)
                    if key not in results or r["sps"] > results[key]["sps"]:
                        results[key] = r

    cols = ("env", "act", "sample", "low_update", "high_update", "correction", "store", "other")
    print(f"\n{'checkout':<9} {'model':<10} {'K':>3} {'steps/s/member':>14} {'group':>8} "
          + " ".join(f"{c:>10}" for c in cols) + f" {'GFLOP/s':>8}")
    print(f"{'':<9} {'':<10} {'':>3} {'':>14} {'':>8} " + " ".join(
        f"{'ms/step':>10}" for _ in cols))
    for (name, model, members), r in results.items():
        ms = r["ms_per_step"]
        print(f"{name:<9} {model:<10} {members:>3} {r['sps']:>14.1f} {members * r['sps']:>8.1f} "
              + " ".join(f"{ms[c]:>10.3f}" for c in cols) + f" {r['gflops']:>8.2f}")
    if args.baseline is not None:
        print("\nratio current / baseline (env steps/s):")
        for model in args.models:
            for members in args.members:
                new, old = results[("current", model, members)], results[("baseline", model,
                                                                          members)]
                non_env = [sum(v for k, v in r["ms_per_step"].items() if k != "env")
                           for r in (new, old)]
                print(f"  {model:<10} K={members:<3} {new['sps'] / old['sps']:5.2f}x   "
                      f"non-env ms/step {non_env[1]:.2f} -> {non_env[0]:.2f}")
    if not args.tiny:
        counts = grid_seed_runs()
        print(f"\nprojection on this device ({STEPS_PER_SEED:,} steps per seed; grid: "
              f"{sum(counts.values())} seed-runs, jobs one after another):")
        for name in checkouts:
            for members in args.members:
                rates = {m: results[(name, m, members)]["sps"] for m in args.models
                         if (name, m, members) in results}
                seed_h = {m: STEPS_PER_SEED / r / 3600 for m, r in rates.items()}
                # presets not measured are costed like the measured flow model (ours)
                flow_rate = rates.get("ours", min(rates.values()))
                grid_h = sum(n * STEPS_PER_SEED / (members * rates.get(m, flow_rate))
                             for m, n in counts.items()) / 3600
                print(f"  {name:<9} K={members:<3} one seed: " + ", ".join(
                    f"{m} {h:,.1f} h" for m, h in seed_h.items())
                    + f"; grid: {grid_h:,.0f} device-hours")


if __name__ == "__main__":
    main()
