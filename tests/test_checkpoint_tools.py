"""The benchmarks that read a run's checkpoint (no env steps, no training): what they compute
on known tensors, and each script on a real tiny run's state."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from low_level_replay import written_steps  # noqa: E402
from relabel_range import element_table  # noqa: E402


def _script(name, *args):
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / name), *map(str, args)],
                          capture_output=True, text=True)


def test_low_level_replay_puts_each_transition_back_at_its_env_step(train_cmd, tmp_path):
    """benchmarks/low_level_replay.py: the slot-to-step map of a full and of a partly filled
    buffer, and the script on a real run's state (tiny: 600 steps into a 400-slot buffer)."""
    # 10 slots, step 23: slots 0-2 hold steps 20-22, slots 3-9 steps 13-19
    assert written_steps(23, 3, 10, 10).tolist() == [20, 21, 22, 13, 14, 15, 16, 17, 18, 19]
    assert written_steps(7, 7, 7, 10).tolist() == list(range(7))
    subprocess.run(train_cmd(tmp_path, extra=["low.buffer_size=400"]), check=True)
    done = _script("low_level_replay.py", tmp_path / "state-seeds-0-1", "--window", "100")
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines() if line.strip()[:1].isdigit()]
    # steps 200-599 are in the buffer: four windows, two members per column, finite numbers
    assert [r[0] for r in rows] == ["200-300", "300-400", "400-500", "500-600"], rows
    assert all(len(r) == 1 + 4 * 2 and all(np.isfinite(float(v)) for v in r[1:])
               for r in rows), rows


def test_relabel_range_counts_each_element_over_the_segments():
    bound = torch.tensor([10.0, 0.5])
    # one member, four segments: x outside in one (-12), z outside in three (0.6, -1.5, 2.0)
    raw = torch.tensor([[[1.0, 0.6], [-12.0, -1.5], [5.0, 2.0], [10.0, 0.5]]])
    stored = torch.tensor([[[10.0, 0.5], [-10.0, 0.25], [2.0, 0.5], [4.0, -0.5]]])
    table = element_table(raw, stored, bound)
    assert table["outside"].tolist() == [[0.25, 0.75]]  # |10| and |0.5| are in range
    # torch's median of an even count is the lower middle value
    # |x| / 10: 0.1, 1.2, 0.5, 1.0; |z| / 0.5: 1.2, 3, 4, 1
    assert table["relabel"][0].tolist() == pytest.approx([0.5, 1.2])
    assert table["stored"][0].tolist() == pytest.approx([0.4, 1.0])


@pytest.mark.parametrize("model", ["ours", "hiro"])
def test_relabel_range_on_a_real_state(train_cmd, tmp_path, model):
    subprocess.run(train_cmd(tmp_path, steps=400, model=model), check=True)
    done = _script("relabel_range.py", tmp_path / "state-seeds-0-1", "--segments", 64)
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()[2:]]
    assert [r[0] for r in rows] == ["x", "y"]  # PointMaze's subgoal, one row per element
    values = np.array([[float(v) for v in r[1:]] for r in rows])
    measures = 3 if model == "ours" else 1  # HIRO's candidates: the stored goals only
    assert values.shape == (2, measures * 2)  # two members each
    assert (values[:, -2:] <= 1 + 1e-6).all()  # stored goals lie inside the range
    if model == "ours":
        assert ((values[:, :2] >= 0) & (values[:, :2] <= 1)).all()  # shares
