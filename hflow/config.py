"""The run configuration as plain data: typed sections with their defaults, ranges and choices.

Each section is a pydantic model; a field's default follows the source its description cites
(HIRO's code unless it says otherwise). Setting a key checks its type, choices and bounds;
an unknown key or a bad value fails with the key, the value and what is allowed. Layering
(defaults <- model preset <- file <- options <- `--set`) and the checks that span several keys
live above this module, in hflow.resolve; this module imports neither the agents nor the envs.
"""

from __future__ import annotations

import difflib
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hflow import HflowError


class ConfigError(HflowError):
    pass


# Bounds on what a config may hold, checked before anything is built from it: a 1 KB file of
# nested aliases expands to billions of values, a 13-character number to 100 million digits.
MAX_VALUES = 100_000  # values after aliases are expanded
MAX_DEPTH = 64  # nesting of mappings and lists
MAX_DIGITS = 30  # digits of a whole number (and its exponent bound: 10^30)


class _Loader(yaml.SafeLoader):
    """YAML as researchers write it: `1e-4` and `3e5` are numbers (PyYAML follows YAML 1.1,
    where a float needs a dot), and a key given twice is an error, not a silent overwrite.
    What is read is bounded (MAX_VALUES, MAX_DEPTH, MAX_DIGITS) before anything is built."""

    def get_single_node(self):
        node = super().get_single_node()
        if node is not None:
            _check_size(node)
        return node


