"""Captured steps (hflow.graphs): on the CPU, EmulatedGraphs (tests/emulation.py) runs
everything a CUDA graph run does (fixed buffers, warm-up runs undone) except the capture
itself; its numbers must equal eager ones exactly. tests/test_gpu.py checks the capture on
CUDA."""

import pytest
import torch
from conftest import STEP_KINDS, assert_both_levels_update
from emulation import EmulatedGraphs, emulate

from hflow import HflowError
from hflow.graphs import StepGraphs
from hflow.resolve import resolve
from hflow.seeding import BlockedRNG
from hflow.train import Trainer


class Noisy(torch.nn.Module):
    """A toy step: one SGD step of w on x plus noise drawn by the caller."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(2, 3))

    def step(self, inputs):
        loss = ((inputs["x"] * self.w).sum(-1) ** 2).sum()
        (grad,) = torch.autograd.grad(loss, [self.w])
        with torch.no_grad():
            self.w.sub_(0.01 * grad + 0.001 * inputs["noise"])
        return {"loss": loss.detach(), "w": self.w.detach().clone()}


def _run(mode, calls=5):
    torch.manual_seed(0)
    net, rng = Noisy(), BlockedRNG([0, 1], "toy", block=4)  # blocks run out between calls
    mutable = lambda: list(net.parameters())  # noqa: E731
    graphs = StepGraphs("eager", torch.device("cpu"), mutable) if mode == "eager" \
        else EmulatedGraphs(torch.device("cpu"), mutable)
    outs = [graphs(f"toy{k % 2}", net.step, {"x": torch.full((2, 3), float(k)),
                                              "noise": rng.normal(3)})
            for k in range(calls)]
    return net.w.detach().clone(), outs, graphs


def test_emulated_steps_equal_eager_ones_exactly():
    w_eager, eager, _ = _run("eager")
    w_emulated, emulated, graphs = _run("emulate")
    assert torch.equal(w_eager, w_emulated)
    for a, b in zip(eager, emulated):
        assert torch.equal(a["loss"], b["loss"]) and torch.equal(a["w"], b["w"])
    assert sorted(graphs.entries) == ["toy0", "toy1"]  # one record per name


def test_outputs_are_not_overwritten_by_later_steps():
    _, outs, _ = _run("emulate")
    assert not torch.equal(outs[0]["w"], outs[-1]["w"])


def test_warm_up_runs_are_undone_only_for_the_state_it_is_told_of():
    """With an empty `mutable` list the warm-up steps stay in the weights: the run differs."""
    torch.manual_seed(0)
    net = Noisy()
    graphs = EmulatedGraphs(torch.device("cpu"), lambda: [])
    graphs("toy", net.step, {"x": torch.ones(2, 3), "noise": torch.zeros(2, 3)})
    w_eager, _, _ = _run("eager", calls=1)
    assert not torch.equal(net.w.detach(), w_eager)


def test_cuda_capture_needs_a_cuda_device(tiny, tmp_path):
    cfg = resolve("hiro", sets=tiny("hiro", ["train.capture=cuda"]))
    with pytest.raises(HflowError, match="train.capture = 'cuda' needs a CUDA device"):
        Trainer(cfg)


def test_emulate_is_no_config_value(tiny):
    with pytest.raises(Exception, match="train.capture"):
        resolve("hiro", sets=tiny("hiro", ["train.capture=emulate"]))


@pytest.mark.parametrize("model", ["hiro", "ours"])
def test_emulated_capture_trains_exactly_as_eager(tiny, tmp_path, model):
    """Acting, both updates and the correction through the graphs' buffers: identical
    networks, optimizer moments, replay and losses after 400 steps (both levels updating)."""
    states = []
    for mode in ("eager", "emulate"):
        cfg = resolve(model, options={"train.seeds": [0, 1], "train.steps": 400},
                      sets=tiny(model, ["task.name=BallPushSingle"]))
        trainer = Trainer(cfg) if mode == "eager" else emulate(Trainer(cfg))
        for _ in range(400):
            trainer.advance()
        assert_both_levels_update(trainer)
        states.append((trainer.agent.mutable_tensors(), trainer.low_buffer.data,
                       trainer.high_buffer.data, trainer.loss_log.means()))
    (eager, *rest_a), (emulated, *rest_b) = states
    assert all(torch.equal(a, b) for a, b in zip(eager, emulated, strict=True))
    assert torch.equal(rest_a[0], rest_b[0]) and torch.equal(rest_a[1], rest_b[1])
    assert rest_a[2] == rest_b[2]
    assert set(trainer.graphs.entries) == STEP_KINDS
