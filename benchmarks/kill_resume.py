"""Kill-and-resume check: a run SIGKILLed many times at random moments ends exactly like an
uninterrupted one.

    python benchmarks/kill_resume.py [--kills 20] [--steps 6000] [--seed 0]

Measured on the 2-core CI machine (defaults): uninterrupted run 17.4 s; 20 SIGKILLs, 10 of
them after the run had made progress; identical metrics, policies and final checkpoint.

Trains a tiny two-seed hiro run on PointMazeSingle once without interruption, then again
from scratch, killing it with SIGKILL at a random moment (uniform between each start and a
quarter of the uninterrupted run's duration: start-up, training, evaluation and checkpoint
writes) `--kills` times and restarting the same command each time, then lets it finish.
Prints how many kills landed after the run had made progress (a newer checkpoint appeared)
and compares every non-timing column of both seeds' metrics.csv, every tensor of both
policy.pt files and of the final checkpoint. Exit status 1 if anything differs. Too slow
for CI (a few minutes).
"""

from __future__ import annotations

import argparse
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from conftest import train_command as train_cmd  # noqa: E402  (the tests' tiny run)

from hflow.checkpoint import list_checkpoints  # noqa: E402
from hflow.metrics import TIMING_COLUMNS, read_metrics  # noqa: E402

STATE = "state-seeds-0-1"


def tensors(obj, prefix=""):
    """Every tensor in a nested checkpoint, by path."""
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from tensors(v, f"{prefix}/{k}")
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            yield from tensors(v, f"{prefix}/{i}")


def compare(a: Path, b: Path, steps: int) -> list[str]:
    problems = []
    for seed in (0, 1):
        rows = [[{k: v for k, v in r.items() if k not in TIMING_COLUMNS}
                 for r in read_metrics(d / f"seed{seed}" / "metrics.csv")] for d in (a, b)]
        if str(rows[0]) != str(rows[1]):  # str: NaN == NaN
            problems.append(f"seed{seed}/metrics.csv differs")
        pa, pb = (torch.load(d / f"seed{seed}" / "policy.pt", weights_only=True) for d in (a, b))
        for (name, x), (_, y) in zip(tensors(pa["nets"]), tensors(pb["nets"])):
            if not torch.equal(x, y):
                problems.append(f"seed{seed}/policy.pt {name} differs")
    final = f"checkpoint-{steps:012d}.pt"
    ca, cb = (torch.load(d / STATE / final, weights_only=True) for d in (a, b))
    for (name, x), (_, y) in zip(tensors(ca), tensors(cb)):
        if not torch.equal(x, y):
            problems.append(f"{final} {name} differs")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rand = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        clean, killed = Path(tmp) / "clean", Path(tmp) / "killed"
        start = time.perf_counter()
        subprocess.run(train_cmd(clean, args.steps), check=True, capture_output=True)
        duration = time.perf_counter() - start
        print(f"uninterrupted run: {duration:.1f} s")
        during_training = 0
        for i in range(args.kills):
            newest = list_checkpoints(killed / STATE)[-1:] if killed.exists() else []
            proc = subprocess.Popen(train_cmd(killed, args.steps), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            time.sleep(rand.uniform(0.0, duration / 4))
            if proc.poll() is not None:
                print(f"kill {i + 1}: the run had finished already")
                break
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            after = list_checkpoints(killed / STATE)[-1:] if killed.exists() else []
            during_training += bool(after) and after != newest
        done = subprocess.run(train_cmd(killed, args.steps), capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"the final restart failed:\n{done.stderr}")
        problems = compare(clean, killed, args.steps)
        print(f"{args.kills} SIGKILLs, {during_training} of them after the run had made "
              f"progress (a newer checkpoint existed); final run: "
              f"{'identical' if not problems else 'DIFFERENT'} metrics, policies and final "
              f"checkpoint")
        for p in problems[:20]:
            print("  ", p)
        sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