def _check_size(root: yaml.Node) -> None:
    """Counts the values `root` expands to (an aliased node counts at every use, as it will
    be built) and its depth, without expanding it; refuses merge keys."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise ConfigError(f"nested deeper than {MAX_DEPTH} levels (line "
                              f"{node.start_mark.line + 1}{_source(node)})")
        if id(node) in sizes:
            return sizes[id(node)]
        if isinstance(node, yaml.MappingNode):
            for key, _ in node.value:
                if key.tag == "tag:yaml.org,2002:merge":
                    raise ConfigError(f"merge keys (<<) are not read (line "
                                      f"{key.start_mark.line + 1}{_source(key)}); write the "
                                      f"keys out")
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        else:
            children = []
        total = 1 + sum(size(child, depth + 1) for child in children)
        if total > MAX_VALUES:
            raise ConfigError(f"expands to more than {MAX_VALUES:,} values (aliases of "
                              f"aliases?); a config is a few hundred")
        sizes[id(node)] = total
        return total

    size(root, 0)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))


_WHOLE_EXPONENT = re.compile(r"[-+]?[0-9]+[eE]\+?[0-9]+")


def _int_as_written(loader: _Loader, node: yaml.ScalarNode) -> int:
    """Base 10 whatever the leading zeros: YAML 1.1 reads `010` as octal 8 (and `0x10`,
    `0b10`, `1:30` in other bases; those are refused)."""
    text = loader.construct_scalar(node).replace("_", "")
    if not re.fullmatch(r"[-+]?[0-9]+", text):
        raise ConfigError(f"{text!r} (line {node.start_mark.line + 1}{_source(node)}) is not "
                          f"a base-10 number; write numbers in base 10")
    _check_digits(len(text.lstrip("+-").lstrip("0")), node)
    return int(text, 10)


def _check_digits(digits: int, node: yaml.ScalarNode) -> None:
    if digits > MAX_DIGITS:
        shown = node.value if len(node.value) <= 20 else f"{node.value[:20]}..."
        raise ConfigError(f"{shown} (line {node.start_mark.line + 1}"
                          f"{_source(node)}) has more than {MAX_DIGITS} digits; no hflow key "
                          f"takes a number that large")


def _float_as_written(loader: _Loader, node: yaml.ScalarNode) -> int | float:
    """A whole number in exponent form without a dot (`2e2`, `3e5`) is an integer, so it
    fits integer keys; every other float as YAML reads it."""
    text = loader.construct_scalar(node).replace("_", "")
    if _WHOLE_EXPONENT.fullmatch(text):
        mantissa, exponent = re.split("[eE]", text)
        # bounded before it is computed: 1e99999999 would be 100 million digits
        exponent = exponent.lstrip("+")
        _check_digits(len(mantissa.lstrip("+-").lstrip("0"))
                      + (int(exponent) if len(exponent) <= 6 else 10**6), node)
        return int(mantissa, 10) * 10 ** int(exponent)
    value = loader.construct_yaml_float(node)
    if not math.isfinite(value):
        raise ConfigError(f"{node.value!r} (line {node.start_mark.line + 1}{_source(node)}) "
                          f"is not a finite number")
    return value


_Loader.add_constructor("tag:yaml.org,2002:int", _int_as_written)
_Loader.add_constructor("tag:yaml.org,2002:float", _float_as_written)


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
    except ConfigError as err:  # from a constructor (a repeated key, a number) or a bound
        raise ConfigError(f"{source}: {err}") from None
    except RecursionError:  # the YAML parser itself recurses per nesting level
        raise ConfigError(f"{source}: nested deeper than {MAX_DEPTH} levels") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{source}: cannot read YAML{where}: {problem}") from None


class Section(BaseModel):
    # strict: no silent coercion ("3" is not 3, true is not 1); assignment is validated, so a
    # key set after construction gets the same checks as a default.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=True,
                              allow_inf_nan=False)


PosInt = Annotated[int, Field(ge=1)]
Sizes = Annotated[list[PosInt], Field(min_length=1)]


class TaskConfig(Section):
    name: str = Field("AntPushSingle", description="task, e.g. AntFallMulti (`hflow envs`)")
    hi: int | None = Field(None, description="target dims (None: the task's own)")
    lo: int | None = Field(None, description="subgoal dims (None: the robot's default)")
    episode_steps: int = Field(500, ge=1, description="env steps per episode (HIRO: 500)")
    block_shrink: float = Field(0.99, gt=0, le=1, description="see docs/tasks.md")
    manual_collision: bool = Field(
        True, description="HIRO's point: undo a step that ends inside a wall (maze_env.py); "
                          "false: contacts only (docs/tasks.md)")
    eval_target: Annotated[list[float], Field(min_length=1)] | None = Field(
        None, description="replaces the task's fixed target (hi values)")


# Marks a key that may differ between a checkpoint and the command that resumes it, and so
# between the seeds of one run (RESUMABLE_CHANGES): it changes how a run goes, not its numbers.
RESUMABLE = {"resumable": True}
# Marks a key that only acts with one off-policy correction (hierarchy.correction): setting it
# for a model with another is an error (hflow.agents.registry.check_compatible).
FLOW_RELABEL = {"correction": "flow"}
HIRO_RELABEL = {"correction": "hiro"}


class TrainConfig(Section):
    steps: int = Field(10_000_000, ge=1, description="env steps per seed",
                       json_schema_extra=RESUMABLE)
    seeds: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)] = Field(
        default_factory=lambda: [0],
        description="seeds trained together in one process (members)")
    warmup: int = Field(2_500, ge=0, description="env steps collected before updates start "
                                                 "(HIRO: 5 episodes, initial_episodes)")
    warmup_policy: Literal["policy", "uniform"] = Field(
        "policy", description="warm-up actions and goals: the initial policies plus "
                              "exploration noise, clipped (HIRO's train.py), or uniform over "
                              "the bounds")
    eval_every: int = Field(50_000, ge=1, description="env steps between evaluations")
    checkpoint_every: int | None = Field(
        None, ge=1, description="env steps between resume checkpoints, a multiple of "
                                "eval_every (None: eval_every)", json_schema_extra=RESUMABLE)
    eval_episodes: int = Field(50, ge=1, description="episodes per evaluation and target")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda|cuda:\d+)$",
                        description="auto, cpu, cuda or cuda:N")
    torch_threads: int = Field(1, ge=1, description="CPU threads for torch (1 keeps CPU runs "
                                                    "deterministic)", json_schema_extra=RESUMABLE)
    env_threads: int = Field(1, ge=1, description="threads stepping the members' envs (MuJoCo "
                                                  "releases the GIL); results are identical "
                                                  "for any count", json_schema_extra=RESUMABLE)
    capture: Literal["auto", "cuda", "eager"] = Field(
        "auto", description="acting and updates: cuda = replayed as CUDA graphs, eager = op "
                            "by op, auto = cuda on a CUDA device (same numbers either way)",
        json_schema_extra=RESUMABLE)
    checkpoints_kept: int = Field(2, ge=1, description="newest resume checkpoints kept",
                                  json_schema_extra=RESUMABLE)
    tensorboard: bool = Field(
        False, description="also write TensorBoard event files to seed<N>/tensorboard "
                           "(metrics and every loss value; needs the tensorboard extra)",
        json_schema_extra=RESUMABLE)
    flush_denormal: bool = Field(
        True, description="CPU: flush float32 denormals to zero while the networks update "
                          "(Adam's moments of units whose gradient stays 0 decay into the "
                          "denormal range, where a CPU computes many times slower); the "
                          "physics is never flushed. No effect on a GPU. Resumable: what it "
                          "changes lies below a normal parameter's last bit",
        json_schema_extra=RESUMABLE)


class TD3Config(Section):
    gamma: float = Field(0.99, ge=0, le=1, description="discount")
    tau: float = Field(0.005, gt=0, le=1, description="target network update rate")
    actor_lr: float = Field(1e-4, gt=0)
    critic_lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(100, ge=1)
    policy_delay: int = Field(2, ge=1, description="updates per actor (and target) update")
    policy_delay_mode: Literal["zero_loss", "skip"] = Field(
        "zero_loss", description="off updates: actor loss x 0 but Adam still steps (HIRO's "
                                 "train.py), or no step (TD3 paper)")
    target_noise: float = Field(0.2, ge=0, description="in action units, as HIRO")
    target_noise_clip: float = Field(0.5, ge=0)
    huber_delta: float = Field(1.0, gt=0)
    critic_action_input: Literal["both_layers", "first_layer", "second_layer"] = Field(
        "both_layers", description="layers that take the action; HIRO's critic: both "
                                   "(agents/ddpg_networks.py)")


class LevelConfig(Section):
    actor: Sizes = Field(default_factory=lambda: [300, 300],
                         description="hidden sizes (flow models: forward/conditional parts)")
    critic: Sizes = Field(default_factory=lambda: [300, 300], description="hidden sizes")
    explore_sigma: float = Field(1.0, ge=0, description="Gaussian noise, action units")
    reward_scale: float = Field(1.0, description="multiplies the level's reward")
    update_every: int = Field(1, ge=1, description="env steps between updates")
    buffer_size: int = Field(200_000, ge=1, description="replay capacity")


class HighLevelConfig(LevelConfig):
    # HIRO's high level: rewards x 0.1 and one update per c = 10 env steps (train_uvf.gin).
    reward_scale: float = Field(0.1, description="multiplies the level's reward")
    update_every: int = Field(10, ge=1, description="env steps between updates")


class LowLevelConfig(LevelConfig):
    policy: Literal["mlp", "flow"] = Field("mlp", description="MLP actor (HIRO) or "
                                                              "conditional flow")
    zero_xy: bool | None = Field(
        None, description="low level does not see x, y; None: HIRO's setting for the robot's "
                          "subgoal config (ant: true, hiro_orig.gin; point: false, hiro_xy.gin)")
    subgoal_reached_within: float = Field(
        1.0, gt=0, description="a c-step segment whose final distance to its subgoal (the "
                               "norm the intrinsic reward takes) is below this counts in "
                               "metrics.csv's low_subgoal_reached; a metric, not training")


class HierarchyConfig(Section):
    c: int = Field(10, ge=1, description="env steps per high-level goal")
    correction: Literal["none", "hiro", "flow"] = Field(
        "hiro", description="off-policy correction of stored goals")
    segment_end_goal: Literal["new_goal", "transition"] = Field(
        "new_goal", description="low level's stored next goal at a segment's last step: the "
                                "goal the high level just chose (HIRO's train.py) or "
                                "h(s, g, s')")
    high_episode_end: Literal["terminal", "bootstrap"] = Field(
        "terminal", description="the segment that ends an episode: discount 0 (HIRO's "
                                "train.py) or bootstrapped like the others")
    hiro_candidates: int = Field(8, ge=1, description="sampled candidates besides g and "
                                                      "delta-s", json_schema_extra=HIRO_RELABEL)
    hiro_candidate_sigma: float = Field(0.5, ge=0, description="x subgoal half-range",
                                        json_schema_extra=HIRO_RELABEL)


class FlowConfig(Section):
    condition: Literal["state", "goal", "action"] = Field(
        "action", description="flow condition: s (LSP), enc(s,g) (Ma; Fig. 5 variant), "
                              "mu_zstate(s, mu_z(s,g)) (ours)")
    inverse: Literal["alg1", "alg2"] = Field("alg1", description="stored or recomputed "
                                                                 "condition",
                                             json_schema_extra=FLOW_RELABEL)
    reduce: Literal["first", "mean"] = Field("first", description="how the c per-step "
                                                                  "inverses combine",
                                             json_schema_extra=FLOW_RELABEL)
    rest: Literal["keep", "delta_s"] = Field(
        "keep", description="relabelled goal elements beyond d: stored values or "
                            "s_t+c - s_t", json_schema_extra=FLOW_RELABEL)
    coupling_layers: int = Field(4, ge=1)
    hidden: Sizes = Field(default_factory=lambda: [150, 150],
                          description="scale/translation nets")
    z_state_dim: int = Field(19, ge=1, description="size of a_{z-state}")
    relabel_from: Literal["fdgm_output", "executed_action"] = Field(
        "fdgm_output", description="what the inverse takes: a_rnvp, the FDGM part's output "
                                   "before noise and squash, or the executed action",
        json_schema_extra=FLOW_RELABEL)
    outside_range: Literal["clip", "keep"] = Field(
        "clip", description="a segment whose inverse leaves the subgoal range: clip it to the "
                            "range, or keep its stored goal (no in-range goal reproduces it)",
        json_schema_extra=FLOW_RELABEL)
    scale_bound: float = Field(2.0, gt=0, description="|log scale| <= bound per layer")
    shift_bound: float = Field(0.0, ge=0, description="|coupling shift| <= bound per layer; "
                                                      "0: unbounded (RealNVP)")
    presquash_penalty: float = Field(0.0, ge=0, description="weight of mean(y^2) of the "
                                                            "pre-squash output in L_rnvp")
    log_density_weight: float = Field(0.0, ge=0, description="weight of log p(a | cond) "
                                                             "(x ~ N(0, I)) in L_rnvp")
    goal_scaling: Literal["range", "none"] = Field(
        "range", description="divide g_{1:d} by its half-range before the flow")
    squash_eps: float = Field(1e-6, gt=0, lt=0.5)


class RunConfig(Section):
    model: str = Field("hiro", description="preset (`hflow models`)")
    task: TaskConfig = Field(default_factory=TaskConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    td3: TD3Config = Field(default_factory=TD3Config)
    high: HighLevelConfig = Field(default_factory=HighLevelConfig)
    low: LowLevelConfig = Field(default_factory=LowLevelConfig)
    hierarchy: HierarchyConfig = Field(default_factory=HierarchyConfig)
    flow: FlowConfig = Field(default_factory=FlowConfig)

    def to_dict(self) -> dict:
        return self.model_dump()


# -- keys ----------------------------------------------------------------------------------

def _sections(obj: BaseModel) -> dict[str, BaseModel]:
    return {name: value for name in type(obj).model_fields
            if isinstance(value := getattr(obj, name), BaseModel)}


def all_keys(obj: BaseModel | None = None, prefix: str = "") -> list[str]:
    obj = RunConfig() if obj is None else obj
    keys = []
    for name in type(obj).model_fields:
        value = getattr(obj, name)
        keys += (all_keys(value, f"{prefix}{name}.") if isinstance(value, BaseModel)
                 else [f"{prefix}{name}"])
    return keys


def _unknown(key: str, scope: BaseModel, prefix: str) -> ConfigError:
    valid = [f"{prefix}{k}" for k in type(scope).model_fields]
    close = difflib.get_close_matches(key, all_keys(), n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return ConfigError(f"unknown config key '{key}'{hint} (valid here: {', '.join(valid)})")


_EXPECTED = {"int_type": "an integer", "float_type": "a number", "bool_type": "true or false",
             "string_type": "a string", "list_type": "a list", "finite_number": "a finite number",
             "too_short": "a non-empty list"}
_BOUND = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=",
          "less_than": "<"}


def _explain(key: str, value: Any, err: ValidationError) -> ConfigError:
    """pydantic's first error, as one line naming the key, the value and what is allowed."""
    e = err.errors()[0]
    kind, ctx = e["type"], e.get("ctx", {})
    item = "".join(f"[{i}]" for i in e["loc"][1:] if isinstance(i, int))
    where = f" at item {item}" if item else ""  # an element of a list-valued key
    if kind == "literal_error":
        allowed = ", ".join(re.findall(r"'([^']*)'", ctx.get("expected", "")))
        why = f"allowed values: {allowed}"
    elif kind in _BOUND:
        bound = next(iter(ctx.values()))
        why = f"must be {_BOUND[kind]} {bound}{where}"
    elif kind == "string_pattern_mismatch" and key == "train.device":
        why = "allowed values: auto, cpu, cuda, cuda:N"
    elif kind in _EXPECTED:
        why = f"expected {_EXPECTED[kind]}{where}"
    else:
        why = e["msg"]
    return ConfigError(f"config key '{key}' = {value!r}: {why}")


