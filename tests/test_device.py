"""Every tensor an agent holds follows `.to(device)`: checked on the `meta` device, so the
CPU catches what would otherwise crash only on a GPU (the optimizers are modules of their TD3)."""

import pytest
import torch
from conftest import GPU_TEST_STEPS, STEP_KINDS, assert_both_levels_update
from torch import nn

from hflow.agents.hiro import HierarchicalAgent
from hflow.agents.registry import PRESETS
from hflow.envs import get_task, goal_space
from hflow.resolve import resolve


def reachable_tensors(root) -> dict[str, torch.Tensor]:
    """Every tensor reachable from `root` through attributes, lists, tuples and dicts of
    hflow's and torch.nn's objects, by access path."""
    found, seen = {}, set()

    def walk(obj, path):
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            found[path] = obj
        elif isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, f"{path}[{k!r}]")
        elif isinstance(obj, list | tuple):
            for i, v in enumerate(obj):
                walk(v, f"{path}[{i}]")
        elif isinstance(obj, nn.Module) or type(obj).__module__.startswith("hflow"):
            for k, v in vars(obj).items():
                walk(v, f"{path}.{k}")

    walk(root, "agent")
    return found


@pytest.mark.parametrize("model", list(PRESETS))
def test_every_tensor_of_an_agent_moves_with_to(tiny, model):
    cfg = resolve(model, options={"task.name": "PointMazeSingle", "train.seeds": [0, 1]},
                  sets=tiny(model))
    task = get_task(cfg.task.name)
    agent = HierarchicalAgent(cfg, task, goal_space(task, cfg.task.hi, cfg.task.lo), [0, 1])
    before = reachable_tensors(agent)
    # the premise: the walk reaches the optimizers' state
    assert any("['actor_opt']._modules['exp_avg']._buffers['0']" in p for p in before)
    assert any("['critic_opt']._buffers['step_count']" in p for p in before)
    assert any("['zero_grads']._buffers['0']" in p for p in before)
    # and it is module state, saved with the agent: no optimizer state outside nn.Module's own
    keys = agent.state_dict().keys()
    assert "high.actor_opt.exp_avg.0" in keys and "low.critic_opt.step_count" in keys
    agent.to("meta")
    left = {p: t.device for p, t in reachable_tensors(agent).items()
            if t.device.type != "meta"}
    assert not left, left
    # the optimizers' moments match the moved parameters one to one
    for td3 in (agent.high, agent.low):
        assert [m.shape for m in td3.actor_opt.exp_avg.tensors()] == \
            [p.shape for p in td3.actor.parameters()]


@pytest.mark.parametrize("model", ["hiro", "ours"])
def test_the_gpu_tests_run_long_enough_to_record_every_step_kind(make_trainer, tmp_path,
                                                                  model):
    """tests/test_gpu.py's premise, on the CPU: its runs reach both levels' updates, and the
    emulated capture records all four step kinds."""
    trainer = make_trainer(tmp_path, model, "cpu", capture="emulate")
    for _ in range(GPU_TEST_STEPS):
        trainer.advance()
    assert_both_levels_update(trainer)
    assert set(trainer.graphs.entries) == STEP_KINDS


@pytest.mark.slow
def test_the_gpu_check_runs_end_to_end_on_a_cpu(tmp_path):
    """benchmarks/gpu_check.py is the one command a GPU machine runs: every part runs here in
    --quick mode (the gpu tests collect and skip) and writes the summary. A GPU machine may
    have no hflow installed (nothing can be fetched there): here an installed hflow that does
    not import stands in front of it on PYTHONPATH, and every part must still import this
    checkout's."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    shadow = tmp_path / "site" / "hflow"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('not this checkout')\n")
    env = dict(os.environ, PYTHONPATH=str(shadow.parent))
    out = tmp_path / "check.md"
    done = subprocess.run([sys.executable, str(root / "benchmarks" / "gpu_check.py"), "--quick",
                           "--device", "cpu", "--out", str(out)], capture_output=True,
                          text=True, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    summary = out.read_text()
    assert "FAILED" not in summary and f"hflow from {root}" in summary
    # the 6 gpu tests are collected: skipped here, run where CUDA is
    assert "`6 skipped in" in summary or "`6 passed in" in summary
    for section in ("## gpu tests", "## training throughput", "| ours | 2 |",
                    "## 2 jobs sharing the device", "jobs at once",
                    "## env step vs mujoco.rollout", "K =   2",
                    "## Adam: hflow's and torch.optim's", "bit-identical after 50 steps: True"):
        assert section in summary, section


def test_the_gpu_check_runs_the_parts_asked_for(tmp_path):
    """`--parts` picks parts (a second call finishes a check cut short by a time limit); an
    unknown part is a one-line error naming the allowed ones."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.py"
    out = tmp_path / "env.md"
    done = subprocess.run([sys.executable, str(script), "--quick", "--device", "cpu",
                           "--parts", "env", "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = out.read_text()
    assert "## env step vs mujoco.rollout" in summary and "## training" not in summary
    assert not list(tmp_path.glob("*.tmp"))
    bad = subprocess.run([sys.executable, str(script), "--parts", "env,gpus"],
                         capture_output=True, text=True)
    assert bad.returncode == 2
    assert "--parts 'env,gpus': unknown gpus; allowed: tests, throughput, concurrent, env" \
        in bad.stderr
