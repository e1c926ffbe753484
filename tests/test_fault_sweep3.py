"""The third fault sweep as tests: inputs that would hang a run, write outside it or replace a
result, and the weak answers it found (tracebacks, silent merges, lost evaluations). Each case
ends in one line naming the input and what to do, or in correct behaviour; all run in seconds
(the tiny runs train 400 steps in-process)."""

import copy
import json
import shutil
import time
import zipfile
from pathlib import Path

import pytest
import torch
import yaml

from hflow import HflowError
from hflow.analysis.aggregate import aggregate
from hflow.cli import main
from hflow.config import ConfigError
from hflow.grid import read_grid_file, target_figures, validate_grid
from hflow.io import remove_stale_temp_files, write_text
from hflow.metrics import MetricsCSV
from hflow.resolve import resolve
from hflow.run import Run
from hflow.runlock import HOLDER_NAME, RunLock
from hflow.train import Trainer

ROOT = Path(__file__).resolve().parent.parent
SMOKE = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())


def _tiny(tiny, steps=400, extra=()):
    return resolve("hiro", options={"train.seeds": [0, 1], "train.steps": steps},
                   sets=tiny("hiro", ["task.name=PointMazeSingle", *extra]))


@pytest.fixture(scope="module")
def finished(tiny, tmp_path_factory):
    """A finished tiny 400-step run (evaluations every 200), copied by the tests."""
    out = tmp_path_factory.mktemp("finished")
    Run(_tiny(tiny), out, progress=False).run()
    return out


# -- the five defects ----------------------------------------------------------------------------

def test_a_planted_link_at_the_lock_holder_note_is_replaced_not_followed(tmp_path):
    victim = tmp_path / "outside" / "victim.txt"
    victim.parent.mkdir()
    victim.write_text("mine")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / HOLDER_NAME).symlink_to(victim)
    with RunLock([run_dir]):
        pass
    assert victim.read_text() == "mine"
    holder = run_dir / HOLDER_NAME
    assert not holder.is_symlink() and holder.read_text().startswith("pid ")


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path):
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for prev, name in zip("abcdefg", "bcdefgh"):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")  # 9^8 = 43 million values from 300 bytes
    start = time.monotonic()
    with pytest.raises(ConfigError, match=r"bomb.yaml: expands to more than 100,000 values"):
        resolve("hiro", file=bomb)
    assert time.monotonic() - start < 5


@pytest.mark.parametrize("value", ["1e99999999", "1e5000", "1e400", "1" * 31])
def test_a_huge_number_is_refused_before_it_is_computed(value):
    start = time.monotonic()
    with pytest.raises(ConfigError, match=r"--set train.warmup: .* has more than 30 digits"):
        resolve("hiro", sets=[f"train.warmup={value}"])
    assert time.monotonic() - start < 5


def test_a_warmup_past_the_steps_is_refused():
    with pytest.raises(ConfigError, match=r"'train.warmup' = 2,500 is not below 'train.steps' "
                                          r"= 2,000: the run would never update"):
        resolve("hiro", options={"train.steps": 2000})