def set_key(cfg: RunConfig, key: str, value: Any) -> None:
    """Sets a dotted key ('td3.gamma') with its type, choice and bound checks."""
    parts = key.split(".")
    scope, prefix = cfg, ""
    for part in parts[:-1]:
        sub = _sections(scope).get(part)
        if sub is None:
            raise _unknown(key, scope, prefix)
        scope, prefix = sub, f"{prefix}{part}."
    name = parts[-1]
    if name not in type(scope).model_fields or name in _sections(scope):
        raise _unknown(key, scope, prefix)
    if isinstance(value, tuple):
        value = list(value)
    try:
        setattr(scope, name, value)
    except ValidationError as err:
        raise _explain(key, value, err) from None


def get_key(cfg: RunConfig, key: str) -> Any:
    value: Any = cfg
    for part in key.split("."):
        value = getattr(value, part)
    return value


def marked_keys(mark: str, model: type[BaseModel] | None = None,
                prefix: str = "") -> dict[str, Any]:
    """{key: the mark's value} for every key whose field carries `mark` (RESUMABLE, ...)."""
    keys: dict[str, Any] = {}
    for name, field in (model or RunConfig).model_fields.items():
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            keys.update(marked_keys(mark, sub, f"{prefix}{name}."))
        elif isinstance(field.json_schema_extra, dict) and mark in field.json_schema_extra:
            keys[f"{prefix}{name}"] = field.json_schema_extra[mark]
    return keys


