"""Entry-point plumbing shared by every console script: early checks of the command line, nnopt's --help, and the
guard that turns failures into one line.

- :mod:`nnopt.cli.extras` — optional packages and the extra that installs each.
- :mod:`nnopt.cli.argv` — Hydra's command line as flags and overrides, and the config dirs it names.
- :mod:`nnopt.cli.precheck` — compose once before Hydra does: a typo costs one line, not a stack trace.
- :mod:`nnopt.cli.help` — `--help` without importing torch.
- :mod:`nnopt.cli.guard` — run a task or a whole app: bad input exits 2 with one line, a failure exits 1 naming its
  traceback file, a signal exits 128 + signal; in a multirun a failing job is recorded and the sweep goes on.
"""
