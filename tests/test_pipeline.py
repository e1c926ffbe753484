"""The Snakemake pipeline: grid planning, lint, the smoke run end to end, regeneration from
DVC-cached runs in a fresh clone, and the SLURM profile on a real single-node SLURM."""

import json
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import squeeze
from pypdf import PdfReader

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ["--configfile", "config/smoke.yaml"]


def sh(cmd, cwd, check=True, **kw):
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, **kw)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed ({result.returncode}):\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a snakemake run or dry run."""
    block = output.split("Job stats:")[1].split("total")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", block, re.M)}


def unique_runs(config_file: Path) -> set:
    config = yaml.safe_load(config_file.read_text())
    return {(p["task"], r["model"], r["hi"], r["lo"]) for f in config["figures"].values()
            for p in f["panels"] for r in p["runs"]}


def test_dry_run_plans_the_papers_grid():
    runs = unique_runs(ROOT / "config" / "config.yaml")
    assert len(runs) == 38  # Fig. 3: 16, Fig. 4: 24 (4 shared with Fig. 3), Fig. 5: 2
    out = sh(["snakemake", "-n", "all"], ROOT).stdout
    assert job_counts(out) == {"train_seeds_0_1_2_3_4": 38, "aggregate": 4, "figure": 3,
                               "table2": 1, "all": 1}


@pytest.mark.parametrize("target,jobs", [("figures/fig3.pdf", 16), ("figures/fig4.pdf", 24),
                                         ("figures/fig5.pdf", 2), ("figures/table2.md", 38)])
def test_one_figure_trains_only_its_own_runs(target, jobs):
    counts = job_counts(sh(["snakemake", "-n", target], ROOT).stdout)
    assert counts["train_seeds_0_1_2_3_4"] == jobs and counts["aggregate"] == 1


def _smoke_config(tmp_path, change) -> Path:
    config = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    config["out"] = str(tmp_path / "out")  # nothing trained yet, whatever the checkout holds
    config["figures_dir"] = str(tmp_path / "out" / "figures")
    change(config)
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_set_values_with_spaces_and_brackets_reach_the_run_intact(tmp_path):
    def change(config):
        config["figures"] = {"fig5": config["figures"]["fig5"]}
        config["set"] += ["task.eval_target=[1.5, 2, 0.5]", "td3.gamma=0.98  # a note",
                          "high.reward_scale=0.125"]
    path = _smoke_config(tmp_path, change)
    repo = _copy_repo(tmp_path / "repo")
    sh(["snakemake", "--cores", "2", "runs", "--configfile", str(path)], repo)
    record = json.loads(next((tmp_path / "out" / "runs").rglob("config.json"))
                        .read_text())["config"]
    assert record["task"]["eval_target"] == [1.5, 2.0, 0.5]
    assert record["td3"]["gamma"] == 0.98 and record["high"]["reward_scale"] == 0.125


@pytest.mark.slow
def test_paths_with_shell_characters_reach_no_shell(tmp_path):
    """`out:` and `figures_dir:` with `;`, `$()`, backticks and spaces: every rule's shell
    command quotes them, so nothing runs and the outputs land where asked."""
    hostile = "r;touch PWNED;x $(touch PWNED2) `touch PWNED3` y"

    def change(config):
        config["figures"] = {"fig5": config["figures"]["fig5"]}
        config["out"] = str(tmp_path / hostile)
        config["figures_dir"] = str(tmp_path / hostile / f"fig$(touch PWNED4) {hostile}")

    path = _smoke_config(tmp_path, change)
    repo = _copy_repo(tmp_path / "repo")
    sh(["snakemake", "--cores", "2", "all", "--configfile", str(path)], repo)
    planted = [p for d in (repo, tmp_path, ROOT) for p in d.rglob("PWNED*")]
    assert not planted, planted
    figures = tmp_path / hostile / f"fig$(touch PWNED4) {hostile}"
    assert (figures / "fig5.pdf").is_file() and (figures / "table2.md").is_file()
    assert len(list((tmp_path / hostile / "runs").rglob("metrics.csv"))) == 4  # 2 runs x 2


def test_set_cannot_override_what_the_grid_decides(tmp_path):
    for entry, key in [("train.steps=200", "train.steps"), ("task.name=PointMazeMulti",
                                                            "task.name"),
                       ("train.seeds=[7]", "train.seeds")]:
        path = _smoke_config(tmp_path, lambda c, e=entry: c["set"].append(e))
        bad = sh(["snakemake", "-n", "--configfile", str(path)], ROOT, check=False)
        assert bad.returncode != 0
        assert f"overrides '{key}', which the grid decides" in bad.stderr + bad.stdout


def test_a_configfile_is_the_whole_configuration(tmp_path):
    path = _smoke_config(tmp_path, lambda c: c.pop("steps"))
    bad = sh(["snakemake", "-n", "--configfile", str(path)], ROOT, check=False)
    assert bad.returncode != 0 and "'steps' is a required property" in bad.stderr + bad.stdout
    path = _smoke_config(tmp_path, lambda c: c["figures"].pop("fig3") and
                         c["figures"].pop("fig4"))
    counts = job_counts(sh(["snakemake", "-n", "--configfile", str(path)], ROOT).stdout)
    assert counts["train_seeds_0_1"] == 2  # only fig5's runs: no Ant run of the paper's grid


def test_parsing_the_workflow_imports_neither_torch_nor_mujoco(tmp_path):
    blocked = tmp_path / "blocked"
    for name in ("torch", "mujoco"):
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text(f"raise ImportError('{name} blocked')\n")
    env = {**os.environ, "PYTHONPATH": str(blocked)}
    out = sh(["snakemake", "-n", "figures/fig5.pdf"], ROOT, env=env)
    assert job_counts(out.stdout)["train_seeds_0_1_2_3_4"] == 2
    path = _smoke_config(tmp_path, lambda c: c["figures"]["fig5"]["panels"][0]["runs"][0]
                         .update(hi=9))
    bad = sh(["snakemake", "-n", "--configfile", str(path)], ROOT, env=env, check=False)
    assert "grid run BallFallMulti ours hi=9 lo=3" in bad.stderr + bad.stdout


def test_plan_prints_the_cost_per_figure():
    out = sh(["hflow", "plan", "figures/fig3.pdf"], ROOT).stdout
    fig3 = next(line for line in out.splitlines() if line.startswith("fig3"))
    assert fig3.split()[:4] == ["fig3", "16", "16", "80"]
    assert "800,000,000" in fig3
    # the GPU column as README prints it: 8 hiro and 8 ours runs x 5 seeds x 10M steps at the
    # measured 6,044 (hiro) and 5,577 (ours) member env steps/s: 18.4 h + 19.9 h
    assert float(fig3.split()[-1]) == 38.3
    assert "H200-hours" in out


def test_the_workflow_takes_its_names_from_one_place():
    """The task names, a run's directory, the grid's own keys and the analysis outputs are
    written once (hflow.grid, from the task registry and job_options): not again in the
    rules, the schema or `hflow plan`."""
    from hflow.config import ConfigError
    from hflow.envs.tasks import TASKS
    from hflow.grid import RUN_DIR, TASK_PATTERN, RunId, job_options, target_figures

    rules = (ROOT / "Snakefile").read_text() + "".join(
        p.read_text() for p in sorted((ROOT / "workflow" / "rules").glob("*.smk")))
    schema = (ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text()
    for text in (rules, schema):
        assert "Maze|Push|Fall" not in text and "Single|Multi" not in text
    assert "_{hi}_{lo}" not in rules.replace("{{", "{").replace("}}", "}")
    assert '/table2.md"' not in rules and '{{fig}}.pdf"' not in rules  # grid.*_FILES
    assert all(re.fullmatch(TASK_PATTERN, t) for t in TASKS) and RUN_DIR.count("{") == 4
    assert not re.fullmatch(TASK_PATTERN, "AntMazeDouble")
    config = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    bare = {**config, "set": [], "flow_set": []}
    options = job_options(bare, RunId("BallPushSingle", "hiro", 3, 3), [0, 1])
    assert {"model", "task.name", "train.seeds", "train.steps"} <= set(options)
    for key, value in options.items():  # every key the grid gives a job is locked
        with pytest.raises(ConfigError, match=f"overrides '{re.escape(key)}'"):
            job_options({**config, "set": [f"{key}={json.dumps(value)}"]},
                        RunId("BallPushSingle", "hiro", 3, 3), [0, 1])
    figures = config["figures_dir"]
    assert target_figures(config, [f"{figures}/fig3_success.png", "fig5",
                                   f"{figures}/table2.tex"]) == ["fig3", "fig5", "all"]
    assert target_figures(config, ["all"]) is None
    with pytest.raises(ConfigError, match="not a figure of this config"):
        target_figures(config, [f"{figures}/fig6.pdf"])


def test_group_size_splits_seeds_into_jobs():
    out = sh(["snakemake", "-n", "runs", "--config", "group_size=2"], ROOT).stdout
    counts = job_counts(out)
    assert counts["train_seeds_0_1"] == counts["train_seeds_2_3"] == counts["train_seeds_4"] == 38


def test_lint_reports_nothing():
    run = sh(["snakemake", "--lint"], ROOT)
    out = run.stdout + run.stderr
    assert "Congratulations, your workflow is in a good condition!" in out
    assert "Lints for" not in out


def test_bad_grid_config_stops_before_any_job(tmp_path):
    bad = sh(["snakemake", "-n", "--config", "steps=-5"], ROOT, check=False)
    assert bad.returncode != 0 and "steps" in bad.stderr + bad.stdout
    config = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    config["figures"]["fig5"]["panels"][0]["runs"][0]["hi"] = 9
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    bad = sh(["snakemake", "-n", "--configfile", str(tmp_path / "bad.yaml")], ROOT, check=False)
    assert bad.returncode != 0
    assert "grid run BallFallMulti ours hi=9 lo=3" in bad.stderr + bad.stdout
    assert "allowed 2..3" in bad.stderr + bad.stdout


def _copy_repo(dest: Path) -> Path:
    """The working tree (tracked and untracked-but-not-ignored files) as a new git repo."""
    files = sh(["git", "ls-files", "-co", "--exclude-standard", "-z"], ROOT).stdout.split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    sh(["git", "init", "-q"], dest)
    sh(["git", "add", "-A"], dest)
    sh(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"], dest)
    return dest


@pytest.fixture(scope="module")
def smoke_repo(tmp_path_factory):
    """A copy of the repo where the smoke grid was trained through DVC and figures built."""
    base = tmp_path_factory.mktemp("pipeline")
    repo = _copy_repo(base / "first")
    remote = base / "remote"
    sh(["dvc", "remote", "add", "--local", "-d", "store", str(remote)], repo)
    sh(["dvc", "repro", "smoke"], repo)
    build = sh(["snakemake", "--cores", "2", "all", *SMOKE], repo)
    return repo, remote, build.stdout + build.stderr


@pytest.mark.slow
def test_smoke_pipeline_end_to_end(smoke_repo):
    repo, _, log = smoke_repo
    assert "train_seeds" not in log  # `dvc repro smoke` trained; this run only built outputs
    figures = repo / "results" / "smoke" / "figures"
    for fig in ("fig3", "fig4", "fig5"):
        assert len(PdfReader(figures / f"{fig}.pdf").pages) == 4  # reward, success, low level x2
        for png in (f"{fig}.png", f"{fig}_success.png", f"{fig}_low.png", f"{fig}_low_xy.png"):
            assert (figures / png).read_bytes()[:4] == b"\x89PNG"
    table = squeeze((figures / "table2.md").read_text())
    assert "| Our model | O | O |" in table and "ours_3_3" in table and "hiro_3_2" in table
    assert r"\begin{tabular}" in (figures / "table2.tex").read_text()
    assert "stratified-bootstrap" in table and "P(ours > baseline)" in table
    summary = pd.read_parquet(repo / "results" / "smoke" / "summary" / "all.parquet")
    runs = unique_runs(repo / "config" / "smoke.yaml")
    config = yaml.safe_load((repo / "config" / "smoke.yaml").read_text())
    points = config["steps"] // config["eval_every"] + 1  # step 0 included
    assert len(summary) == len(runs) * len(config["seeds"]) * points
    assert not summary.duplicated(["task", "model", "hi", "lo", "seed", "step"]).any()
    assert set(summary["step"]) == {0, 200, 400}
    job_logs = sorted((repo / "results" / "smoke" / "logs").rglob("seeds-*.log"))
    assert len(job_logs) == len(runs)  # one job per run: the smoke grid's group is all seeds
    for job_log in job_logs:  # a job's log shows its progress, not only its errors
        text = job_log.read_text()
        assert "step 400/400 (100.0%)" in text and "steps/s | ETA" in text, (job_log, text)


@pytest.mark.slow
def test_figures_regenerate_from_dvc_cache_without_training(smoke_repo, tmp_path):
    repo, remote, _ = smoke_repo
    sh(["git", "add", "dvc.lock"], repo)
    sh(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "runs"], repo)
    sh(["dvc", "push", "smoke"], repo)
    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    assert not (clone / "results" / "smoke").exists()  # only the point suite is in git
    sh(["dvc", "remote", "add", "--local", "-d", "store", str(remote)], clone)
    sh(["dvc", "pull", "smoke"], clone)
    run = sh(["snakemake", "--cores", "1", "all", *SMOKE], clone)
    counts = job_counts(run.stdout + run.stderr)
    assert not any(job.startswith("train") for job in counts), counts
    assert counts == {"aggregate": 4, "figure": 3, "table2": 1, "all": 1}
    assert (clone / "results" / "smoke" / "figures" / "fig3.pdf").exists()
    again = sh(["snakemake", "--cores", "1", "all", *SMOKE], clone)
    assert "Nothing to be done" in again.stdout + again.stderr
    sh(["snakemake", "--report", "report.zip", *SMOKE], clone)
    with zipfile.ZipFile(clone / "report.zip") as report:
        names = report.namelist()
    for name in ("fig3.pdf", "fig5_success.png", "table2.html"):
        assert any(n.endswith(name) for n in names), name


POINT = ["--configfile", "config/point.yaml"]


def _redraws_without_training(repo: Path, suite: str) -> str:
    """Runs `snakemake all` on config/SUITE.yaml of a fresh copy whose runs' metrics come from
    git, and checks that it only draws; returns its table2.md, whitespace squeezed."""
    # A clone gives files their checkout time in any order: make every file of the workflow
    # and the package newer than the results (which once retrained a `script:` rule), and
    # drop the committed drawings so that all of them are redrawn.
    for path in [*(repo / "workflow").rglob("*"), *(repo / "hflow").rglob("*"),
                 repo / "Snakefile", *(repo / "config").glob("*")]:
        os.utime(path)
    figures = repo / "figures" / suite
    for path in figures.iterdir():
        path.unlink()
    run = sh(["snakemake", "--cores", "1", "all", "--configfile", f"config/{suite}.yaml"], repo)
    counts = job_counts(run.stdout + run.stderr)
    assert counts == {"aggregate": 2, "figure": 1, "table2": 1, "all": 1}, counts
    config = yaml.safe_load((repo / "config" / f"{suite}.yaml").read_text())
    for fig in config["figures"]:
        assert len(PdfReader(figures / f"{fig}.pdf").pages) == 4
    return squeeze((figures / "table2.md").read_text())


@pytest.mark.slow
def test_point_suite_redraws_from_git_without_training(tmp_path):
    """The learning suite's metrics and records are in git: its figure and table rebuild on a
    fresh checkout with no training job and no DVC remote."""
    repo = _copy_repo(tmp_path / "repo")
    runs = unique_runs(repo / "config" / "point.yaml")
    seeds = yaml.safe_load((repo / "config" / "point.yaml").read_text())["seeds"]
    records = list((repo / "results" / "point" / "runs").rglob("config.json"))
    assert len(records) == len(runs) * len(seeds) == 80  # 8 runs (models and controls) x 10
    # the one policy the README's rollout example draws travels in git; the others in DVC
    assert [p.relative_to(repo).as_posix() for p in repo.rglob("policy.pt")] == [
        "results/point/runs/PointMazeMulti/ours_2_2/seed0/policy.pt"]
    table = _redraws_without_training(repo, "point")
    assert "success at (8, 0) | success at (8, 8) | success at (0, 8)" in table
    for task, model, hi, lo in runs:
        assert f"| {task} | {model}_{hi}_{lo} |" in table
    assert "## Relabel accounting" in table and "## Paired differences" in table


@pytest.mark.slow
def test_ant_check_redraws_from_git_without_training(tmp_path):
    """The Ant check's metrics and records are in git (its policies are not kept): its figure
    and table rebuild on a fresh checkout with no training job."""
    repo = _copy_repo(tmp_path / "repo")
    runs = unique_runs(repo / "config" / "ant.yaml")
    seeds = yaml.safe_load((repo / "config" / "ant.yaml").read_text())["seeds"]
    records = list((repo / "results" / "ant" / "runs").rglob("config.json"))
    assert len(records) == len(runs) * len(seeds) == 9  # 3 runs x 3 seeds
    table = _redraws_without_training(repo, "ant")
    for task, model, hi, lo in runs:
        assert f"| {task} | {model}_{hi}_{lo} |" in table


@pytest.mark.slow
def test_point_suite_policies_travel_through_a_dvc_remote(tmp_path):
    """config/point.yaml as it is, shrunk to tiny networks and a few hundred steps, trained in
    one clone; its `point` DVC stage pushed to a real (directory) remote and pulled into a
    second, fresh clone, where `hflow rollout` draws a pulled policy."""
    first = _copy_repo(tmp_path / "first")
    config = yaml.safe_load((first / "config" / "point.yaml").read_text())
    smoke = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    config.update(steps=400, eval_every=200, eval_episodes=2)
    config["set"] = config["set"] + [s for s in smoke["set"] if s not in config["set"]]
    config["flow_set"] = smoke["flow_set"]
    (first / "config" / "point.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    run = sh(["snakemake", "--cores", "2", "--forceall", "all", *POINT], first)
    runs = unique_runs(first / "config" / "point.yaml")
    jobs = job_counts(run.stdout + run.stderr)
    assert jobs["train_seeds_0_1_2_3_4"] == jobs["train_seeds_5_6_7_8_9"] == len(runs)
    table = squeeze((first / "figures" / "point" / "table2.md").read_text())
    assert "| PointMazeMulti | ours_alg2_2_2 | `ours_alg2` | 400 | 10 |" in table
    record = json.loads(next((first / "results" / "point" / "runs").rglob("config.json"))
                        .read_text())
    assert record["config"]["low"]["explore_sigma"] == 0.1  # HIRO's point_maze.gin advice

    remote = tmp_path / "remote"
    assert "remote" not in (first / ".dvc" / "config").read_text()  # none of one machine
    sh(["dvc", "remote", "add", "--local", "-d", "store", str(remote)], first)
    sh(["dvc", "commit", "--force", "point"], first)
    sh(["git", "add", "dvc.lock", "config/point.yaml", "results/point"], first)  # + records
    sh(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "runs"], first)
    sh(["dvc", "push", "point"], first)
    second = tmp_path / "second"
    sh(["git", "clone", "-q", str(first), str(second)], tmp_path)
    policy = Path("results/point/runs/PointMazeMulti/hiro_2_2/seed3/policy.pt")
    assert not (second / policy).exists()
    sh(["dvc", "remote", "add", "--local", "-d", "store", str(remote)], second)
    sh(["dvc", "pull", "point"], second)
    assert (second / policy).read_bytes() == (first / policy).read_bytes()
    drawn = sh(["hflow", "rollout", str(policy.parent), "-o", "r.png", "--episodes", "1"],
               second)
    assert (second / "r.png").read_bytes()[:4] == b"\x89PNG", drawn.stdout


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A private single-node SLURM (tests/slurm/cluster.sh): its config, state and daemons are
    its own and stop with the tests; the machine's own SLURM and /etc/slurm are not touched.
    Yields (partition, environment with SLURM_CONF)."""
    if os.geteuid() != 0:
        pytest.skip("starting slurmctld/slurmd needs root (CI runs as root)")
    directory = tmp_path_factory.mktemp("slurm")
    script = str(ROOT / "tests" / "slurm" / "cluster.sh")
    try:
        partition = sh(["bash", script, "start", str(directory)], ROOT).stdout.split()[-1]
        yield partition, {**os.environ, "SLURM_CONF": str(directory / "slurm.conf"),
                          "PATH": f"{directory / 'bin'}:{os.environ['PATH']}"}
    finally:
        sh(["bash", script, "stop", str(directory)], ROOT)


