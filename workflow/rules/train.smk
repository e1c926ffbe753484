# One training job per (task, model, hi, lo, seed group): the group's seeds train in lockstep
# in one process, each with its own outputs. One rule per seed group, because a rule's outputs
# must be spelled out and they name the group's seeds. Resume checkpoints live under
# {out}/state, which is not an output: Snakemake never deletes it, so a retried or requeued
# job continues where it stopped.

for _seeds in SEED_GROUPS:
    _group = "-".join(map(str, _seeds))

    rule:
        name:
            f"train_seeds_{_group.replace('-', '_')}"
        output:
            metrics=expand(f"{RUN}/seed{{seed}}/metrics.csv", seed=_seeds, allow_missing=True),
            records=expand(f"{RUN}/seed{{seed}}/config.json", seed=_seeds, allow_missing=True),
            policies=expand(f"{RUN}/seed{{seed}}/policy.pt", seed=_seeds, allow_missing=True),
        params:
            out=RUN,
            state=f"{OUT}/state/{{task}}/{{model}}_{{hi}}_{{lo}}/seeds-{_group}",
            seeds=",".join(map(str, _seeds)),
            steps=config["steps"],
            device=config["device"],
            sets=lambda wc: " ".join(
                f"--set {s}"
                for s in train_sets(wc.model)
                + [f"train.eval_every={config['eval_every']}",
                   f"train.eval_episodes={config['eval_episodes']}"]
            ),
        conda:
            ENV
        log:
            f"{OUT}/logs/{{task}}/{{model}}_{{hi}}_{{lo}}/seeds-{_group}.log",
        threads: config["resources"]["threads"]
        resources:
            mem_mb=config["resources"]["mem_mb"],
            runtime=lambda wc, attempt: config["resources"]["runtime"] * attempt,
            gpu=0 if config["device"] == "cpu" else 1,
        shell:
            "hflow train --model {wildcards.model} --task {wildcards.task}"
            " --hi {wildcards.hi} --lo {wildcards.lo} --seeds {params.seeds}"
            " --steps {params.steps} --device {params.device} --out {params.out}"
            " --state-dir {params.state} --set train.torch_threads={threads}"
            " {params.sets} --no-progress > {log} 2>&1"
