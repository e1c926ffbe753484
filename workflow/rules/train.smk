# One training job per (task, model, hi, lo, seed group): the group's seeds train in lockstep
# in one process, each with its own outputs. One rule per seed group, because a rule's outputs
# must be spelled out and they name the group's seeds. Resume checkpoints live under
# {out}/state, which is not an output: Snakemake never deletes it, so a retried or requeued
# job continues where it stopped. Each seed's policy.pt is written beside its metrics but is not
# an output: nothing downstream reads it, and a clone that holds only the metrics and records
# (the learning suite's results in git) must redraw without training.
#
# The rule is a `shell:` rule on purpose: Snakemake reruns a `script:` rule whenever the
# script file is newer than the outputs, and a fresh git clone gives every file its checkout
# time, so a clone would retrain results it already holds. The job's options
# (hflow.grid.job_options, validated at parse time) travel as --model and one shell-quoted
# --set per key (hflow.grid.job_arguments); each seed's config.json records them (rerun or
# extend a job by hand with `hflow train --config .../seed<N>/config.json`).

for _seeds in SEED_GROUPS:

    rule:
        name:
            f"train_{group_name(_seeds).replace('-', '_')}"
        output:
            metrics=[seed_file(RUN, seed, METRICS) for seed in _seeds],
            records=[seed_file(RUN, seed, RECORD) for seed in _seeds],
        params:
            args=lambda wc, _seeds=_seeds: job_arguments(
                config, RunId(wc.task, wc.model, int(wc.hi), int(wc.lo)), _seeds
            ),
            out=RUN,
            state=f"{run_dir(f'{OUT}/state')}/{group_name(_seeds)}",
        conda:
            ENV
        log:
            f"{run_dir(f'{OUT}/logs')}/{group_name(_seeds)}.log",
        threads: config["resources"]["threads"]
        resources:
            mem_mb=config["resources"]["mem_mb"],
            runtime=lambda wc, attempt: config["resources"]["runtime"] * attempt,
            gpu=0 if config["device"] == "cpu" else 1,
        # the log gets a plain progress line every 30 s (steps, SPS, ETA): `tail -f` it
        shell:
            "hflow train {params.args} --out {params.out:q} --state-dir {params.state:q}"
            " > {log:q} 2>&1"
