"""The model registry: named presets of the one hierarchical agent, and Table II from them.

A preset is data: a mapping of config keys to values. Its Table II flags are read from the
config it resolves to (off-policy correction: `hierarchy.correction != none`; FDGM:
`low.policy == flow`), defaults included, so a new preset shows up correctly in the table
without being listed anywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from hflow.config import ConfigError, RunConfig, marked_keys, set_key

# The paper's model: "Actor of FDGM: 150, all other NNs: 180, a_{t,z-state} = 19" (ablation).
_FLOW_NETS = {"high.actor": [180, 180], "high.critic": [180, 180], "low.actor": [180, 180],
              "low.critic": [180, 180], "flow.hidden": [150, 150], "flow.z_state_dim": 19}
# The paper's low level, with what keeps its inverse accurate (docs/interpretation.md,
# "Relabelling"): the FDGM part's log-density in L_rnvp and a pre-squash penalty.
_OURS = {"low.policy": "flow", "flow.condition": "action", "flow.log_density_weight": 0.01,
         "flow.presquash_penalty": 0.01, **_FLOW_NETS}
# Its relabelling (Algorithms 1 and 2). Where no in-range goal reproduces a stored output the
# paper says nothing; HIRO clips its candidates into the range, so the inverse is clipped too
# (flow.outside_range's default; docs/interpretation.md). The other reading is a control.
_OURS_FLOW = {**_OURS, "hierarchy.correction": "flow"}


@dataclass(frozen=True)
class Preset:
    name: str
    label: str  # legend label in figures: `{label}_{hi}_{lo}`
    paper_name: str  # row name in Table II ("" when the paper has no row for it)
    description: str
    settings: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def config(self) -> RunConfig:
        """The config this preset resolves to on the defaults."""
        cfg = RunConfig(model=self.name)
        for key, value in self.settings.items():
            set_key(cfg, key, value)
        return cfg

    @property
    def off_policy_correction(self) -> bool:
        return self.config.hierarchy.correction != "none"

    @property
    def fdgm(self) -> bool:
        return self.config.low.policy == "flow"


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("ours", "ours", "Our model",
           "flow low level (forward, conditional, FDGM parts); exact inverse relabelling, "
           "Algorithm 1 (stored a_zstate and a_rnvp)",
           {**_OURS_FLOW, "flow.inverse": "alg1"}),
    Preset("hiro", "hiro", "HIRO",
           "MLP low level; HIRO's 10-candidate off-policy correction",
           {"low.policy": "mlp", "hierarchy.correction": "hiro"}),
    Preset("lsp", "lsp", "LSP",
           "flow low level conditioned on the state (latent space policies); no correction",
           {"low.policy": "flow", "flow.condition": "state", "hierarchy.correction": "none",
            **_FLOW_NETS}),
    Preset("ma", "ma", "Ma et al.",
           "encoder enc(s, g) conditioning a flow decoder; no correction",
           {"low.policy": "flow", "flow.condition": "goal", "hierarchy.correction": "none",
            **_FLOW_NETS}),
    Preset("ours_alg2", "ours", "",
           "ours with Algorithm 2: the condition recomputed by the current networks",
           {**_OURS_FLOW, "flow.inverse": "alg2"}),
    Preset("ours_goal_conditioned", "variant", "",
           "Fig. 5 variant: the conditional part takes g instead of a_z",
           {**_OURS_FLOW, "flow.condition": "goal", "flow.inverse": "alg1"}),
    Preset("lsp_corrected", "lsp", "",
           "Fig. 4's LSP with HIRO's off-policy correction added for a fair comparison",
           {"low.policy": "flow", "flow.condition": "state", "hierarchy.correction": "hiro",
            **_FLOW_NETS}),
    # Controls of the paper's model: is its relabelling helping, hurting or neutral? The paper
    # draws no such run, so their legend label is the preset name.
    Preset("ours_uncorrected", "ours_uncorrected", "",
           "control: ours with no off-policy correction (stored goals kept)",
           {**_OURS, "hierarchy.correction": "none"}),
    Preset("ours_hiro_corrected", "ours_hiro_corrected", "",
           "control: ours with HIRO's 10-candidate correction instead of the flow's inverse",
           {**_OURS, "hierarchy.correction": "hiro"}),
    Preset("ours_keep_outside", "ours_keep_outside", "",
           "control: ours whose segments keep their stored goal where the inverse leaves the "
           "subgoal range (flow.outside_range = keep) instead of taking it clipped",
           {**_OURS_FLOW, "flow.inverse": "alg1", "flow.outside_range": "keep"}),
)}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ConfigError(f"unknown model preset {name!r}; presets: {', '.join(PRESETS)}")
    return PRESETS[name]


def apply_preset(cfg: RunConfig, name: str) -> None:
    preset = get_preset(name)
    cfg.model = name
    for key, value in preset.settings.items():
        set_key(cfg, key, value)


# The keys that act with one correction only, and which (marked on their config fields)
CORRECTION_KEYS = marked_keys("correction")


def check_compatible(cfg: RunConfig, user_keys: set[str]) -> None:
    """Rejects options that the chosen preset cannot take, naming both."""
    model = cfg.model
    if cfg.hierarchy.correction == "flow" and cfg.low.policy != "flow":
        raise ConfigError(f"'hierarchy.correction' = flow inverts the low level's flow, but "
                          f"model '{model}' has no flow (low.policy = {cfg.low.policy})")
    for key in sorted(user_keys):
        if key.startswith("flow.") and cfg.low.policy != "flow":
            raise ConfigError(f"'{key}' does not apply to model '{model}': its low level is an "
                              f"MLP (low.policy = mlp), not a flow")
        needs = CORRECTION_KEYS.get(key)
        if needs is not None and cfg.hierarchy.correction != needs:
            raise ConfigError(f"'{key}' only acts with hierarchy.correction = {needs}; model "
                              f"'{model}' uses hierarchy.correction = {cfg.hierarchy.correction}")


def table2_rows() -> list[tuple[str, str, str]]:
    """Table II of the paper: (model, off-policy correction, FDGM) as O/X, from the presets'
    resolved configs; the Markdown and LaTeX renderings both read these rows."""
    mark = {True: "O", False: "X"}
    return [(p.paper_name, mark[p.off_policy_correction], mark[p.fdgm])
            for p in PRESETS.values() if p.paper_name]


def table2_markdown() -> str:
    import pandas as pd

    return pd.DataFrame(table2_rows(), columns=["Model", "Off-policy correction", "FDGM"]) \
        .to_markdown(index=False, colalign=("left", "center", "center"))


def presets_markdown() -> str:
    import pandas as pd

    mark = {True: "O", False: "X"}
    rows = [(f"`{p.name}`", p.label, mark[p.off_policy_correction], mark[p.fdgm],
             p.description) for p in PRESETS.values()]
    return pd.DataFrame(rows, columns=["preset", "label", "correction", "FDGM", "description"]) \
        .to_markdown(index=False, colalign=("left", "left", "center", "center", "left"))
