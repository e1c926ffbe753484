"""Training throughput in a long run's own steady state: env steps/s of the training loop
(acting, env, both levels' updates with the correction) resumed from a checkpoint.

    python benchmarks/resume_throughput.py STATE_DIR_OR_CHECKPOINT [--steps 300] [--warmup 20]

train_throughput.py starts from fresh networks; what a run's later steps cost (e.g.
denormal Adam moments of units whose gradient stays 0, which only a long run accumulates)
shows only from its own checkpoint. Prints the steps/s and the share of float32 denormals
among the optimizers' moments at the start. Side by side with an older checkout: copy this
script into that checkout's benchmarks/ and run it there, so each imports its own hflow.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hflow.checkpoint import list_checkpoints, load  # noqa: E402
from hflow.resolve import from_dict  # noqa: E402
from hflow.train import Trainer  # noqa: E402


def denormal_share(tensors) -> float:
    tiny = torch.finfo(torch.float32).tiny
    flags = [((t != 0) & (t.abs() < tiny)).flatten() for t in tensors if t.is_floating_point()]
    return float(torch.cat(flags).float().mean()) if flags else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("state", type=Path, help="a state directory or one checkpoint file")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20, help="steps not timed")
    args = parser.parse_args()
    path = args.state if args.state.is_file() else list_checkpoints(args.state)[-1]
    state = load(path)
    cfg = from_dict(state["config"])
    torch.set_num_threads(cfg.train.torch_threads)
    trainer = Trainer(cfg)
    trainer.load_state_dict(state)
    moments = [b for name, b in trainer.agent.named_buffers() if "_opt.exp_avg" in name]
    share = denormal_share(moments)
    for _ in range(args.warmup):
        trainer.advance()
    start = time.perf_counter()
    for _ in range(args.steps):
        trainer.advance()
    rate = args.steps / (time.perf_counter() - start)
    print(f"{cfg.model} {cfg.task.name} from env step {state['step']:,} (K = "
          f"{len(trainer.seeds)}): {rate:.1f} env steps/s per member over {args.steps} steps; "
          f"denormal share of the Adam moments at the start {share:.3f}")


if __name__ == "__main__":
    main()
