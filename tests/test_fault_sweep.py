"""The second fault sweep as tests: bad workflow configs, bad inputs to the analysis and
rollout tools, damaged files. Each case must end in one line naming the input, the value
and what is allowed (or in correct behaviour), never a traceback. The cases that need a
trained run or a Snakemake run live beside their subject (test_reliability.py,
test_trainer.py, test_pipeline.py)."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hflow.config import ConfigError
from hflow.grid import grid_runs, job_options, read_grid_file, validate_grid
from hflow.resolve import resolve

ROOT = Path(__file__).resolve().parent.parent
SMOKE = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())


def _changed(change):
    config = copy.deepcopy(SMOKE)
    change(config)
    return config


def _first_run(config):
    return config["figures"]["fig5"]["panels"][0]["runs"]


GRID_CASES = {
    "a list": ([1, 2], "at the top level: [1, 2] is not of type 'object'"),
    "an empty file": (None, "None is not of type 'object'"),
    "no steps": (_changed(lambda c: c.pop("steps")), "'steps' is a required property"),
    "steps a string": (_changed(lambda c: c.update(steps="many")),
                       "at steps: 'many' is not of type 'integer'"),
    "group_size 0": (_changed(lambda c: c.update(group_size=0)),
                     "at group_size: 0 is less than the minimum of 1"),
    "an unknown model": (_changed(lambda c: _first_run(c)[0].update(model="nosuch")),
                         "unknown model preset 'nosuch'"),
    "set: a grid key": (_changed(lambda c: c["set"].append("train.steps=5")),
                        "overrides 'train.steps', which the grid decides"),
    "set: a key twice": (_changed(lambda c: c["set"].extend(["td3.tau=0.01", "td3.tau=0.02"])),
                         "both set 'td3.tau'"),
    "empty runs": (_changed(lambda c: c["figures"]["fig5"]["panels"][0].update(runs=[])),
                   "[] should be non-empty"),
    "no figures": (_changed(lambda c: c.update(figures={})), "at figures: {} should be non-empty"),
    "a bogus target": (_changed(lambda c: c["figures"]["fig5"]["panels"][0].update(
        target="99_99")), "target '99_99' is not one of the task's evaluation targets"),
    "a bogus colour": (_changed(lambda c: _first_run(c)[0].update(color="greeen")),
                       "color 'greeen' of ours is not a matplotlib colour"),
    "a run twice in a panel": (_changed(lambda c: _first_run(c).append(dict(_first_run(c)[0]))),
                               "is given twice; give each run once per panel"),
    "a figure named fig-6": (_changed(lambda c: c["figures"].update({"fig-6": {"panels": [
        {"task": "BallFallMulti", "runs": [{"model": "ours", "hi": 3, "lo": 3}]}]}})),
        "'fig-6' does not match"),
}


@pytest.mark.parametrize("case", list(GRID_CASES))
def test_a_bad_grid_is_one_error_before_any_job(case):
    """What `hflow plan` and the Snakefile both call (validate_grid)."""
    config, message = GRID_CASES[case]
    with pytest.raises(ConfigError) as err:
        validate_grid(config)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_shipped_grids_validate():
    for name in ("config.yaml", "smoke.yaml", "point.yaml"):
        validate_grid(read_grid_file(ROOT / "config" / name), name)


def test_a_grid_file_is_read_as_written(tmp_path):
    text = (ROOT / "config" / "smoke.yaml").read_text()
    (tmp_path / "twice.yaml").write_text(text + "\nsteps: 300\n")
    with pytest.raises(ConfigError, match="key 'steps' is given twice"):
        read_grid_file(tmp_path / "twice.yaml")
    (tmp_path / "octal.yaml").write_text(text.replace("steps: 400", "steps: 0400"))
    assert read_grid_file(tmp_path / "octal.yaml")["steps"] == 400  # not octal 256


def test_plan_and_workflow_refuse_the_same_grid(tmp_path):
    """`hflow plan` exits 2 with the one line; `snakemake -n` stops at parse time too."""
    bad = GRID_CASES["a bogus colour"][0]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    plan = subprocess.run([sys.executable, "-m", "hflow.cli", "plan", "--configfile",
                           str(path)], capture_output=True, text=True, cwd=ROOT)
    assert plan.returncode == 2 and "greeen" in plan.stderr
    assert len(plan.stderr.strip().splitlines()) == 1
    dry = subprocess.run(["snakemake", "-n", "all", "--configfile", str(path)],
                         capture_output=True, text=True, cwd=ROOT)
    assert dry.returncode != 0 and "greeen" in dry.stdout + dry.stderr
    (tmp_path / "twice.yaml").write_text((ROOT / "config" / "smoke.yaml").read_text() +
                                         "\nsteps: 300\n")
    dry = subprocess.run(["snakemake", "-n", "all", "--configfile", str(tmp_path / "twice.yaml")],
                         capture_output=True, text=True, cwd=ROOT)
    assert dry.returncode != 0 and "key 'steps' is given twice" in dry.stdout + dry.stderr


def test_a_key_set_twice_is_an_error_not_last_wins():
    with pytest.raises(ConfigError, match=r"'td3.tau' is set twice \(=0.01, then =0.02\)"):
        resolve("hiro", sets=["td3.tau=0.01", "td3.tau=0.02"])
    config = _changed(lambda c: c["set"].extend(["td3.tau=0.01", "td3.tau=0.02"]))
    with pytest.raises(ConfigError, match="both set 'td3.tau'"):
        job_options(config, grid_runs(config)[0], [0, 1])


@pytest.mark.parametrize("sets,message", [
    (["task.block_shrink=0"], "'task.block_shrink'"),
    (["task.block_shrink=-1"], "'task.block_shrink'"),
    (["flow.scale_bound=0"], "'flow.scale_bound'"),
    (["flow.scale_bound=-1"], "'flow.scale_bound'"),
])
def test_bounds_of_numeric_keys(sets, message):
    with pytest.raises(ConfigError, match=message):
        resolve("ours", sets=sets)


def _cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "hflow.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd)


def test_analysis_tools_on_damaged_inputs_say_what_and_where(tmp_path):
    run = tmp_path / "runs" / "seed0"
    run.mkdir(parents=True)
    missing = _cli("aggregate", run / "metrics.csv", "-o", tmp_path / "s.parquet")
    assert missing.returncode == 2 and "metrics.csv does not exist" in missing.stderr
    (run / "metrics.csv").write_text("step,eval_reward,eval_success,eval_distance\n0,1.0,0.5")
    (run / "config.json").write_text('{"config": {"task": {"name": "PointMazeSingle"}, '
                                     '"model": "hiro"}, "goal_space": {"hi": 2, "lo": 2}, '
                                     '"seed": 0}')
    truncated = _cli("aggregate", run / "metrics.csv", "-o", tmp_path / "s.parquet")
    assert truncated.returncode == 2 and "not a metrics file hflow wrote" in truncated.stderr
    (run / "metrics.csv").write_text("step,eval_reward,eval_success,eval_distance\n0,x,0,1\n")
    words = _cli("aggregate", run / "metrics.csv", "-o", tmp_path / "s.parquet")
    assert words.returncode == 2 and "not a metrics file hflow wrote" in words.stderr
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    good_spec = '{"panels": [{"task": "PointMazeSingle", "runs": [{"model": "hiro", "hi": 2, ' \
                '"lo": 2}]}]}'
    figure = _cli("figures", "--summary", tmp_path / "bad.parquet", "--spec", good_spec, "-o",
                  tmp_path / "f.pdf")
    assert figure.returncode == 2 and "cannot be read" in figure.stderr
    table = _cli("tables", "--summary", tmp_path / "bad.parquet", "--figures", "{}", "--md",
                 tmp_path / "t.md", "--tex", tmp_path / "t.tex")
    assert table.returncode == 2 and "cannot be read" in table.stderr
    spec = '{"panels": [{"task": "PointMazeSingle", "runs": [{"model": "hiro", "hi": 2, ' \
           '"lo": 2, "color": "greeen"}]}]}'
    colour = _cli("figures", "--summary", tmp_path / "bad.parquet", "--spec", spec, "-o",
                  tmp_path / "f.pdf")
    assert colour.returncode == 2 and "'greeen' is not a matplotlib colour" in colour.stderr
    for result in (missing, truncated, words, figure, table, colour):
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_rollout_arguments_are_checked_before_loading(tmp_path):
    zero = _cli("rollout", tmp_path, "-o", tmp_path / "r.png", "--episodes", "0")
    assert zero.returncode == 2 and "--episodes 0" in zero.stderr
    kind = _cli("rollout", tmp_path, "-o", tmp_path / "r.txt")
    assert kind.returncode == 2 and "extension must be one of" in kind.stderr


def test_a_read_only_run_directory_is_one_line(tmp_path, monkeypatch):
    """As on a read-only filesystem (EROFS): simulated, since root writes through modes."""
    import errno
    import os

    from hflow import HflowError
    from hflow.runlock import RunLock

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(HflowError, match="cannot write in .*Read-only file system"), \
            RunLock([tmp_path]):
        pass


def test_a_replay_buffer_larger_than_memory_is_one_line(tiny, tmp_path):
    from hflow import HflowError
    from hflow.train import Trainer

    cfg = resolve("hiro", options={"train.seeds": [0, 1]},
                  sets=tiny("hiro", ["low.buffer_size=1e12"]))
    with pytest.raises(HflowError, match=r"low.buffer_size = 1,000,000,000,000"):
        Trainer(cfg)
