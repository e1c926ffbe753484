"""The run config: keys, types, choices and bounds, layering, files, presets and Table II's
flags."""


import pytest
import yaml
from conftest import squeeze

from hflow.agents.registry import PRESETS, table2_markdown
from hflow.cli import main
from hflow.config import ConfigError
from hflow.resolve import resolve


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
    assert "did you mean 'low.policy'" in capsys.readouterr().err
    assert main(["train", "--model", "hiro", "--seeds", "a,b", "--out", "x"]) == 2


def test_keys_of_the_old_spelling_name_the_new_key(tmp_path):
    """The level sections are `high` and `low` (hi/lo are only the goal sizes): a key of the
    old spelling is an unknown key whose did-you-mean names the new one, wherever it comes
    from."""
    with pytest.raises(ConfigError, match="'hi.actor'; did you mean 'high.actor'"):
        resolve("hiro", sets=["hi.actor=[64,64]"])
    with pytest.raises(ConfigError, match="did you mean 'hierarchy.high_episode_end'"):
        resolve("hiro", sets=["hierarchy.hi_episode_end=bootstrap"])
    old_file = tmp_path / "old.yaml"
    old_file.write_text("lo:\n  explore_sigma: 0.1\n")
    with pytest.raises(ConfigError, match="did you mean 'low.explore_sigma'"):
        resolve("hiro", file=old_file)


