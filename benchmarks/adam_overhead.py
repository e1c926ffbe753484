"""hflow's Adam (hflow.agents.td3.Adam: torch's fused kernel, moments as module buffers) against
`torch.optim.Adam(fused=True)` on the paper's low-level actor shapes, K members.

    python benchmarks/adam_overhead.py [--members 5] [--steps 2000] [--device cuda]

Prints microseconds per step of each, op by op and (on CUDA) replayed as a CUDA graph the way
hflow replays its updates (hflow.graphs.StepGraphs), and whether 50 steps of both give
bit-identical parameters (they run the same kernel). On CUDA it adds
`torch.optim.Adam(fused=True, capturable=True)`, the variant a captured step needs: whether
CUDA could use it instead of hflow's Adam is the captured rows' comparison (in a replay no
Python runs, so torch.optim's bookkeeping is not paid there). Without CUDA the "captured"
rows run op by op through the same StepGraphs calls.

Why hflow keeps its own on the CPU: torch.optim's per-step Python bookkeeping, paid four times
per env step (two levels, actor and critic). Measured on a 2-core AMD EPYC shared with two
training jobs (noisy), K = 5: hflow 679 us, torch.optim.Adam(fused=True) 1,225 us (1.81x; 2.2x
in an earlier run), bit-identical.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hflow.agents.td3 import Adam  # noqa: E402
from hflow.graphs import StepGraphs  # noqa: E402

SHAPES = [(30, 180), (180,), (180, 180), (180,), (180, 8), (8,)]  # obs 30 -> 180-180 -> 8


def per_step_us(step, n: int, sync) -> float:
    for _ in range(20):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(n):
        step()
    sync()
    return (time.perf_counter() - start) / n * 1e6


def optimizers(init, device) -> dict:
    """name -> (params, a step function of the gradients): each its own copy of `init`."""
    out = {}
    params = [torch.nn.Parameter(t.clone()) for t in init]
    mine = Adam(params, lr=1e-3).to(device)
    out["hflow Adam"] = (params, lambda grads, p=params, a=mine: a.step(p, grads))
    kinds = {"torch.optim.Adam(fused=True)": {"fused": True}}
    if device.type == "cuda":
        kinds["torch.optim.Adam(fused=True, capturable=True)"] = {"fused": True,
                                                                  "capturable": True}
    for name, options in kinds.items():
        params = [torch.nn.Parameter(t.clone()) for t in init]
        theirs = torch.optim.Adam(params, lr=1e-3, **options)

        def step(grads, p=params, opt=theirs):
            for param, grad in zip(p, grads):
                param.grad = grad
            opt.step()

        out[name] = (params, step)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    gen = torch.Generator().manual_seed(0)
    init = [torch.randn(args.members, *s, generator=gen).to(device) for s in SHAPES]
    grads = [torch.randn(t.shape, generator=gen).to(device) for t in init]
    mode = "cuda" if device.type == "cuda" else "eager"
    print(f"K = {args.members}, {device}, us per step (captured: one CUDA graph replay"
          f"{'' if mode == 'cuda' else '; no CUDA here, so op by op through the same calls'})")
    inputs = {f"g{i}": g for i, g in enumerate(grads)}
    for name, (params, step) in optimizers(init, device).items():
        eager = per_step_us(lambda s=step: s(grads), args.steps, sync)
        graphs = StepGraphs(mode, device, lambda p=params: list(p))

        def replayed(inp, s=step):  # a step of the gradients in the graph's input buffers
            s([inp[f"g{i}"] for i in range(len(inp))])
            return {}

        captured = per_step_us(lambda g=graphs, r=replayed: g("adam", r, inputs), args.steps,
                               sync)
        print(f"  {name:48s} op by op {eager:9,.1f}   captured {captured:9,.1f}")
    # same kernel, same numbers: fresh optimizers, 50 steps of the same gradients
    runs = optimizers(init, device)
    for _ in range(50):
        grads = [torch.randn(t.shape, generator=gen).to(device) for t in init]
        for _params, step in runs.values():
            step(grads)
    first, *rest = (params for params, _ in runs.values())
    same = all(torch.equal(a, b) for other in rest for a, b in zip(first, other))
    print("bit-identical after 50 steps:", same)


if __name__ == "__main__":
    main()
