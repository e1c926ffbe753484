"""Step functions replayed as CUDA graphs: one launch instead of hundreds of kernels.

A step is `fn(inputs) -> dict of tensors`, a function of its input tensors alone: the loop
draws its noise from the member streams and passes it in, so a replay (which runs no Python)
uses the same numbers as an eager call. Per name, the first call records: the inputs are
copied into fixed buffers, warm-up runs (which CUDA asks for) are undone by restoring the
state the step mutates, and the graph is captured; later calls copy inputs in, replay, and
copy the outputs out. `_capture` is the only part that needs CUDA: the buffers, warm-up and
restore around it run on any device.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext

import torch

from hflow import HflowError

WARMUP_RUNS = 2  # besides the recording run; CUDA's docs ask for a few before capture


class StepGraphs:
    def __init__(self, mode: str, device: torch.device,
                 mutable: Callable[[], list[torch.Tensor]]):
        assert mode in ("eager", "cuda"), mode
        if mode == "cuda" and device.type != "cuda":
            raise HflowError(f"train.capture = 'cuda' needs a CUDA device, but train.device "
                             f"is {device}; use auto or eager")
        self.mode, self.device, self.mutable = mode, device, mutable
        self.entries: dict[str, tuple] = {}  # name -> (inputs, outputs, replay)
        self.stream = torch.cuda.Stream(device) if mode == "cuda" else None

    @property
    def runner(self) -> StepGraphs | None:
        """What a level's update runs its steps through: these graphs, or None (op by op,
        each step called directly)."""
        return None if self.mode == "eager" else self

    def __call__(self, name: str, fn: Callable, inputs: dict[str, torch.Tensor]) -> dict:
        if self.mode == "eager":
            return fn(inputs)
        if name not in self.entries:
            self.entries[name] = self._record(name, fn, inputs)
        static, outputs, replay = self.entries[name]
        for key, buffer in static.items():
            buffer.copy_(inputs[key])
        replay()  # the outputs' buffers are overwritten by every replay: hand out copies
        return {k: v.clone() for k, v in outputs.items()}

    def _record(self, name: str, fn: Callable, inputs: dict[str, torch.Tensor]) -> tuple:
        static = {k: v.detach().clone() for k, v in inputs.items()}
        with torch.no_grad():
            saved = [(t, t.detach().clone()) for t in self.mutable()]
        if self.stream is not None:  # warm-up and capture on one side stream (torch.cuda.graph)
            self.stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self.stream) if self.stream is not None else nullcontext():
            for _ in range(WARMUP_RUNS + 1):
                fn(static)
        if self.stream is not None:
            torch.cuda.current_stream(self.device).wait_stream(self.stream)
        with torch.no_grad():
            for tensor, value in saved:
                tensor.copy_(value)
        return (static, *self._capture(name, fn, static))

    def _capture(self, name: str, fn: Callable, static: dict[str, torch.Tensor]) -> tuple:
        """(outputs, replay): fn recorded once on `static` as a CUDA graph."""
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, stream=self.stream):
                outputs = fn(static)
        except RuntimeError as err:
            raise HflowError(f"recording step {name!r} as a CUDA graph failed "
                             f"({str(err)[:300]}); train.capture=eager runs it op by op") from err
        return outputs, graph.replay
