"""The run configuration: typed, validated, one place for every option.

Layers, last wins: dataclass defaults (HIRO's values) <- the model preset <- a YAML file
(`--config`) <- command-line options <- `--set key=value`. Unknown keys and bad values fail
before any work, naming the key, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hflow import HflowError


class ConfigError(HflowError):
    pass


class _Loader(yaml.SafeLoader):
    """YAML as researchers write it: `1e-4` and `3e5` are numbers (PyYAML follows YAML 1.1,
    where a float needs a dot), and a key given twice is an error, not a silent overwrite."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))


def _mapping_without_duplicates(loader: _Loader, node: yaml.MappingNode, deep: bool = False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(f"key {key!r} is given twice (line {key_node.start_mark.line + 1}"
                              f"{_source(key_node)})")
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


def _source(node) -> str:
    name = node.start_mark.name
    return "" if name.startswith("<") else f" of {name}"


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                        _mapping_without_duplicates)


def read_yaml(text: str, source: str) -> Any:
    """Parses YAML with hflow's loader; a syntax error names the source and the line."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{source}: cannot read YAML{where}: {problem}") from None


def _choice(default, *choices, doc: str = ""):
    return field(default=default, metadata={"choices": choices, "doc": doc})


def _positive(default, doc: str = "", minimum=1):
    return field(default=default, metadata={"min": minimum, "doc": doc})


def _list(default: list, doc: str = "", item_min: int = 1):
    return field(default_factory=lambda: list(default),
                 metadata={"doc": doc, "item_min": item_min})


@dataclass
class TaskConfig:
    name: str = field(default="AntPushSingle", metadata={"doc": "task, e.g. AntFallMulti"})
    hi: int | None = field(default=None, metadata={"doc": "target dims (None: the task's own)"})
    lo: int | None = field(default=None, metadata={"doc": "subgoal dims (None: robot's tuple)"})
    episode_steps: int = _positive(500)
    block_shrink: float = field(default=0.99, metadata={"doc": "see docs/tasks.md"})
    manual_collision: bool = field(default=True, metadata={
        "doc": "HIRO's point: undo a step that ends inside a wall (maze_env.py "
               "manual_collision); false leaves walls to contacts, which the point's 0.2-per-step "
               "moves pass through (docs/tasks.md)"})
    eval_target: list[float] | None = field(
        default=None, metadata={"doc": "replaces the task's fixed target (hi values)"})


@dataclass
class TrainConfig:
    steps: int = _positive(10_000_000, "env steps per seed")
    seeds: list[int] = _list([0], "seeds trained together in one process (members)",
                             item_min=0)
    warmup: int = _positive(2_500, "env steps collected before updates start (HIRO: 5 "
                                    "episodes, initial_episodes)", minimum=0)
    warmup_policy: str = _choice(
        "policy", "policy", "uniform",
        doc="warm-up actions and goals: the initial policies plus exploration noise, clipped "
            "(HIRO's train.py), or uniform over the bounds")
    eval_every: int = _positive(50_000, "env steps between evaluations")
    checkpoint_every: int | None = field(
        default=None, metadata={"min": 1, "doc": "env steps between resume checkpoints, a "
                                                 "multiple of eval_every (None: eval_every)"})
    eval_episodes: int = _positive(50)
    device: str = field(default="auto", metadata={"doc": "auto, cpu, cuda or cuda:N"})
    torch_threads: int = _positive(1, "CPU threads for torch (1 keeps CPU runs deterministic)")
    env_threads: int = _positive(1, "threads stepping the members' envs (MuJoCo releases the "
                                    "GIL); results are identical for any count")
    checkpoints_kept: int = _positive(2)
    tensorboard: bool = field(default=False, metadata={
        "doc": "also write TensorBoard event files to seed<N>/tensorboard (metrics and every "
               "loss value; needs the tensorboard extra)"})


@dataclass
class TD3Config:
    gamma: float = 0.99
    tau: float = 0.005
    actor_lr: float = 1e-4
    critic_lr: float = 1e-3
    batch_size: int = _positive(100)
    policy_delay: int = _positive(2, "updates per actor (and target) update")
    policy_delay_mode: str = _choice(
        "zero_loss", "zero_loss", "skip",
        doc="off updates: actor loss x 0 but Adam still steps (HIRO's train.py), or no step "
            "(TD3 paper)")
    target_noise: float = field(default=0.2, metadata={"doc": "in action units, as HIRO"})
    target_noise_clip: float = 0.5
    huber_delta: float = 1.0
    critic_action_input: str = _choice(
        "both_layers", "both_layers", "first_layer", "second_layer",
        doc="layers that take the action; HIRO's critic: both (agents/ddpg_networks.py)")


@dataclass
class LevelConfig:
    actor: list[int] = _list([300, 300], "hidden sizes (flow models: forward/conditional parts)")
    critic: list[int] = _list([300, 300])
    explore_sigma: float = field(default=1.0, metadata={"doc": "Gaussian noise, action units"})
    reward_scale: float = 1.0
    update_every: int = _positive(1, "env steps between updates")
    buffer_size: int = _positive(200_000)


@dataclass
class LowLevelConfig(LevelConfig):
    policy: str = _choice("mlp", "mlp", "flow", doc="MLP actor (HIRO) or conditional flow")
    zero_xy: bool | None = field(default=None, metadata={
        "doc": "low level does not see x, y; None: HIRO's setting for the robot's subgoal config "
               "(ant: true, hiro_orig.gin; point: false, hiro_xy.gin)"})


@dataclass
class HierarchyConfig:
    c: int = _positive(10, "env steps per high-level goal")
    correction: str = _choice("hiro", "none", "hiro", "flow",
                              doc="off-policy correction of stored goals")
    segment_end_goal: str = _choice(
        "new_goal", "new_goal", "transition",
        doc="low level's stored next goal at a segment's last step: the goal the high level "
            "just chose (HIRO's train.py) or h(s, g, s')")
    hi_episode_end: str = _choice(
        "terminal", "terminal", "bootstrap",
        doc="the high-level segment that ends an episode: stored with discount 0 (HIRO's "
            "train.py, episodes reset every 500 steps) or bootstrapped like the others")
    hiro_candidates: int = _positive(8, "sampled candidates besides g and delta-s")
    hiro_candidate_sigma: float = field(default=0.5, metadata={"doc": "x subgoal half-range"})


@dataclass
class FlowConfig:
    condition: str = _choice("action", "state", "goal", "action",
                             doc="flow condition: s (LSP), enc(s,g) (Ma; Fig. 5 variant), "
                                 "mu_zstate(s, mu_z(s,g)) (ours)")
    inverse: str = _choice("alg1", "alg1", "alg2", doc="stored or recomputed condition")
    reduce: str = _choice("first", "first", "mean", doc="how the c per-step inverses combine")
    rest: str = _choice("keep", "keep", "delta_s",
                        doc="relabelled goal elements beyond d: stored values or s_t+c - s_t")
    coupling_layers: int = _positive(4)
    hidden: list[int] = _list([150, 150], "scale/translation nets")
    z_state_dim: int = _positive(19, "size of a_{z-state}")
    scale_bound: float = field(default=2.0, metadata={"doc": "|log scale| <= bound per layer"})
    goal_scaling: str = _choice("range", "range", "none",
                                doc="divide g_{1:d} by its half-range before the flow")
    squash_eps: float = 1e-6


@dataclass
class RunConfig:
    model: str = "hiro"
    task: TaskConfig = field(default_factory=TaskConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    td3: TD3Config = field(default_factory=TD3Config)
    hi: LevelConfig = field(default_factory=lambda: LevelConfig(reward_scale=0.1,
                                                                update_every=10))
    lo: LowLevelConfig = field(default_factory=LowLevelConfig)
    hierarchy: HierarchyConfig = field(default_factory=HierarchyConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# -- setting and checking values ---------------------------------------------------------------

def _fields(obj) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(obj)}


def all_keys(obj=None, prefix: str = "") -> list[str]:
    obj = RunConfig() if obj is None else obj
    keys = []
    for name, _f in _fields(obj).items():
        value = getattr(obj, name)
        if dataclasses.is_dataclass(value):
            keys += all_keys(value, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def _unknown(key: str, scope, prefix: str) -> ConfigError:
    valid = [f"{prefix}{k}" for k in _fields(scope)]
    close = difflib.get_close_matches(key, all_keys(), n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return ConfigError(f"unknown config key '{key}'{hint} (valid here: {', '.join(valid)})")


def _coerce(key: str, value: Any, f: dataclasses.Field):
    hints = typing.get_type_hints(_OWNER[key])
    kind = hints[f.name]
    optional = isinstance(kind, types.UnionType) and type(None) in typing.get_args(kind)
    if optional:
        if value is None:
            return None
        kind = next(a for a in typing.get_args(kind) if a is not type(None))

    def bad(expected: str):
        return ConfigError(f"config key '{key}' = {value!r}: expected {expected}")

    if kind == list[float]:
        if not isinstance(value, list | tuple) or not value or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                for v in value):
            raise bad("a non-empty list of finite numbers, e.g. [8, 0]")
        value = [float(v) for v in value]
    elif typing.get_origin(kind) is list:
        item_min = f.metadata.get("item_min", 1)
        if not isinstance(value, list | tuple) or not value or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= item_min for v in value):
            raise bad(f"a non-empty list of integers >= {item_min}, e.g. "
                      f"{[0, 1] if item_min == 0 else [300, 300]}")
        value = list(value)
    elif kind is bool:
        if not isinstance(value, bool):
            raise bad("true or false")
    elif kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer" + (" or null" if optional else ""))
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad("a number")
        value = float(value)
        if not math.isfinite(value):
            raise bad("a finite number")
    elif kind is str and not isinstance(value, str):
        raise bad("a string")
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"config key '{key}' = {value!r}: allowed values: {', '.join(choices)}")
    minimum = f.metadata.get("min")
    if minimum is not None and value is not None and value < minimum:
        raise ConfigError(f"config key '{key}' = {value!r}: must be >= {minimum}")
    return value


_OWNER: dict[str, type] = {}


def _index_owners(cls=RunConfig, prefix: str = "") -> None:
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(default):
            _index_owners(type(default), f"{prefix}{f.name}.")
        else:
            _OWNER[f"{prefix}{f.name}"] = cls


_index_owners()


def set_key(cfg: RunConfig, key: str, value: Any) -> None:
    """Sets a dotted key ('td3.gamma') with type and choice checks."""
    parts = key.split(".")
    scope, prefix = cfg, ""
    for part in parts[:-1]:
        sub = getattr(scope, part, None) if part in _fields(scope) else None
        if not dataclasses.is_dataclass(sub):
            raise _unknown(key, scope, prefix)
        scope, prefix = sub, f"{prefix}{part}."
    fields_ = _fields(scope)
    name = parts[-1]
    if name not in fields_ or dataclasses.is_dataclass(getattr(scope, name)):
        raise _unknown(key, scope, prefix)
    setattr(scope, name, _coerce(key, value, fields_[name]))


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """{'td3': {'gamma': 0.9}} -> {'td3.gamma': 0.9}."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def parse_set(assignment: str) -> tuple[str, Any]:
    """'td3.gamma=0.98' -> ('td3.gamma', 0.98); the value is read as YAML."""
    if "=" not in assignment:
        raise ConfigError(f"--set expects key=value, got {assignment!r}")
    key, raw = assignment.split("=", 1)
    value = read_yaml(raw, f"--set {key.strip()}") if raw.strip() else ""
    return key.strip(), value


