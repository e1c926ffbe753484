"""The training loop: HIRO's correction, resume after a kill, NaN guard, determinism, config."""

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
import torch
from helpers import tiny, train_cmd

from hflow.agents.corrections import HiroCorrection
from hflow.agents.hiro import HierarchicalAgent
from hflow.checkpoint import list_checkpoints
from hflow.cli import main
from hflow.config import ConfigError
from hflow.envs import get_task, goal_space
from hflow.metrics import METRIC_COLUMNS, TIMING_COLUMNS, NonFiniteLossError, read_metrics
from hflow.resolve import resolve
from hflow.seeding import MemberRNG
from hflow.train import Trainer


class KnownLowLevel(torch.nn.Module):
    """A low level we know: a = clip(0.5 * g_xy), whatever the state."""

    def forward(self, obs):
        goal_xy = obs[..., -3:-1]  # PointMaze: obs (7) + goal (x, y, z)
        return (0.5 * goal_xy).clamp(-1, 1)

    def forward_candidates(self, state_in, goals):
        return (0.5 * goals[..., :2]).clamp(-1, 1)


def test_hiro_correction_finds_a_goal_closer_than_the_stale_one():
    cfg = resolve("hiro", sets=tiny("hiro", ["task.name=PointMazeSingle"]))
    task = get_task("PointMazeSingle")
    agent = HierarchicalAgent(cfg, task, goal_space(task), seeds=[0, 1])
    agent.lo.actor = KnownLowLevel()
    c, batch = cfg.hierarchy.c, 16
    rng = np.random.default_rng(0)
    true_goal = torch.tensor(rng.uniform(-1.5, 1.5, (2, batch, 2)), dtype=torch.float32)
    states = torch.zeros(2, batch, c + 1, 7)
    states[..., :3] = torch.tensor(rng.uniform(-3, 3, (2, batch, 1, 3)), dtype=torch.float32)
    actions = torch.zeros(2, batch, c, 2)
    goal = true_goal.clone()
    for i in range(c):  # roll the segment under the known policy: s' = s + 0.2 a
        obs = torch.cat([states[:, :, i], goal], dim=-1)
        actions[:, :, i] = agent.lo.actor(obs)
        states[:, :, i + 1] = states[:, :, i]
        states[:, :, i + 1, :2] += 0.2 * actions[:, :, i]
        goal = agent.goal_transition(states[:, :, i], goal, states[:, :, i + 1])
    stale = true_goal + torch.tensor([3.0, -3.0])  # what an older high level asked for
    batch_ = {"states": states, "actions": actions, "goal": stale}
    # sigma 0.25 x the point's half-range 10: candidates spread +-2.5, as on the goal scale
    # of the stale offset
    relabelled = HiroCorrection(8, 0.25)(agent, batch_, MemberRNG([0, 1], "correction"))
    err_new = (relabelled - true_goal)[..., :2].norm(dim=-1)
    err_old = (stale - true_goal)[..., :2].norm(dim=-1)
    assert (err_new < err_old).all()
    assert err_new.mean() < 0.5 * err_old.mean()


def _cmd(out, steps=600, seeds="0,1", extra=()):
    return train_cmd(out, steps, seeds, extra)


def _metrics(out, seed):
    rows = read_metrics(out / f"seed{seed}" / "metrics.csv")
    return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in rows]


def _same(rows_a, rows_b):
    assert len(rows_a) == len(rows_b)
    for a, b in zip(rows_a, rows_b):
        for k in a:
            assert (a[k] == b[k]) or (np.isnan(a[k]) and np.isnan(b[k])), (k, a, b)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    subprocess.run(_cmd(out), check=True)
    return out


def test_same_seeds_give_identical_metrics(uninterrupted, tmp_path):
    subprocess.run(_cmd(tmp_path), check=True)
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
    assert (uninterrupted / "seed1" / "policy.pt").stat().st_size > 0


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_run_resumes_to_identical_metrics(uninterrupted, tmp_path, sig):
    proc = subprocess.Popen(_cmd(tmp_path))
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
    done = subprocess.run(_cmd(tmp_path), check=True, capture_output=True, text=True)
    assert "resumed from" in done.stdout
    for seed in (0, 1):
        _same(_metrics(uninterrupted, seed), _metrics(tmp_path, seed))