def test_print_config_resolves_preset_and_overrides(capsys):
    assert main(["train", "--model", "hiro", "--task", "AntFallMulti", "--hi", "8", "--lo", "8",
                 "--set", "td3.batch_size=256", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "batch_size: 256" in out and "name: AntFallMulti" in out and "hi: 8" in out
    assert main(["train", "--help-config"]) == 0
    listed = capsys.readouterr().out
    assert "hierarchy.correction = 'hiro'  # one of none|hiro|flow; off-policy" in listed
    assert "td3.tau = 0.005  # > 0; <= 1; target network update rate" in listed


def test_a_runs_record_is_a_config_file_for_the_same_run(tmp_path, capsys):
    """Three ways in: --config (a YAML file of keys, or a seed's config.json), the flags and
    --set. A record gives back its run's config exactly, every key of it; the flags and --set
    still override it; --model may not mix another preset into it."""
    from hflow.run_files import RunFiles

    cfg = resolve("lsp", options={"task.name": "AntFallMulti", "task.hi": 8},
                  sets=["td3.batch_size=64", "td3.gamma=0.9", "flow.coupling_layers=2"])
    files = RunFiles(cfg, tmp_path, None, {"goal_space": {}, "device": "cpu"}, ())
    files.write_records()
    record = tmp_path / "seed0" / "config.json"
    assert resolve(file=record) == cfg
    again = resolve(file=record, options={"train.steps": 5000}, sets=["td3.tau=0.01"])
    assert (again.train.steps, again.td3.tau, again.td3.batch_size) == (5000, 0.01, 64)
    with pytest.raises(ConfigError, match="record of a 'lsp' run.*--model ours would mix"):
        resolve("ours", file=record)
    keys = tmp_path / "keys.yaml"
    keys.write_text("model: lsp\ntask.name: AntFallMulti\ntask.hi: 8\ntd3:\n  batch_size: 64\n")
    assert main(["train", "--config", str(keys), "--set", "td3.gamma=0.9", "--set",
                 "flow.coupling_layers=2", "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == cfg.to_dict()
    with pytest.raises(SystemExit):  # gone: --config, the flags and --set are the ways in
        main(["train", "--options", "{}", "--out", "x"])


def test_numbers_are_read_as_researchers_write_them():
    cfg = resolve("hiro", sets=["td3.actor_lr=1e-4", "td3.critic_lr=3E-3", "td3.tau=5e-3"])
    assert (cfg.td3.actor_lr, cfg.td3.critic_lr, cfg.td3.tau) == (1e-4, 3e-3, 5e-3)
    for bad, message in [("td3.actor_lr=-1e-4", "must be > 0"),
                         ("td3.critic_lr=.inf", "finite"),
                         ("task.eval_target=[.nan, 8]",
                          r"'.nan' \(line 1\) is not a finite number"),
                         ("td3.batch_size=5000", "larger than 'high.buffer_size'"),
                         ("low.explore_sigma=-0.1", "must be >= 0")]:
        sets = ["high.buffer_size=2000"] if "batch_size" in bad else []
        with pytest.raises(ConfigError, match=message):
            resolve("hiro", sets=[*sets, bad])


def test_numbers_are_base_10_and_whole_exponents_fit_integer_keys(tmp_path):
    """YAML 1.1 reads `010` as octal 8 and refuses nothing in other bases: not here."""
    cfg = resolve("hiro", sets=["train.eval_episodes=010", "td3.batch_size=2e2",
                                "train.steps=3e5", "low.buffer_size=1_000_000"])
    assert (cfg.train.eval_episodes, cfg.td3.batch_size, cfg.train.steps) == (10, 200, 300_000)
    assert cfg.low.buffer_size == 1_000_000
    file = tmp_path / "run.yaml"
    file.write_text("train:\n  eval_episodes: 010\n  warmup: 25e2\n")
    assert resolve("hiro", file=file).train.eval_episodes == 10
    assert resolve("hiro", file=file).train.warmup == 2500
    for bad in ("train.steps=0x10", "train.steps=1:30", "train.steps=0b11"):
        with pytest.raises(ConfigError, match=r"--set train.steps: .* not a base-10 number"):
            resolve("hiro", sets=[bad])
    with pytest.raises(ConfigError, match="'train.steps'"):  # a fraction is not an integer
        resolve("hiro", sets=["train.steps=2.5e2"])


def test_conflicts_and_malformed_input_are_one_line_errors(tiny, tmp_path, capsys):
    with pytest.raises(ConfigError, match="'model' is given twice"):
        resolve("hiro", sets=["model=ours"])
    with pytest.raises(ConfigError, match="'train.steps' is given twice"):
        resolve("hiro", options={"train.steps": 1000}, sets=["train.steps=2000"])
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("td3:\n  gamma: [0.9\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: cannot read YAML at line \d"):
        resolve("hiro", file=bad_yaml)
    twice = tmp_path / "twice.yaml"
    twice.write_text("td3:\n  gamma: 0.9\n  gamma: 0.95\n")
    with pytest.raises(ConfigError, match=r"key 'gamma' is given twice \(line 3"):
        resolve("hiro", file=twice)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["train", "--model", "hiro", "--task", "PointMazeSingle", "--steps", "200",
                 "--out", str(blocker / "run"), *[a for s in tiny() for a in ("--set", s)],
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"cannot create directory {blocker}" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_table2_comes_from_the_preset_flags(capsys):
    table = squeeze(table2_markdown())
    assert "| Our model | O | O |" in table and "| HIRO | O | X |" in table
    assert "| LSP | X | O |" in table and "| Ma et al. | X | O |" in table
    assert main(["models"]) == 0
    out = squeeze(capsys.readouterr().out)
    assert "| Our model | O | O |" in out and "ours_goal_conditioned" in out


def test_table2_flags_are_read_from_the_resolved_config():
    """A preset that leaves a key at its default gets the default's flag (HIRO's correction
    is the config default), and every flag agrees with resolving the preset."""
    from hflow.agents.registry import Preset

    bare = Preset("bare", "bare", "Bare", "defaults only", {})
    assert bare.off_policy_correction and not bare.fdgm
    flow_only = Preset("flow_only", "f", "F", "flow, correction left at its default",
                       {"low.policy": "flow"})
    assert flow_only.off_policy_correction and flow_only.fdgm
    for name, preset in PRESETS.items():
        cfg = resolve(name)
        assert preset.off_policy_correction == (cfg.hierarchy.correction != "none"), name
        assert preset.fdgm == (cfg.low.policy == "flow"), name


def test_bad_presets_and_options():
    with pytest.raises(ConfigError, match="unknown model preset 'our'; presets: ours, hiro"):
        resolve("our")
    with pytest.raises(ConfigError, match="'hierarchy.correction' = flow .* model 'hiro'"):
        resolve("hiro", sets=["hierarchy.correction=flow"])
    with pytest.raises(ConfigError, match="'flow.reduce' does not apply to model 'hiro'"):
        resolve("hiro", sets=["flow.reduce=mean"])
    with pytest.raises(ConfigError, match="'flow.inverse' only acts with hierarchy.correction "
                                          "= flow; model 'lsp' uses"):
        resolve("lsp", sets=["flow.inverse=alg2"])
    with pytest.raises(ConfigError, match="'flow.outside_range' only acts with hierarchy."
                                          "correction = flow; model 'ours_uncorrected' uses"):
        resolve("ours_uncorrected", sets=["flow.outside_range=keep"])
    with pytest.raises(ConfigError, match="'hierarchy.hiro_candidates' only acts with "
                                          "hierarchy.correction = hiro; model 'ours' uses"):
        resolve("ours", sets=["hierarchy.hiro_candidates=4"])
    resolve("ours_hiro_corrected", sets=["hierarchy.hiro_candidates=4"])  # HIRO's: fine
    with pytest.raises(ConfigError, match="flow models need lo >= 8"):
        resolve("ours", sets=["task.lo=6"])
