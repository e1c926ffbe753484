"""Training-step functions run as CUDA graphs: one launch instead of hundreds of kernels.

An update of these small networks is a few hundred kernels of microseconds each; launched
one by one from Python they leave a GPU idle. `StepGraphs` records each step function once
per key (e.g. the update's place in the policy-delay cycle) as a CUDA graph and replays it:

- the function's tensor inputs are copied into fixed buffers before each replay;
- its random draws are made *outside* the graph, from the member streams, in the order the
  function makes them (recorded on the first call), and copied into fixed buffers too, so a
  captured run draws exactly the numbers an eager one does and resume stays exact;
- the outputs are copied out (callers may keep them past the next replay).

A step function is `fn(key, inputs, *rngs) -> dict of tensors`; it must not change host
state (a replay runs no Python), so counters such as TD3's update count stay with the caller.
Capturing needs warm-up runs, which would change the networks: the state the step mutates is
copied before them and put back after, so the first captured step starts where eager would.

Mode `emulate` does all of this on the CPU without a graph (same buffers, recorded draw
order, warm-up and restore): the tests check there everything but the capture itself.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch

from hflow import HflowError

MODES = ("eager", "cuda", "emulate")
WARMUP_RUNS = 2  # besides the recording run; CUDA's docs ask for a few before capture


class DrawRecorder:
    """Stands in for a member RNG on the first run: notes each draw's kind and shape and
    returns numbers from a private generator (the real streams are not touched)."""

    def __init__(self, members: int, device: torch.device, generator: torch.Generator):
        self.members, self.device, self.generator = members, device, generator
        self.draws: list[tuple[str, tuple[int, ...], torch.Tensor]] = []

    def _draw(self, kind: str, shape: tuple[int, ...]) -> torch.Tensor:
        sample = torch.randn if kind == "normal" else torch.rand
        value = sample((self.members, *shape), generator=self.generator, device=self.device)
        self.draws.append((kind, shape, value))
        return value

    def normal(self, *shape: int) -> torch.Tensor:
        return self._draw("normal", shape)

    def uniform(self, *shape: int) -> torch.Tensor:
        return self._draw("uniform", shape)


class FixedDraws:
    """The recorded draws as fixed buffers, served in the recorded order; `fill` copies the
    real stream's next numbers into them."""

    def __init__(self, recorder: DrawRecorder):
        self.buffers = [(kind, shape, value.clone()) for kind, shape, value in recorder.draws]
        self.served = 0

    def _next(self, kind: str, shape: tuple[int, ...]) -> torch.Tensor:
        expected = self.buffers[self.served][:2] if self.served < len(self.buffers) else None
        if expected != (kind, shape):
            raise RuntimeError(f"a step function drew {kind}{shape} where its first run drew "
                               f"{expected or 'nothing'}: its draws must not depend on the data")
        self.served += 1
        return self.buffers[self.served - 1][2]

    def normal(self, *shape: int) -> torch.Tensor:
        return self._next("normal", shape)

    def uniform(self, *shape: int) -> torch.Tensor:
        return self._next("uniform", shape)

    def rewind(self) -> FixedDraws:
        self.served = 0
        return self

    def fill(self, rng) -> None:
        for kind, shape, buffer in self.buffers:
            buffer.copy_(getattr(rng, kind)(*shape))


@dataclass
class Entry:
    inputs: dict[str, torch.Tensor]
    draws: list[FixedDraws]
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)
    graph: torch.cuda.CUDAGraph | None = None


class StepGraphs:
    """Runs step functions eagerly (`eager`), as CUDA graphs (`cuda`) or through the graphs'
    buffers without a graph (`emulate`). `mutable` lists every tensor a step may change
    (parameters, target networks, optimizer moments): kept across the warm-up runs."""

    def __init__(self, mode: str, device: torch.device, members: int,
                 mutable: Callable[[], list[torch.Tensor]]):
        if mode not in MODES:
            raise ValueError(f"graph mode {mode!r}; allowed: {', '.join(MODES)}")
        if mode == "cuda" and device.type != "cuda":
            raise HflowError(f"train.capture = 'cuda' needs a CUDA device, but train.device "
                             f"is {device}; use auto, eager or emulate")
        self.mode, self.device, self.members, self.mutable = mode, device, members, mutable
        self.entries: dict[tuple, Entry] = {}
        self.stream = None  # CUDA: the stream of every warm-up and capture

    def __call__(self, name: str, key, fn: Callable, inputs: dict[str, torch.Tensor],
                 *rngs) -> dict[str, torch.Tensor]:
        if self.mode == "eager":
            return fn(key, inputs, *rngs)
        entry = self.entries.get((name, key))
        if entry is None:
            entry = self._capture(name, key, fn, inputs, len(rngs))
            self.entries[(name, key)] = entry
        for buffer_name, buffer in entry.inputs.items():
            buffer.copy_(inputs[buffer_name])
        for draws, rng in zip(entry.draws, rngs, strict=True):
            draws.fill(rng)
        if entry.graph is not None:
            entry.graph.replay()
        else:  # emulate: fixed output buffers too, overwritten by every step as a replay's are
            fresh = fn(key, entry.inputs, *(d.rewind() for d in entry.draws))
            for out_name, value in fresh.items():
                entry.outputs.setdefault(out_name, torch.empty_like(value)).copy_(value)
        return {k: v.clone() for k, v in entry.outputs.items()}

    def _capture(self, name: str, key, fn: Callable, inputs: dict[str, torch.Tensor],
                 n_rngs: int) -> Entry:
        static = {k: v.detach().clone() for k, v in inputs.items()}
        state = self.mutable()
        with torch.no_grad():
            saved = [t.detach().clone() for t in state]
        generator = torch.Generator(self.device).manual_seed(0)
        recorders = [DrawRecorder(self.members, self.device, generator) for _ in range(n_rngs)]
        cuda = self.mode == "cuda"
        if cuda:
            # Warm-up runs on a side stream, as torch.cuda.graph's docs ask, and the capture on
            # the same one: libraries keep per-stream handles that must exist before capture.
            if self.stream is None:
                self.stream = torch.cuda.Stream(self.device)
            side = self.stream
            side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self.stream) if cuda else nullcontext():
            fn(key, static, *recorders)
            draws = [FixedDraws(r) for r in recorders]
            for _ in range(WARMUP_RUNS):
                fn(key, static, *(d.rewind() for d in draws))
        if cuda:
            torch.cuda.current_stream(self.device).wait_stream(side)
        with torch.no_grad():
            for tensor, value in zip(state, saved, strict=True):
                tensor.copy_(value)
        entry = Entry(static, draws)
        if cuda:
            entry.graph = torch.cuda.CUDAGraph()
            try:
                with torch.cuda.graph(entry.graph, stream=side):
                    entry.outputs = fn(key, static, *(d.rewind() for d in draws))
            except RuntimeError as err:
                raise HflowError(f"recording step {name!r} ({key}) as a CUDA graph failed "
                                 f"({str(err)[:300]}); train.capture=eager runs it op by "
                                 f"op") from err
        return entry