def test_env_threads_give_identical_metrics(uninterrupted, tmp_path):
    subprocess.run(_cmd(tmp_path, extra=["train.env_threads=2"]), check=True)
    for seed in (0, 1):
        _same(_metrics(uninterrupted, seed), _metrics(tmp_path, seed))


def test_corrupt_latest_checkpoint_falls_back_to_previous(uninterrupted, tmp_path):
    subprocess.run(_cmd(tmp_path, steps=400), check=True)
    latest = list_checkpoints(tmp_path / "state-seeds-0-1")[-1]
    assert latest.name.endswith("000000400.pt")
    latest.write_bytes(latest.read_bytes()[:1000])  # a torn write
    done = subprocess.run(_cmd(tmp_path), check=True, capture_output=True, text=True)
    assert "cannot be read" in done.stderr and "falling back" in done.stderr
    assert "at step 200" in done.stdout
    for seed in (0, 1):
        _same(_metrics(uninterrupted, seed), _metrics(tmp_path, seed))


def test_sparser_checkpoints_resume_to_identical_metrics(uninterrupted, tmp_path):
    """Checkpoints every 400 steps: a run stopped at 400 resumes there, metrics unchanged."""
    subprocess.run(_cmd(tmp_path, steps=400, extra=["train.checkpoint_every=400"]), check=True)
    kept = [p.name for p in list_checkpoints(tmp_path / "state-seeds-0-1")]
    assert kept == ["checkpoint-000000000000.pt", "checkpoint-000000000400.pt"]
    subprocess.run(_cmd(tmp_path, extra=["train.checkpoint_every=400"]), check=True)
    for seed in (0, 1):
        _same(_metrics(uninterrupted, seed), _metrics(tmp_path, seed))


def test_resume_refuses_a_different_configuration(uninterrupted, tmp_path):
    subprocess.run(_cmd(tmp_path, steps=200), check=True)
    bad = subprocess.run(_cmd(tmp_path, extra=["td3.gamma=0.9"]), capture_output=True,
                         text=True)
    assert bad.returncode == 2
    assert "td3.gamma: 0.99 -> 0.9" in bad.stderr


def test_non_finite_loss_stops_with_step_member_and_loss(tmp_path, monkeypatch):
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
    trainer = Trainer(cfg, tmp_path, progress=False)
    with pytest.raises(NonFiniteLossError, match=r"'lo_critic' of member 1 \(seed 1\).*step 2\d\d"):
        trainer.run()
    kept = list_checkpoints(tmp_path / "state-seeds-0-1")
    assert kept[-1].name.endswith("000000200.pt")
    state = torch.load(kept[-1], weights_only=False)
    assert all(torch.isfinite(v).all() for v in state["agent"].values()
               if isinstance(v, torch.Tensor) and v.is_floating_point())


def test_config_errors_name_key_value_and_allowed(capsys):
    with pytest.raises(ConfigError, match=r"did you mean 'td3\.gamma'"):
        resolve("hiro", sets=["td3.gama=0.9"])
    with pytest.raises(ConfigError, match="'hierarchy.correction' = 'hirro': allowed values: "
                                          "none, hiro, flow"):
        resolve("hiro", sets=["hierarchy.correction=hirro"])
    with pytest.raises(ConfigError, match=r"'td3.batch_size' = 'big': expected an integer"):
        resolve("hiro", sets=["td3.batch_size=big"])
    with pytest.raises(ConfigError, match="must be a multiple of 'task.episode_steps'"):
        resolve("hiro", sets=["train.eval_every=1234"])
    assert main(["train", "--model", "hiro", "--out", "x", "--set", "lo.polcy=flow"]) == 2
    assert "did you mean 'lo.policy'" in capsys.readouterr().err
    assert main(["train", "--model", "hiro", "--seeds", "a,b", "--out", "x"]) == 2


