"""A run's config, resolved in layers and checked as a whole.

Layers, last wins: the sections' defaults (HIRO's values) <- the model preset <- a YAML file
of keys or a run's record (`--config`) <- command-line options <- `--set key=value`. Each key
is checked as it is set (hflow.config); the checks that span several keys, or need the task,
run here once all are set. This module sits above the config (plain data), the presets and
the tasks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hflow.agents.registry import apply_preset, check_compatible
from hflow.config import ConfigError, RunConfig, flatten, get_key, load_file, parse_set, set_key
from hflow.envs.tasks import get_task, goal_space


def resolve(model: str | None = None, file: str | Path | None = None,
            options: dict[str, Any] | None = None, sets: list[str] | None = None) -> RunConfig:
    """The full config of a run, validated; see the module docstring for the layering."""
    layers: dict[str, Any] = {}
    recorded: set[str] = set()  # a record holds every key: not each one a choice to check
    if file is not None:
        keys, record = load_file(file)
        layers.update(keys)
        if record:
            recorded = {k for k in keys if k != "model"}
            if model is not None and model != keys.get("model"):
                raise ConfigError(f"config file {str(file)!r} is the record of a "
                                  f"{keys.get('model')!r} run, which sets every key of that "
                                  f"model; --model {model} would mix the two. Leave --model "
                                  f"out, or give a YAML file of keys instead")
    given = {k: v for k, v in (options or {}).items() if v is not None}
    if model is not None:
        given["model"] = model
    layers.update(given)
    set_once: dict[str, Any] = {}
    for assignment in sets or []:
        key, value = parse_set(assignment)
        if key in set_once:  # last-wins would hide a mistake
            raise ConfigError(f"'{key}' is set twice (={set_once[key]!r}, then ={value!r}); "
                              f"give it once")
        set_once[key] = value
        if key in given and given[key] != value:  # a flag and a --set that disagree
            raise ConfigError(f"'{key}' is given twice: {given[key]!r} by its command-line "
                              f"option and {value!r} by --set {key}=...; give it once")
        layers[key] = value
    model_name = layers.pop("model", "hiro")

    cfg = RunConfig()
    apply_preset(cfg, model_name)
    for key, value in layers.items():
        set_key(cfg, key, value)
    check_compatible(cfg, set(layers) - (recorded - set(given) - set_once.keys()))
    validate(cfg)
    return cfg


def from_dict(tree: dict) -> RunConfig:
    """A run's config back from its record (config.json, policy.pt): every key as written."""
    flat = flatten(tree)
    cfg = RunConfig()
    apply_preset(cfg, flat.pop("model", "hiro"))
    for key, value in flat.items():
        set_key(cfg, key, value)
    validate(cfg)
    return cfg


def validate(cfg: RunConfig) -> None:
    """Checks that span several keys (one key's own checks happen as it is set)."""
    spec = get_task(cfg.task.name)
    goals = goal_space(spec, cfg.task.hi, cfg.task.lo, cfg.task.eval_target)
    t, h = cfg.train, cfg.hierarchy
    if len(set(t.seeds)) != len(t.seeds):
        raise ConfigError(f"config key 'train.seeds' = {t.seeds}: seeds must be distinct")
    if cfg.task.episode_steps % h.c:
        raise ConfigError(f"'task.episode_steps' = {cfg.task.episode_steps} must be a multiple "
                          f"of 'hierarchy.c' = {h.c} (goal segments never cross episodes)")
    if t.eval_every % cfg.task.episode_steps:
        raise ConfigError(f"'train.eval_every' = {t.eval_every} must be a multiple of "
                          f"'task.episode_steps' = {cfg.task.episode_steps} (checkpoints are "
                          f"taken between episodes)")
    if t.checkpoint_every is not None and t.checkpoint_every % t.eval_every:
        raise ConfigError(f"'train.checkpoint_every' = {t.checkpoint_every} must be a multiple "
                          f"of 'train.eval_every' = {t.eval_every}")
    if t.warmup >= t.steps:
        raise ConfigError(f"'train.warmup' = {t.warmup:,} is not below 'train.steps' = "
                          f"{t.steps:,}: the run would never update; lower the warm-up or "
                          f"train longer")
    if t.steps % cfg.task.episode_steps:
        raise ConfigError(f"'train.steps' = {t.steps} must be a multiple of "
                          f"'task.episode_steps' = {cfg.task.episode_steps}")
    if cfg.high.update_every % h.c and h.c % cfg.high.update_every:
        raise ConfigError(f"'high.update_every' = {cfg.high.update_every} and 'hierarchy.c' = "
                          f"{h.c} must divide one another")
    if cfg.low.policy == "flow" and goals.lo < spec.robot.nu:
        raise ConfigError(
            f"'task.lo' = {goals.lo} is below the action size {spec.robot.nu} of {spec.name}: "
            f"the flow maps the first {spec.robot.nu} goal elements to the action, so flow "
            f"models need lo >= {spec.robot.nu}")
    for level in ("low", "high"):
        size = get_key(cfg, f"{level}.buffer_size")
        if cfg.td3.batch_size > size:
            raise ConfigError(f"'td3.batch_size' = {cfg.td3.batch_size} is larger than "
                              f"'{level}.buffer_size' = {size}: that level could never update")
