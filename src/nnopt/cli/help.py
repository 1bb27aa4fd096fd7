"""nnopt's `--help`: description, config groups with their options (the user's included), examples."""

from __future__ import annotations

from nnopt.cli.argv import config_sources
from nnopt.errors import fail

HELP = """\
nnopt-{app}: neural-network optimization experiments (Hydra configs, PyTorch Lightning).
nnopt-train fits and tests one configuration and writes <run dir>/summary.json (metrics, efficiency,
checkpoints); nnopt-eval tests a checkpoint; -m runs a sweep and writes a report of its jobs.

Usage: nnopt-{app} [group=option ...] [key.path=value ...] [-m] [--cfg job] [-cd DIR]

== Config groups (group=option) ==
{groups}

== Examples ==
  nnopt-train                                          # MLP on digits, Adam, CSV logs under logs/
  nnopt-train model=lenet5 optimizer=sgd optimizer.lr=0.05 trainer.max_epochs=5
  nnopt-train debug=fast                               # a few batches of everything: checks the path
  nnopt-train experiment=digits_lenet5                 # a preset from conf/experiment
  nnopt-train -m optimizer=sgd,adam model=mlp,lenet5   # 4-job sweep; report in the sweep dir
  nnopt-train --cfg job optimizer=sgd                  # print the composed config, run nothing
  nnopt-train -cd my_conf model=mynet                  # your own config dir, merged with nnopt's groups
  nnopt-eval ckpt_path=logs/train/runs/STAMP/checkpoints/last.ckpt

Hydra's flags (-m, --cfg job|hydra|all, -cd DIR, -cn NAME, --resolve, ...): --hydra-help.
Configs: {config_dir}
"""


def print_help(app: str, flags: dict[str, str], args: list[str], config_name: str) -> None:
    """nnopt's --help: description, config groups with their options (the user's included), examples.

    Printed here rather than through Hydra's help template: Hydra lists every hydra/ group too (~100 look-ups,
    over a second of CPU), and this keeps --help free of torch and Lightning imports.
    """
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.object_type import ObjectType
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        overrides = OverridesParser.create().parse_overrides([a for a in args if "=" in a])
    except Exception as exc:  # noqa: BLE001
        fail(f"cannot parse overrides: {str(exc).splitlines()[0]}")
    primary, searchpath, _ = config_sources(flags, overrides, config_name)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=primary, version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        groups = [g for g in loader.get_group_options("", ObjectType.GROUP, overrides=searchpath) if g != "hydra"]
        lines = []
        for group in sorted(groups):
            options = sorted(loader.get_group_options(group, ObjectType.CONFIG, overrides=searchpath))
            if options:
                lines.append(f"{group}: {', '.join(options)}")
    GlobalHydra.instance().clear()
    print(HELP.format(app=app, groups="\n".join(lines), config_dir=primary), end="")
