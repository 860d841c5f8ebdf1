"""The run machinery every step shares: what a step's MLflow run holds and how it is
made, named, read back and printed.

- `params`: every entry point's parameters (the click options and MLproject's);
- `records`: typed records of logged runs, the one place that reads another run;
- `tracking`: one MLflow run per step, lineage tags, finding upstream runs;
- `naming`, `generated_names`: run names that say what ran;
- `outcome`: what a finished step prints;
- `outbox`: results kept on disk until the tracking server has them;
- `failures`: what a failed run records; `logins`: credentials, and refusals in words;
- `races`: writes that runs started together race to make;
- `cli`, `interrupts`: the command line, and Ctrl-C or SIGTERM.

Nothing here imports a step (`pixel_threshold.steps`).
"""