def test_print_config_resolves_preset_and_overrides(capsys):
    assert main(["train", "--model", "hiro", "--task", "AntFallMulti", "--hi", "8", "--lo", "8",
                 "--set", "td3.batch_size=256", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "batch_size: 256" in out and "name: AntFallMulti" in out and "hi: 8" in out
    assert main(["train", "--help-config"]) == 0
    listed = capsys.readouterr().out
    assert "hierarchy.correction = 'hiro'  # one of none|hiro|flow; off-policy" in listed
    assert "td3.tau = 0.005  # > 0; <= 1; target network update rate" in listed


def test_options_json_layers_under_flags_and_saves_as_a_config_file(tmp_path, capsys):
    """The workflow's way in: --options (JSON) under the flags; --save-options keeps them as a
    YAML file that --config reads back to the same run."""
    options = '{"task.name": "AntFallMulti", "td3.batch_size": 64, "model": "lsp"}'
    saved = tmp_path / "jobs" / "job.yaml"
    assert main(["train", "--options", options, "--hi", "8", "--save-options", str(saved),
                 "--set", "td3.gamma=0.9", "--print-config"]) == 0
    printed = capsys.readouterr().out
    assert "batch_size: 64" in printed and "name: AntFallMulti" in printed and "hi: 8" in printed
    assert "gamma: 0.9" in printed
    assert main(["train", "--config", str(saved), "--print-config"]) == 0
    assert capsys.readouterr().out == printed
    assert main(["train", "--options", "{oops", "--out", "x"]) == 2
    assert "--options is not valid JSON" in capsys.readouterr().err
    assert main(["train", "--options", "[1, 2]", "--out", "x"]) == 2
    assert "must be a JSON object" in capsys.readouterr().err


def test_rollout_replays_the_evaluation_of_the_saved_policy(uninterrupted, tmp_path, capsys):
    """`hflow rollout` runs the saved policy as the evaluation did: same starts, same final
    distances; and draws them."""
    from hflow.rollout import rollouts

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
    assert saved["seed"] == 1 and saved["format"] == 2
    for net, rows in (("hi_actor", 1), ("lo_actor", 1), ("hi_critic", 2), ("lo_critic", 2)):
        weights = [t for name, t in saved["nets"][net].items() if name.endswith("weight")]
        assert weights and all(t.shape[0] == rows for t in weights), net
    # a policy.pt of format 1 (the group's networks and the member index) still replays
    state = torch.load(list_checkpoints(uninterrupted / "state-seeds-0-1")[-1],
                       weights_only=True)["agent"]
    old_dir = tmp_path / "format1"
    old_dir.mkdir()
    torch.save({"config": saved["config"], "seeds": [0, 1], "member": 1, "step": 600,
                "nets": {net: {k.split(".", 2)[2]: v for k, v in state.items()
                               if k.startswith(net.replace("_", ".") + ".")}
                         for net in ("hi_actor", "lo_actor")}}, old_dir / "policy.pt")
    _, old_runs = rollouts(old_dir, episodes=2)
    assert [r["distance"] for r in old_runs] == [r["distance"] for r in runs]
    assert main(["rollout", str(uninterrupted / "seed1"), "-o", str(tmp_path / "r.png")]) == 0
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    assert "low miss" in capsys.readouterr().out
    assert main(["rollout", str(tmp_path), "-o", str(tmp_path / "x.png")]) == 2


def test_tensorboard_holds_the_metrics_and_every_loss_value(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    subprocess.run(_cmd(tmp_path, steps=400, extra=["train.tensorboard=true"]), check=True)
    events = EventAccumulator(str(tmp_path / "seed1" / "tensorboard"))
    events.Reload()
    rows = read_metrics(tmp_path / "seed1" / "metrics.csv")
    reward = events.Scalars("metrics/eval_reward")
    assert [e.step for e in reward] == [r["step"] for r in rows]
    assert [e.value for e in reward] == pytest.approx([r["eval_reward"] for r in rows])
    # the low-level critic updates every step from the end of the 100-step warm-up
    assert [e.step for e in events.Scalars("loss/lo_critic")] == list(range(100, 401))
    assert "metrics/eval_success_0_8" in events.Tags()["scalars"]