def test_results_without_a_record_are_not_replaced(tiny, finished, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    for record in out.glob("seed*/config.json"):
        record.unlink()
    shutil.rmtree(out / "state-seeds-0-1")
    before = (out / "seed0" / "metrics.csv").read_bytes()
    cfg = _tiny(tiny, extra=["td3.tau=0.01"])
    with pytest.raises(HflowError, match=r"seed0 holds results \(metrics.csv, policy.pt\) but "
                                         r"no config.json: a run of unknown configuration"):
        Run(cfg, out, progress=False).run()
    assert (out / "seed0" / "metrics.csv").read_bytes() == before


def test_a_resumed_tensorboard_log_holds_every_evaluation_once(tiny, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def eval_steps():
        events = EventAccumulator(str(tmp_path / "seed1" / "tensorboard"))
        events.Reload()
        return [e.step for e in events.Scalars("metrics/eval_reward")]

    Run(_tiny(tiny, extra=["train.tensorboard=true"]), tmp_path, progress=False).run()
    assert eval_steps() == [0, 200, 400]
    longer = _tiny(tiny, 600, ["train.tensorboard=true"])
    Run(longer, tmp_path, progress=False).run()  # resumes at 400's checkpoint
    assert eval_steps() == [0, 200, 400, 600]
    Run(longer, tmp_path, progress=False).run()  # a requeued finished run
    assert eval_steps() == [0, 200, 400, 600]


# -- the weak answers ----------------------------------------------------------------------------

@pytest.mark.parametrize("setting, named", [
    ("low.actor=[100000000]", "'hierarchy.hiro_candidates' = 8 with 'low.actor' = [100000000]"),
    ("hierarchy.hiro_candidates=1000000000", "'hierarchy.hiro_candidates' = 1000000000"),
    ("high.critic=[300000,300000]", "'high.critic' = [300000, 300000]"),
    ("train.eval_episodes=10000000", "'train.eval_episodes' = 10000000"),
    ("train.torch_threads=100000", "'train.torch_threads' = 100,000 but this machine has "),
])
def test_resources_that_scale_with_a_key_are_checked_before_anything_is_built(setting, named):
    cfg = resolve("hiro", options={"task.name": "AntMazeMulti"}, sets=[setting])
    with pytest.raises(HflowError, match=named.replace("[", r"\[").replace("]", r"\]")):
        Trainer(cfg)


def test_a_full_disk_while_a_policy_is_written_is_one_line(tiny, tmp_path, monkeypatch):
    real_save = torch.save

    def full(obj, f, *args, **kwargs):
        if "policy.pt" in str(f):
            raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 64 "
                               "vs 0")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(HflowError, match=r"writing .*seed0/policy.pt failed \(\[enforce fail"
                                         r".*MiB free on its filesystem: is it full\?"):
        Run(_tiny(tiny), tmp_path, progress=False).run()
    assert not list((tmp_path / "seed0").glob(".hflow-*"))


def test_temp_file_cleanup_removes_only_what_hflow_left(tmp_path):
    mine = tmp_path / ".hflow-metrics.csv.ab12_xyz.tmp"
    mine.write_text("partial")
    users = [tmp_path / ".my notes.tmp", tmp_path / ".metrics.csv.tmp"]
    for path in users:
        path.write_text("keep me")
    (tmp_path / ".x.tmp").mkdir()
    (tmp_path / ".hflow-dir.abcdefgh.tmp").mkdir()
    assert remove_stale_temp_files(tmp_path) == [mine]
    assert all(p.read_text() == "keep me" for p in users)
    write_text(tmp_path / "metrics.csv", "a\n")  # a directory named like a temp breaks nothing
    assert (tmp_path / "metrics.csv").read_text() == "a\n"


@pytest.mark.parametrize("argv", [
    ["train", "--steps", "200", "--steps", "400"],
    ["train", "--task", "PointMazeSingle", "--task", "AntMazeMulti"],
    ["train", "--model", "ours", "--model", "hiro"],
    ["rollout", "x", "-o", "a.png", "--output", "b.png"],
])
def test_a_flag_given_twice_is_an_error(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    assert "is given twice; give it once" in capsys.readouterr().err


def _config_file(tmp_path, name, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_config_files_the_reader_cannot_take_are_one_line(tmp_path):
    zipped = tmp_path / "a.zip"
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("x.yaml", "train: {steps: 10}")
    cases = {
        zipped: "is not UTF-8 text",
        _config_file(tmp_path, "u16.yaml", "train:\n  steps: 10\n".encode("utf-16")):
            "is not UTF-8 text",
        _config_file(tmp_path, "deep.yaml", ("a: " + "[" * 3000 + "]" * 3000).encode()):
            "nested deeper than 64 levels",
        _config_file(tmp_path, "merge.yaml", b"base: &b {gamma: 0.9}\ntd3:\n  <<: *b\n"):
            r"merge keys \(<<\) are not read \(line 3",
    }
    for path, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            resolve("hiro", file=path)
    bom = _config_file(tmp_path, "bom.yaml", "\ufefftd3:\n  tau: 0.01\n".encode())
    assert resolve("hiro", file=bom).td3.tau == 0.01


def test_grid_values_that_fail_only_when_run_are_refused_up_front(tmp_path):
    grid = copy.deepcopy(SMOKE)
    grid["steps"] = "1e400"
    text = yaml.safe_dump(grid).replace("'1e400'", "1e400")
    with pytest.raises(ConfigError, match="has more than 30 digits"):
        read_grid_file(_config_file(tmp_path, "g.yaml", text.encode()))
    nul = copy.deepcopy(SMOKE)
    nul["out"] = "results/a\0b"
    with pytest.raises(ConfigError, match="out 'results/a\\\\x00b' holds a NUL byte"):
        validate_grid(nul)
    long = copy.deepcopy(SMOKE)
    long["figures"]["f" * 300] = long["figures"].pop("fig5")
    with pytest.raises(ConfigError, match="is 300 characters; its files"):
        validate_grid(long)


def test_plan_reads_targets_as_snakemake_matches_them():
    grid = read_grid_file(ROOT / "config" / "config.yaml")
    assert target_figures(grid, ["./figures//fig3.pdf", str(Path.cwd() / "figures/fig5.pdf"),
                                 "figures/table2.md"]) == ["fig3", "fig5", "all"]


def _seed(root: Path, seed: int, tau: float, rows: list[dict], bom=False) -> Path:
    directory = root / f"seed{seed}"
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps({
        "config": {"model": "hiro", "task": {"name": "AntPushSingle", "hi": 2, "lo": 15},
                   "td3": {"tau": tau}, "train": {"seeds": [seed], "steps": 1000}},
        "seed": seed, "goal_space": {"hi": 2, "lo": 15}}))
    csv = MetricsCSV(directory / "metrics.csv")
    for row in rows:
        csv.append(row)
    if bom:
        path = directory / "metrics.csv"
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    return directory / "metrics.csv"


ROW = {"step": 0, "eval_reward": -10.0, "eval_success": 0.0, "eval_distance": 9.0}


def test_aggregate_refuses_seeds_of_one_run_with_two_configurations(tmp_path):
    a = _seed(tmp_path, 0, 0.005, [ROW])
    b = _seed(tmp_path, 1, 0.01, [ROW])
    with pytest.raises(HflowError, match=r"seeds of one run but of two configurations "
                                         r"\(differ in td3.tau: 0.005 vs 0.01\)"):
        aggregate([a, b])
    c = _seed(tmp_path, 2, 0.005, [ROW], bom=True)  # other seeds and steps: one run
    assert len(aggregate([a, c])) == 2  # and the BOM is no part of `step`


def test_aggregate_names_a_non_finite_evaluation_and_a_repeated_step(tmp_path):
    bad = _seed(tmp_path / "inf", 0, 0.005, [ROW, {**ROW, "step": 1000, "eval_reward": "inf"}])
    with pytest.raises(HflowError, match=r"eval_reward = inf at step 1000; an evaluation is a "
                                         r"finite number"):
        aggregate([bad])
    twice = _seed(tmp_path / "twice", 0, 0.005, [ROW, ROW])
    with pytest.raises(HflowError, match="holds step 0 twice"):
        aggregate([twice])


def test_figures_output_must_be_the_pdf_it_writes(tmp_path, capsys):
    assert main(["figures", "--summary", "x.parquet", "--spec", "{}", "-o",
                 str(tmp_path / "f.png")]) == 2
    assert "give a .pdf path" in capsys.readouterr().err
    assert not (tmp_path / "f.png").exists()


def test_rollout_names_a_policy_that_is_not_this_directorys(finished, tmp_path):
    from hflow.rollout import load_policy

    moved = tmp_path / "seed1"
    shutil.copytree(finished / "seed1", moved)
    shutil.copy(finished / "seed0" / "policy.pt", moved / "policy.pt")
    with pytest.raises(HflowError, match=r"holds seed 0's policy but .*config.json records "
                                         r"seed 1"):
        load_policy(moved)
