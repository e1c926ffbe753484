"""The training loop: K members equal separate runs, determinism, resume after a kill, the NaN
guard, every preset trains, rollouts of the saved policy, TensorBoard."""

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
import torch
from conftest import tiny_sets
from emulation import emulate

from hflow.agents.hiro import HierarchicalAgent
from hflow.agents.registry import PRESETS
from hflow.checkpoint import list_checkpoints, with_checksum
from hflow.cli import main
from hflow.metrics import (
    LOW_LEVEL_METRICS,
    METRIC_COLUMNS,
    TIMING_COLUMNS,
    NonFiniteLossError,
    read_metrics,
)
from hflow.resolve import resolve
from hflow.run import Run


@pytest.fixture(scope="session")
def cmd(train_cmd):
    def make(out, steps=600, seeds="0,1", extra=()):
        return train_cmd(out, steps, seeds, extra)

    return make


def _metrics(out, seed):
    rows = read_metrics(out / f"seed{seed}" / "metrics.csv")
    return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in rows]


def _same(rows_a, rows_b):
    assert len(rows_a) == len(rows_b)
    for a, b in zip(rows_a, rows_b):
        for k in a:
            assert (a[k] == b[k]) or (np.isnan(a[k]) and np.isnan(b[k])), (k, a, b)


