"""Tasks: what a run learns and how it is judged.

- :mod:`nnopt.tasks.spec` — the `Task` description (metric names, what "best" means, console and report columns)
  and the registry by name. Plain data, no torch: the report reads it.
- :mod:`nnopt.tasks.module` — `TaskModule`, the LightningModule mechanics every task shares.
- :mod:`nnopt.tasks.classification`, :mod:`nnopt.tasks.regression` — nnopt's own tasks.
- :mod:`nnopt.tasks.rebuild` — the one way to build a task module from a config, or from a checkpoint.

Your own task: subclass `TaskModule` (or `Classifier`), give it a `task = register(Task(...))`, and name the class in
a `task` config of your own (`conf/task/<name>.yaml` with `_target_: your_package.YourTask`).
"""
