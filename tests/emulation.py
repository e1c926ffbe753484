"""The CUDA graphs' path on a CPU: hflow.graphs.StepGraphs with its one CUDA-only part, the
capture, replaced by a replay that calls the step on the fixed input buffers. Everything else
a captured run does (inputs copied into fixed buffers, outputs into buffers that each replay
overwrites, warm-up runs undone by restoring the mutated state) runs as on CUDA, so its
numbers must equal eager ones exactly (tests/test_graphs.py)."""

import torch

from hflow.graphs import StepGraphs


class EmulatedGraphs(StepGraphs):
    def __init__(self, device: torch.device, mutable):
        super().__init__("eager", device, mutable)
        self.mode = "emulate"  # anything but 'eager' records and replays

    def _capture(self, name, fn, static):
        outputs: dict[str, torch.Tensor] = {}

        def replay():  # one set of output buffers, overwritten by every step as a replay's are
            for key, value in fn(static).items():
                outputs.setdefault(key, torch.empty_like(value)).copy_(value)

        return outputs, replay


def emulate(trainer):
    """The trainer's steps through EmulatedGraphs from now on (returns the trainer)."""
    trainer.graphs = EmulatedGraphs(trainer.device, trainer.agent.mutable_tensors)
    return trainer
