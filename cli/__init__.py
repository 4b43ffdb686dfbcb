"""The `simtrain` command line: the third entry point beside the API (`api/`) and the worker (`worker/`).

    simtrain --help            (the console script, `cli.app:main`)
    python -m cli --help

- `cli.app`: the typer app, `main()`, the one error line for every simtrain error.
- `cli.service`: dev, serve, migrate, worker, keys (with `cli.processes`: the children it starts).
- `cli.jobs`: submit, status, download, cancel, jobs list.  `cli.datasets`: datasets upload / list.
- `cli.compare`: compare.  `cli.jobfields`: the job fields submit and compare share.
- `cli.connect`: --url / --api-key and the client.  `cli.output`, `cli.tables`, `cli.progress`: what it
  prints.

It imports `core/` and `migrations/` only; the API and the worker run as processes by module name. All HTTP
goes through `core.client.SimtrainClient`.
"""