def load_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    tree = read_yaml(path.read_text(), f"config file {path}") or {}
    if not isinstance(tree, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of keys")
    return flatten(tree)


def resolve(model: str | None = None, file: str | Path | None = None,
            options: dict[str, Any] | None = None, sets: list[str] | None = None) -> RunConfig:
    """The full config of a run, validated; see the module docstring for the layering."""
    from hflow.agents.registry import apply_preset, check_compatible

    layers: dict[str, Any] = {}
    if file is not None:
        layers.update(load_file(file))
    given = {k: v for k, v in (options or {}).items() if v is not None}
    if model is not None:
        given["model"] = model
    layers.update(given)
    for assignment in sets or []:
        key, value = parse_set(assignment)
        if key in given and given[key] != value:  # a flag and a --set that disagree
            raise ConfigError(f"'{key}' is given twice: {given[key]!r} by its command-line "
                              f"option and {value!r} by --set {key}=...; give it once")
        layers[key] = value
    model_name = layers.pop("model", "hiro")

    cfg = RunConfig()
    apply_preset(cfg, model_name)
    for key, value in layers.items():
        set_key(cfg, key, value)
    check_compatible(cfg, set(layers))
    validate(cfg)
    return cfg


def from_dict(tree: dict) -> RunConfig:
    """A run's config back from its record (config.json, policy.pt): every key as written."""
    from hflow.agents.registry import apply_preset

    flat = flatten(tree)
    cfg = RunConfig()
    apply_preset(cfg, flat.pop("model", "hiro"))
    for key, value in flat.items():
        set_key(cfg, key, value)
    validate(cfg)
    return cfg


def validate(cfg: RunConfig) -> None:
    """Checks that span several keys (one key's own checks happen in set_key)."""
    from hflow.envs.tasks import get_task, goal_space

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
    if t.steps % cfg.task.episode_steps:
        raise ConfigError(f"'train.steps' = {t.steps} must be a multiple of "
                          f"'task.episode_steps' = {cfg.task.episode_steps}")
    if cfg.hi.update_every % h.c and h.c % cfg.hi.update_every:
        raise ConfigError(f"'hi.update_every' = {cfg.hi.update_every} and 'hierarchy.c' = {h.c} "
                          f"must divide one another")
    if cfg.lo.policy == "flow" and goals.lo < spec.robot.nu:
        raise ConfigError(
            f"'task.lo' = {goals.lo} is below the action size {spec.robot.nu} of {spec.name}: "
            f"the flow maps the first {spec.robot.nu} goal elements to the action, so flow "
            f"models need lo >= {spec.robot.nu}")
    if cfg.flow.squash_eps <= 0 or cfg.flow.squash_eps >= 0.5:
        raise ConfigError(f"'flow.squash_eps' = {cfg.flow.squash_eps}: allowed (0, 0.5)")
    if not 0 < cfg.td3.tau <= 1 or not 0 <= cfg.td3.gamma <= 1:
        raise ConfigError("'td3.tau' must be in (0, 1] and 'td3.gamma' in [0, 1]")
    for key in ("td3.actor_lr", "td3.critic_lr", "td3.huber_delta"):
        if _get(cfg, key) <= 0:
            raise ConfigError(f"config key '{key}' = {_get(cfg, key)!r}: must be > 0")
    for key in ("hi.explore_sigma", "lo.explore_sigma", "td3.target_noise",
                "td3.target_noise_clip", "hierarchy.hiro_candidate_sigma"):
        if _get(cfg, key) < 0:
            raise ConfigError(f"config key '{key}' = {_get(cfg, key)!r}: must be >= 0")
    for level in ("lo", "hi"):
        size = _get(cfg, f"{level}.buffer_size")
        if cfg.td3.batch_size > size:
            raise ConfigError(f"'td3.batch_size' = {cfg.td3.batch_size} is larger than "
                              f"'{level}.buffer_size' = {size}: that level could never update")
    device = t.device
    if not (device in ("auto", "cpu", "cuda") or (device.startswith("cuda:")
                                                  and device[5:].isdigit())):
        raise ConfigError(f"config key 'train.device' = {device!r}: allowed values: auto, cpu, "
                          f"cuda, cuda:N")


def _get(cfg: RunConfig, key: str):
    value = cfg
    for part in key.split("."):
        value = getattr(value, part)
    return value


def describe() -> str:
    """Every key with its default and documentation, for `hflow train --help-config`."""
    lines = []

    def walk(obj, prefix=""):
        for name, f in _fields(obj).items():
            value = getattr(obj, name)
            if dataclasses.is_dataclass(value):
                walk(value, f"{prefix}{name}.")
                continue
            extra = []
            if f.metadata.get("choices"):
                extra.append("one of " + "|".join(f.metadata["choices"]))
            if f.metadata.get("doc"):
                extra.append(f.metadata["doc"])
            lines.append(f"{prefix}{name} = {value!r}" + (f"  # {'; '.join(extra)}" if extra
                                                          else ""))

    walk(RunConfig())
    return "\n".join(lines)
