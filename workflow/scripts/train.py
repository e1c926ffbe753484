"""A training job: write its options to its job config file, then `hflow train --config` it.

The options come from hflow.grid.job_options (the run contract, checked at parse time);
they travel as a YAML file, so values with spaces or brackets arrive intact.
"""

import subprocess
import sys

from hflow.grid import write_job_config

sm = snakemake  # noqa: F821 - provided by Snakemake's script directive
write_job_config(sm.params.job_config, sm.params.options)
with open(sm.log[0], "w") as log:
    done = subprocess.run(
        ["hflow", "train", "--config", sm.params.job_config, "--out", sm.params.out,
         "--state-dir", sm.params.state, "--no-progress"],
        stdout=log, stderr=subprocess.STDOUT)
sys.exit(done.returncode)