@pytest.mark.slurm
@pytest.mark.slow
def test_slurm_profile_runs_the_smoke_pipeline(slurm, tmp_path):
    partition, env = slurm
    repo = _copy_repo(tmp_path / "repo")
    run = sh(["snakemake", "all", *SMOKE, "--workflow-profile", "workflow/profiles/slurm",
              "--default-resources", f"slurm_partition={partition}", "runtime=10",
              "mem_mb=1000", "--slurm-no-account", "--slurm-status-command", "squeue",
              "--slurm-init-seconds-before-status-checks", "2", "--jobs", "4",
              "--slurm-logdir", str(tmp_path / "slurm-logs"), "--slurm-keep-successful-logs"],
             repo, timeout=1500, env=env)
    log = run.stdout + run.stderr
    runs = len(unique_runs(repo / "config" / "smoke.yaml"))
    assert job_counts(log)["train_seeds_0_1"] == runs
    # Each training job ran as its own SLURM job: SLURM wrote one log per job id.
    slurm_logs = list((tmp_path / "slurm-logs" / "rule_train_seeds_0_1").rglob("*.log"))
    assert len(slurm_logs) == runs, log[-2000:]
    job_ids = {p.stem for p in slurm_logs}
    states = sh(["squeue", "-h", "-t", "all", "-o", "%i %T"], ROOT, env=env).stdout.split("\n")
    completed = {line.split()[0] for line in states if line.endswith("COMPLETED")}
    assert job_ids <= completed, (job_ids - completed)
    figures = repo / "results" / "smoke" / "figures"
    for name in ("fig3.pdf", "fig4.pdf", "fig5.pdf", "table2.md", "table2.tex"):
        assert (figures / name).exists(), name