@pytest.fixture(scope="module")
def uninterrupted(cmd, tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    subprocess.run(cmd(out), check=True)
    return out


def test_same_seeds_give_identical_metrics(cmd, uninterrupted, tmp_path):
    subprocess.run(cmd(tmp_path), check=True)
    for seed in (0, 1):
        _same(_metrics(uninterrupted, seed), _metrics(tmp_path, seed))
    rows = read_metrics(uninterrupted / "seed0" / "metrics.csv")
    assert [r["step"] for r in rows] == [0, 200, 400, 600]
    per_target = [f"{m}_{t}" for t in ("8_0", "8_8", "0_8")
                  for m in ("eval_reward", "eval_success", "eval_distance")]
    assert list(rows[0]) == [*METRIC_COLUMNS, *per_target]  # PointMaze: HIRO's three targets
    record = json.loads((uninterrupted / "seed1" / "config.json").read_text())
    assert record["seed"] == 1 and record["config"]["model"] == "hiro"
    assert record["goal_space"]["subgoal_names"] == ["x", "y"]  # HIRO's hiro_xy for the point
    assert {"torch", "mujoco", "gymnasium", "git_commit"} <= set(record["versions"])
    machine = record["versions"]["machine"]  # what bit-for-bit equality depends on
    assert machine["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert machine["cpu"] and machine["platform"]
    assert (uninterrupted / "seed1" / "policy.pt").stat().st_size > 0


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_run_resumes_to_identical_metrics(cmd, uninterrupted, tmp_path, sig):
    proc = subprocess.Popen(cmd(tmp_path))
    state = tmp_path / "state-seeds-0-1"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if any("000000200" in p.name for p in list_checkpoints(state)):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    os.kill(proc.pid, sig)
    proc.wait()
    assert not (tmp_path / "seed0" / "policy.pt").exists()
    done = subprocess.run(cmd(tmp_path), check=True, capture_output=True, text=True)
    assert "resumed from" in done.stdout
    for seed in (0, 1):
        _same(_metrics(uninterrupted, seed), _metrics(tmp_path, seed))


def test_env_threads_give_identical_metrics(cmd, uninterrupted, tmp_path):
    subprocess.run(cmd(tmp_path, extra=["train.env_threads=2"]), check=True)
    for seed in (0, 1):
        _same(_metrics(uninterrupted, seed), _metrics(tmp_path, seed))


def test_emulated_capture_resumes_to_identical_metrics(uninterrupted, tmp_path):
    """Steps through the CUDA graphs' buffers (emulated on the CPU), stopped at 400 and
    resumed (the steps are recorded anew): the eager run's metrics exactly."""
    sets = tiny_sets("hiro", ["train.eval_every=200", "task.name=PointMazeSingle"])
    for steps in (400, 600):  # the uninterrupted run's command, in-process
        cfg = resolve("hiro", options={"train.seeds": [0, 1], "train.steps": steps}, sets=sets)
        run = Run(cfg, tmp_path, progress=False)
        emulate(run.trainer)
        run.run()
    for seed in (0, 1):
        _same(_metrics(uninterrupted, seed), _metrics(tmp_path, seed))


def test_corrupt_latest_checkpoint_falls_back_to_previous(cmd, uninterrupted, tmp_path):
    subprocess.run(cmd(tmp_path, steps=400), check=True)
    latest = list_checkpoints(tmp_path / "state-seeds-0-1")[-1]
    assert latest.name.endswith("000000400.pt")
    latest.write_bytes(latest.read_bytes()[:1000])  # a torn write
    done = subprocess.run(cmd(tmp_path), check=True, capture_output=True, text=True)
    assert "cannot be read" in done.stderr and "falling back" in done.stderr
    assert "at step 200" in done.stdout
    for seed in (0, 1):
        _same(_metrics(uninterrupted, seed), _metrics(tmp_path, seed))


def test_sparser_checkpoints_resume_to_identical_metrics(cmd, uninterrupted, tmp_path):
    """Checkpoints every 400 steps: a run stopped at 400 resumes there, metrics unchanged."""
    subprocess.run(cmd(tmp_path, steps=400, extra=["train.checkpoint_every=400"]), check=True)
    kept = [p.name for p in list_checkpoints(tmp_path / "state-seeds-0-1")]
    assert kept == ["checkpoint-000000000000.pt", "checkpoint-000000000400.pt"]
    subprocess.run(cmd(tmp_path, extra=["train.checkpoint_every=400"]), check=True)
    for seed in (0, 1):
        _same(_metrics(uninterrupted, seed), _metrics(tmp_path, seed))


def test_resume_refuses_a_different_configuration(cmd, uninterrupted, tmp_path):
    subprocess.run(cmd(tmp_path, steps=200), check=True)
    bad = subprocess.run(cmd(tmp_path, extra=["td3.gamma=0.9"]), capture_output=True,
                         text=True)
    assert bad.returncode == 2
    assert "td3.gamma: 0.99 -> 0.9" in bad.stderr


def test_non_finite_loss_stops_with_step_member_and_loss(tiny, tmp_path, monkeypatch):
    cfg = resolve("hiro", options={"train.seeds": [0, 1], "train.steps": 600},
                  sets=tiny("hiro", ["task.name=PointMazeSingle"]))
    original = HierarchicalAgent.intrinsic_reward
    calls = {"n": 0}

    def poisoned(self, next_goal):
        calls["n"] += 1
        reward = original(self, next_goal)
        if calls["n"] > 250:  # from env step 251 on, member 1's rewards are NaN
            reward = reward.clone()
            reward[1] = float("nan")
        return reward

    monkeypatch.setattr(HierarchicalAgent, "intrinsic_reward", poisoned)
    monkeypatch.chdir(tmp_path)
    run = Run(cfg, tmp_path, progress=False)
    with pytest.raises(NonFiniteLossError,
                       match=r"'low_critic' of member 1 \(seed 1\).*step 2\d\d"):
        run.run()
    kept = list_checkpoints(tmp_path / "state-seeds-0-1")
    assert kept[-1].name.endswith("000000200.pt")
    state = torch.load(kept[-1], weights_only=False)
    assert all(torch.isfinite(v).all() for v in state["agent"].values()
               if isinstance(v, torch.Tensor) and v.is_floating_point())








def test_rollout_replays_the_evaluation_of_the_saved_policy(uninterrupted, tmp_path, capsys):
    """`hflow rollout` runs the saved policy as the evaluation did: same starts, same final
    distances; and draws them."""
    from hflow.rollout import cut_off, rollout_figure, rollouts

    cfg, runs = rollouts(uninterrupted / "seed1", episodes=2)  # tiny runs evaluate 2 episodes
    last = read_metrics(uninterrupted / "seed1" / "metrics.csv")[-1]
    for name, target in (("8_0", (8.0, 0.0)), ("8_8", (8.0, 8.0)), ("0_8", (0.0, 8.0))):
        mine = [r for r in runs if r["target"] == target]
        assert len(mine) == 2
        assert np.mean([r["distance"] for r in mine]) == pytest.approx(
            last[f"eval_distance_{name}"], abs=1e-9)
        for r in mine:
            assert r["path"].shape == (101, 2) and len(r["subgoals"]) == 10
            assert np.abs(r["path"][0]).max() < 0.2  # starts at the origin (+- reset noise)
    from hflow.rollout import subgoal_stats

    c = cfg.hierarchy.c
    for row, name in zip(subgoal_stats(cfg, runs), ("8_0", "8_8", "0_8")):
        assert row["episodes"] == 2 and row["success"] == last[f"eval_success_{name}"]
        mine = [r for r in runs if r["target"] == row["target"]]
        # by hand: a subgoal's position vs where the robot was c steps after it was set
        misses = [np.linalg.norm(r["path"][(k + 1) * c] - goal) for r in mine
                  for k, (_, goal) in enumerate(r["subgoals"]) if (k + 1) * c <= 100]
        reach = [np.linalg.norm(goal - start) for r in mine for start, goal in r["subgoals"]]
        assert row["low_miss"] == pytest.approx(np.mean(misses))
        assert row["subgoal_reach"] == pytest.approx(np.mean(reach))
        assert 0 <= row["at_bound"] <= 1
    # policy.pt holds seed 1's own networks: one member (two for the twin critic)
    saved = torch.load(uninterrupted / "seed1" / "policy.pt", weights_only=True)
    assert saved["seed"] == 1 and saved["format"] == 3 and "checksum" in saved
    for net, rows in (("high_actor", 1), ("low_actor", 1), ("high_critic", 2),
                      ("low_critic", 2)):
        weights = [t for name, t in saved["nets"][net].items() if name.endswith("weight")]
        assert weights and all(t.shape[0] == rows for t in weights), net
    # a policy.pt of format 1 (the group's networks, levels named hi/lo): one line, no replay
    old_dir = tmp_path / "format1"
    old_dir.mkdir()
    torch.save(with_checksum({"config": saved["config"], "seeds": [0, 1], "member": 1,
                              "nets": {}}), old_dir / "policy.pt")
    assert main(["rollout", str(old_dir), "-o", str(tmp_path / "old.png")]) == 2
    assert "policy format 1; this hflow reads formats 2 and 3" in capsys.readouterr().err
    fig = rollout_figure(cfg, runs)  # every title and the legend inside the picture
    assert cut_off(fig) == [] and fig.legends
    assert main(["rollout", str(uninterrupted / "seed1"), "-o", str(tmp_path / "r.png")]) == 0
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    assert "low miss" in capsys.readouterr().out
    assert main(["rollout", str(tmp_path), "-o", str(tmp_path / "x.png")]) == 2


def test_a_damaged_or_planted_policy_is_a_one_line_error(uninterrupted, tmp_path, capsys):
    """`hflow rollout` on a truncated, bit-flipped or crafted policy.pt: one line naming the
    file, nothing run."""
    import os
    import pickle

    from hflow.cli import main

    good = (uninterrupted / "seed1" / "policy.pt").read_bytes()
    cases = {"truncated": good[:len(good) // 2]}
    saved = torch.load(uninterrupted / "seed1" / "policy.pt", weights_only=True)
    weight = next(k for k in saved["nets"]["low_actor"] if k.endswith("weight"))
    saved["nets"]["low_actor"][weight][0, 0, 0] += 1e-3  # changed after the checksum
    flipped = tmp_path / "flipped.pt"
    torch.save(saved, flipped)
    cases["changed"] = flipped.read_bytes()
    marker = tmp_path / "RAN"

    class Planted:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    cases["planted"] = pickle.dumps({"format": 3, "nets": Planted()})
    expected = {"truncated": "cannot be read", "changed": "do not match the checksum",
                "planted": "is not a policy.pt hflow wrote"}
    for name, data in cases.items():
        seed_dir = tmp_path / name
        seed_dir.mkdir()
        (seed_dir / "policy.pt").write_bytes(data)
        capsys.readouterr()
        assert main(["rollout", str(seed_dir), "-o", str(tmp_path / "x.png")]) == 2, name
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expected[name] in err, (name, err)
    assert not marker.exists()


def test_tensorboard_holds_the_metrics_and_every_loss_value(cmd, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    subprocess.run(cmd(tmp_path, steps=400, extra=["train.tensorboard=true"]), check=True)
    events = EventAccumulator(str(tmp_path / "seed1" / "tensorboard"))
    events.Reload()
    rows = read_metrics(tmp_path / "seed1" / "metrics.csv")
    reward = events.Scalars("metrics/eval_reward")
    assert [e.step for e in reward] == [r["step"] for r in rows]
    assert [e.value for e in reward] == pytest.approx([r["eval_reward"] for r in rows])
    # the low-level critic updates every step from the end of the 100-step warm-up
    assert [e.step for e in events.Scalars("loss/low_critic")] == list(range(100, 401))
    assert "metrics/eval_success_0_8" in events.Tags()["scalars"]


@pytest.mark.parametrize("model", list(PRESETS))
def test_every_preset_trains_on_a_point_task(tiny, model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = resolve(model, options={"task.name": "BallPushSingle", "train.seeds": [0, 1],
                                  "train.steps": 400}, sets=tiny(model))
    Run(cfg, tmp_path, progress=False).run()
    for seed in (0, 1):
        rows = read_metrics(tmp_path / f"seed{seed}" / "metrics.csv")
        assert [r["step"] for r in rows] == [0, 200, 400]
        last = rows[-1]
        for col in ("eval_reward", "low_critic", "low_actor", "high_critic", "high_actor"):
            assert last[col] == last[col] and abs(last[col]) < 1e6, (model, col, last[col])
        assert (last["high_relabel_shift"] > 0) == PRESETS[model].off_policy_correction
        assert (last["high_segments_kept"] < 1) == PRESETS[model].off_policy_correction
        for col in LOW_LEVEL_METRICS:
            assert np.isfinite(last[col]), (model, col)


def _weights(run, member):
    actor = run.trainer.agent.low.actor.net
    return [layer.weight[member].detach().clone() for layer in actor.layers]


def test_k_members_match_separate_runs(tiny, tmp_path):
    """K = 2 with seeds (3, 4) against K = 1 runs of 3 and of 4, over the first updates."""
    sets = tiny("hiro", ["task.name=PointMazeSingle", "train.steps=300"])
    group = Run(resolve("hiro", options={"train.seeds": [3, 4]}, sets=sets),
                tmp_path / "group", progress=False)
    group.run()
    for k, seed in enumerate((3, 4)):
        alone = Run(resolve("hiro", options={"train.seeds": [seed]}, sets=sets),
                    tmp_path / f"alone{seed}", progress=False)
        alone.run()
        for wg, wa in zip(_weights(group, k), _weights(alone, 0)):
            assert torch.allclose(wg, wa, atol=1e-5), (seed, (wg - wa).abs().max())
        rows_g, rows_a = group.metrics[k].rows, alone.metrics[0].rows
        for rg, ra in zip(rows_g, rows_a, strict=True):
            for col in ("eval_reward", "train_return", "low_critic", "high_critic"):
                assert np.isclose(rg[col], ra[col], rtol=1e-4, equal_nan=True), (seed, col)


def test_the_low_levels_own_metrics_of_a_scripted_low_level(tiny, tmp_path, monkeypatch):
    """A low level that never moves under a high level that alternates the subgoals (3, 4)
    and (0.3, 0.4): every step's intrinsic reward is minus the goal's size, no segment gets
    closer (distance left 1, x, y progress 0), and one in two ends within 1.0 of its subgoal.
    (The point's reset velocity drifts it by millimetres: hence the tolerance.)"""
    goals = iter(torch.tensor([[3.0, 4.0], [0.3, 0.4]]).repeat(10_000, 1))

    def scripted_high(self, inputs):
        return {"goal": next(goals).expand(inputs["state"].shape[0], 1, 2).clone()}

    def still_low(self, inputs):
        return {"action": torch.zeros(inputs["state"].shape[0], 1, 2)}

    monkeypatch.setattr(HierarchicalAgent, "explore_high", scripted_high)
    monkeypatch.setattr(HierarchicalAgent, "explore_low", still_low)
    monkeypatch.chdir(tmp_path)
    cfg = resolve("hiro", options={"train.seeds": [0, 1], "train.steps": 400},
                  sets=tiny("hiro", ["task.name=PointMazeSingle", "train.eval_every=200"]))
    Run(cfg, tmp_path, progress=False).run()
    for seed in (0, 1):
        rows = read_metrics(tmp_path / f"seed{seed}" / "metrics.csv")
        assert np.isnan(rows[0]["low_intrinsic_reward"])  # step 0: nothing yet
        for row in rows[1:]:
            assert row["low_intrinsic_reward"] == pytest.approx(-(5.0 + 0.5) / 2, abs=5e-3)
            assert row["low_subgoal_distance_left"] == pytest.approx(1.0, abs=5e-3)
            assert row["low_subgoal_reached"] == 0.5
            assert row["low_subgoal_xy_progress"] == pytest.approx(0.0, abs=5e-3)


def test_the_low_level_tally_of_known_segments():
    """Two members, three segments: the tally's rows follow the definitions. Subgoals are
    (x, y, z): the x, y progress leaves z out."""
    from hflow.train import LowLevelTally

    def goals(x, z):  # [K = 2, 1, 3]: member k's subgoal (x[k], 0, z[k])
        return torch.tensor([[[x[0], 0.0, z[0]]], [[x[1], 0.0, z[1]]]])

    tally = LowLevelTally(2, torch.device("cpu"), reached_within=1.0)
    # member 0 gets half way twice, then within 1.0; member 1 reaches the second and third;
    # member 1's z part (3, growing to 4) keeps it from the first subgoal's reach
    for start, end in (((4.0, 0.0, 0.0, 3.0), (2.0, 0.0, 0.0, 4.0)),
                       ((2.0, 0.5, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0)),
                       ((2.0, 0.5, 0.0, 0.0), (0.5, 0.2, 0.0, 0.0))):
        first = goals(start[:2], start[2:])
        tally.begin_segment(first)
        for _ in range(2):
            tally.add_step(-torch.linalg.vector_norm(first, dim=-1, keepdim=True))
        tally.end_segment(goals(end[:2], end[2:]))
    first, second = tally.take()
    assert first == {"low_intrinsic_reward": pytest.approx(-8 / 3),
                     "low_subgoal_distance_left": pytest.approx(3.5 / 8),
                     "low_subgoal_reached": pytest.approx(1 / 3),
                     "low_subgoal_xy_progress": pytest.approx((2 + 1 + 1.5) / 3)}
    assert second == {"low_intrinsic_reward": pytest.approx(-(3 + 0.5 + 0.5) / 3),
                      "low_subgoal_distance_left": pytest.approx((4 + 0 + 0.2) / 4),
                      "low_subgoal_reached": pytest.approx(2 / 3),
                      "low_subgoal_xy_progress": pytest.approx((0 + 0.5 + 0.3) / 3)}
    assert all(np.isnan(v) for v in tally.take()[0].values())  # reset: nothing since


def _stopped_at_400(cmd, tmp_path):
    """A tiny run stopped at step 400, its newest checkpoint the only one: (its path, its
    state without the checksum, to be edited and saved again with_checksum)."""
    subprocess.run(cmd(tmp_path, steps=400), check=True)
    *older, newest = list_checkpoints(tmp_path / "state-seeds-0-1")
    for path in older:
        path.unlink()
    state = torch.load(newest, weights_only=True)
    state.pop("checksum")
    return newest, state


def test_a_checkpoint_of_the_previous_format_resumes_to_identical_metrics(cmd, uninterrupted,
                                                                          tmp_path):
    """Format 5 kept each level's Adam moments apart, in `optim`; format 6 holds them in the
    agent's state (the optimizers are modules). A format-5 checkpoint resumes exactly."""
    newest, state = _stopped_at_400(cmd, tmp_path)
    agent, optim = state["agent"], {}
    for level in ("high", "low"):
        for part in ("actor", "critic"):
            prefix = f"{level}.{part}_opt."
            n = sum(k.startswith(f"{prefix}exp_avg.") for k in agent)
            optim.setdefault(level, {})[part] = {
                "exp_avg": [agent.pop(f"{prefix}exp_avg.{i}") for i in range(n)],
                "exp_avg_sq": [agent.pop(f"{prefix}exp_avg_sq.{i}") for i in range(n)],
                "step": agent.pop(f"{prefix}step_count")}
    assert n > 0 and not any("_opt." in k for k in agent)  # the premise: all moved out
    state.update(version=5, optim=optim)
    torch.save(with_checksum(state), newest)
    done = subprocess.run(cmd(tmp_path), capture_output=True, text=True, check=True)
    assert "resumed from" in done.stdout and "at step 400" in done.stdout
    for seed in (0, 1):
        _same(_metrics(uninterrupted, seed), _metrics(tmp_path, seed))


def test_a_checkpoint_from_before_the_denormal_flush_resumes_to_identical_metrics(
        cmd, uninterrupted, tmp_path):
    """A checkpoint and records written before `train.flush_denormal` existed (their config
    lacks the key) resume under today's default, to the same metrics."""
    newest, state = _stopped_at_400(cmd, tmp_path)
    del state["config"]["train"]["flush_denormal"]
    torch.save(with_checksum(state), newest)
    for record in tmp_path.rglob("config.json"):
        saved = json.loads(record.read_text())
        del saved["config"]["train"]["flush_denormal"]
        saved.pop("config_hash", None)
        record.write_text(json.dumps(saved))
    done = subprocess.run(cmd(tmp_path), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "resumed from" in done.stdout and "at step 400" in done.stdout
    for seed in (0, 1):
        _same(_metrics(uninterrupted, seed), _metrics(tmp_path, seed))
