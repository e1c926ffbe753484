"""hflow.agents.level: one update of one level, as the loop, the tests and the benchmarks run it."""

import numpy as np
import pytest
import torch
from conftest import advance_until_both_update

from hflow.config import RESUMABLE_CHANGES
from hflow.metrics import LEVEL_METRICS, LOSSES, METRIC_COLUMNS, RELABEL_METRICS


@pytest.mark.parametrize("model", ["hiro", "ours"])
def test_each_level_logs_what_it_declares(make_trainer, tmp_path, model):
    trainer = advance_until_both_update(make_trainer(tmp_path, model, "cpu"))
    assert [level.name for level in trainer.levels] == ["low", "high"]  # the loop's order
    for level in trainer.levels:
        logged = set()
        for _ in range(2):  # policy delay 2: the actor's step, then HIRO's momentum step
            metrics = level.update()
            assert all(v.shape == (2,) for v in metrics.values())
            logged |= set(metrics)
        declared = set(LEVEL_METRICS[level.name])
        # HIRO's correction has no flow inverse to check on the stored values
        missing = {"stored_round_trip_error"} if level.name == "high" and model == "hiro" \
            else set()
        assert logged == declared - missing, (level.name, logged ^ declared)
    columns = [f"{name}_{m}" for name in ("low", "high") for m in LEVEL_METRICS[name]]
    assert set(columns) == set(LOSSES) | set(RELABEL_METRICS) <= set(METRIC_COLUMNS)


def test_an_update_draws_its_numbers_from_its_own_streams_in_a_fixed_order(make_trainer,
                                                                           tmp_path):
    """Replay indices, then target noise, then HIRO's candidate noise, each from the level's
    own stream: with those three streams put back, the level draws the same batch again (a
    draw from any other stream would have moved on)."""
    trainer = advance_until_both_update(make_trainer(tmp_path, "hiro", "cpu"))
    high = trainer.levels[1]
    saved = {k: trainer.rng[k].state_dict() for k in ("replay_hi", "noise_hi", "correction")}
    first = {**high.replay.sample(high.batch_size, high.streams["replay"]), **high.draws()}
    for k, state in saved.items():
        trainer.rng[k].load_state_dict(state)
    again = {**high.replay.sample(high.batch_size, high.streams["replay"]), **high.draws()}
    assert first.keys() == again.keys() and {"noise", "candidate_noise"} <= set(first)
    assert all(torch.equal(first[k], again[k]) for k in first)


def test_resumable_keys_are_the_run_shape_keys_only():
    """The keys marked resumable change how a run goes, never its numbers."""
    assert set(RESUMABLE_CHANGES) == {
        "train.steps", "train.checkpoint_every", "train.checkpoints_kept", "train.torch_threads",
        "train.env_threads", "train.capture", "train.tensorboard"}


def test_low_level_replay_puts_each_transition_back_at_its_env_step(train_cmd, tmp_path):
    """benchmarks/low_level_replay.py: the slot-to-step map of a full and of a partly filled
    buffer, and the script on a real run's state (tiny: 600 steps into a 400-slot buffer)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root / "benchmarks"))
    from low_level_replay import written_steps

    # 10 slots, step 23: slots 0-2 hold steps 20-22, slots 3-9 steps 13-19
    assert written_steps(23, 3, 10, 10).tolist() == [20, 21, 22, 13, 14, 15, 16, 17, 18, 19]
    assert written_steps(7, 7, 7, 10).tolist() == list(range(7))
    subprocess.run(train_cmd(tmp_path, extra=["low.buffer_size=400"]), check=True)
    done = subprocess.run([sys.executable, str(root / "benchmarks" / "low_level_replay.py"),
                           str(tmp_path / "state-seeds-0-1"), "--window", "100"],
                          capture_output=True, text=True, check=True)
    rows = [line.split() for line in done.stdout.splitlines() if line.strip()[:1].isdigit()]
    # steps 200-599 are in the buffer: four windows, two members per column, finite numbers
    assert [r[0] for r in rows] == ["200-300", "300-400", "400-500", "500-600"], rows
    assert all(len(r) == 1 + 4 * 2 and all(np.isfinite(float(v)) for v in r[1:])
               for r in rows), rows
