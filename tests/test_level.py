"""hflow.agents.level: one update of one level, as the loop, the tests and the benchmarks run it."""

import pytest
import torch
from conftest import advance_until_both_update

from hflow.agents.level import flushing_denormals
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
    """The keys marked resumable change how a run goes (its length, checkpoints, threads,
    capture, logs, the denormal flush), not what it trains."""
    assert set(RESUMABLE_CHANGES) == {
        "train.steps", "train.checkpoint_every", "train.checkpoints_kept", "train.torch_threads",
        "train.env_threads", "train.capture", "train.tensorboard", "train.flush_denormal"}


def test_flushing_denormals_holds_inside_the_block_only():
    denormal = torch.tensor([1e-39])
    assert (denormal * 0.5).item() != 0  # torch's default: denormals computed
    with flushing_denormals(True):
        assert (denormal * 0.5).item() == 0 and (denormal + 0).item() == 0
    assert (denormal * 0.5).item() != 0  # back to the default afterwards
    with flushing_denormals(False):
        assert (denormal * 0.5).item() != 0


@pytest.mark.parametrize("flush", [True, False])
def test_a_levels_update_runs_with_denormals_flushed_as_configured(make_trainer, tmp_path,
                                                                   monkeypatch, flush):
    """train.flush_denormal: each update of each level inside the flush, nothing else (the
    env steps and acting outside it)."""
    trainer = advance_until_both_update(make_trainer(tmp_path, "hiro", "cpu"))
    for level in trainer.levels:
        level.flush_denormal = flush  # as make_levels sets it from the config
    while not all(level.due(trainer.step + 1) for level in trainer.levels):
        trainer.advance()  # to a step where both levels update
    calls = []
    monkeypatch.setattr(torch, "set_flush_denormal", lambda on: calls.append(on) or True)
    trainer.advance()
    assert calls == ([True, False] * 2 if flush else [])
    assert trainer.cfg.train.flush_denormal  # the default