# The keys marked RESUMABLE (not the device: torch's CPU and CUDA generator states do not
# convert).
RESUMABLE_CHANGES = tuple(marked_keys("resumable"))


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


def read_yaml_file(path: str | Path) -> Any:
    """A YAML (or JSON) file read with `read_yaml`; a missing or non-text file is one line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        text = path.read_text(encoding="utf-8-sig")  # a BOM is not part of the first key
    except UnicodeDecodeError as err:
        raise ConfigError(f"config file {str(path)!r} is not UTF-8 text (byte "
                          f"{err.start}); a config is a YAML file") from None
    except OSError as err:
        raise ConfigError(f"cannot read config file {str(path)!r}: {err.strerror}") from None
    return read_yaml(text, f"config file {path}")


def load_file(path: str | Path) -> tuple[dict[str, Any], bool]:
    """A YAML file of config keys, or a run's record (a seed's config.json, whose `config` holds
    every key of that run): (the keys, flattened; whether it was a record)."""
    tree = read_yaml_file(path) or {}
    if not isinstance(tree, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of keys")
    record = isinstance(tree.get("config"), dict) and "config_hash" in tree
    return flatten(tree["config"] if record else tree), record


def describe() -> str:
    """Every key with its default and documentation, for `hflow train --help-config`."""
    lines = []

    def walk(obj: BaseModel, prefix: str = "") -> None:
        for name, info in type(obj).model_fields.items():
            value = getattr(obj, name)
            if isinstance(value, BaseModel):
                walk(value, f"{prefix}{name}.")
                continue
            extra = []
            if get_origin(info.annotation) is Literal:
                extra.append("one of " + "|".join(get_args(info.annotation)))
            for m in info.metadata:
                for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
                    if getattr(m, attr, None) is not None:
                        extra.append(f"{sign} {getattr(m, attr)}")
            if info.description:
                extra.append(info.description)
            lines.append(f"{prefix}{name} = {value!r}" + (f"  # {'; '.join(extra)}" if extra
                                                          else ""))

    walk(RunConfig())
    return "\n".join(lines)
