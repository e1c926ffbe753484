"""Training stays the training that produced the committed results: the tiny configurations
train bit for bit as at BASELINE, both run here, on this machine, side by side (a bitwise
comparison holds on one machine only: recorded digests would differ between CPUs whose float
kernels differ). A change that is meant to change training moves BASELINE to its own commit
and says so; the learning suite's committed rows then need their rerun."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import tiny_sets

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "085cb2b1ced55e1ef4e81ddfea62d33359c110fe"  # the last training change before it
STEPS = 450  # both levels update: the high level from about step 420 in the tiny setting
CASES = [(model, task) for model in ("hiro", "ours", "ours_alg2", "ma")
         for task in ("PointMazeMulti", "AntMazeMulti")]

# Run in a fresh process on the checkout named by PYTHONPATH: a digest of every tensor of the
# agent's state (networks, targets, optimizer moments) and of every loss of every update.
DIGEST = """
import hashlib, json, sys
import torch
from hflow.resolve import resolve
from hflow.train import Trainer
torch.set_num_threads(1)
out = {}
for model, task, sets in json.loads(sys.argv[1]):
    cfg = resolve(model, options={"train.seeds": [0, 1], "train.steps": 1000}, sets=sets)
    trainer = Trainer(cfg)
    for _ in range(int(sys.argv[2])):
        trainer.advance()
    h = hashlib.sha256()
    for name, value in trainer.agent.state_dict().items():
        if isinstance(value, torch.Tensor):
            h.update(name.encode())
            h.update(value.cpu().contiguous().numpy().tobytes())
    for name, logged in sorted(trainer.loss_log.state_dict().items()):
        h.update(name.encode())
        h.update(logged["values"].numpy().tobytes())
    out[f"{model} {task}"] = [trainer.agent.low.updates, trainer.agent.high.updates,
                              h.hexdigest()]
print(json.dumps(out))
"""


def _digests(checkout: Path) -> dict:
    cases = [(model, task, tiny_sets(model, [f"task.name={task}", "train.device=cpu"]))
             for model, task in CASES]
    done = subprocess.run([sys.executable, "-c", DIGEST, json.dumps(cases), str(STEPS)],
                          env={"PYTHONPATH": str(checkout), "OMP_NUM_THREADS": "1",
                               "PATH": "/usr/bin:/bin"},
                          cwd=checkout, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_tiny_configurations_train_as_at_the_baseline(tmp_path):
    baseline = tmp_path / "baseline"
    made = subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q",
                           str(baseline), BASELINE], capture_output=True, text=True)
    assert made.returncode == 0, (
        f"needs commit {BASELINE[:12]} in this clone's history (a full `git clone`, not "
        f"--depth): {made.stderr.strip()}")
    try:
        then, now = _digests(baseline), _digests(ROOT)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                        str(baseline)], check=False)
    assert all(low > 0 and high > 0 for low, high, _ in now.values()), now  # both levels
    differ = {case: (then[case], now[case]) for case in now if then[case] != now[case]}
    assert not differ, f"training differs from {BASELINE[:12]}: {differ}"


@pytest.mark.parametrize("model", ["hiro"])
def test_the_digest_sees_a_one_ulp_change(model):
    """The comparison is no blanket: one run with the target noise scaled by (1 + 2^-23)
    gives another digest."""
    cases = [(model, "PointMazeMulti",
              tiny_sets(model, ["task.name=PointMazeMulti", "train.device=cpu"]))]
    digests = []
    for noise in (0.2, 0.2 * (1 + 2 ** -23)):
        cases[0][2].append(f"td3.target_noise={noise!r}")
        done = subprocess.run([sys.executable, "-c", DIGEST, json.dumps(cases), "150"],
                              env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
                                   "PATH": "/usr/bin:/bin"},
                              cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        digests.append(json.loads(done.stdout.strip().splitlines()[-1]))
        cases[0][2].pop()
    assert digests[0] != digests[1]
