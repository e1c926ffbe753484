"""Training throughput: env steps/s of the full HIRO loop (acting, env, replay, updates).

    python benchmarks/train_throughput.py [--models hiro] [--members 1 4 8] [--device cpu]
        [--steps 300] [--task AntPushSingle]

Paper-size networks (each preset's own: 300-300 for HIRO), AntPush, batch 100. Each case
runs a short warm-up (so updates are running), then times `--steps` env steps of the loop
with the low level updating every step and the high level every 10. Prints per-run steps/s
(each of the K seeds advances this many env steps per second) and the group total (K times).
On a machine with CUDA, `--device cuda` measures the GPU.

Measured on the 2-core CI machine (--models hiro lsp ma ours ours_alg2 --members 1 4 8
--steps 200), env steps/s per run / group total:
    hiro       K=1 170 | K=4 54 / 216 | K=8 27 / 217
    lsp        K=1 147 | K=4 61 / 246 | K=8 39 / 312
    ma         K=1 151 | K=4 64 / 257 | K=8 37 / 293
    ours       K=1 148 | K=4 61 / 242 | K=8 31 / 249
    ours_alg2  K=1 142 | K=4 57 / 229 | K=8 32 / 255
"""

from __future__ import annotations

import argparse
import time

import torch

from hflow.agents.registry import PRESETS
from hflow.config import resolve
from hflow.train import Trainer


def measure(model: str, members: int, device: str, steps: int, task: str) -> float:
    cfg = resolve(model, options={"task.name": task, "train.seeds": list(range(members)),
                                  "train.device": device},
                  sets=["train.warmup=200", "train.eval_episodes=1"])
    trainer = Trainer(cfg, "/tmp/hflow-bench", progress=False)
    for _ in range(cfg.train.warmup + 20):  # fill past the warm-up: updates now run
        trainer.advance()
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        trainer.advance()
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=["hiro"], choices=list(PRESETS))
    parser.add_argument("--members", nargs="+", type=int, default=[1, 4, 8])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--task", default="AntPushSingle")
    args = parser.parse_args()
    print(f"task {args.task}, device {args.device}, torch threads "
          f"{resolve('hiro').train.torch_threads} (train.torch_threads), {args.steps} timed env "
          f"steps per case")
    print(f"{'model':<22} {'K':>3} {'steps/s per run':>16} {'group env steps/s':>18}")
    for model in args.models:
        for k in args.members:
            sps = measure(model, k, args.device, args.steps, args.task)
            print(f"{model:<22} {k:>3} {sps:>16.1f} {k * sps:>18.1f}", flush=True)


if __name__ == "__main__":
    main()
