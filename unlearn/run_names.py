"""A run's name and group on the dashboard (W&B): what sets the run apart, read from its overrides.

Why: until the 43rd session every W&B run was named `<method>-seed<seed>` and grouped by data, forget split, model
and method, so the jobs of `train.py -m method=ga method.optimizer.lr=1e-5,5e-5` (or of the frontier's strength
sweep, `--base logger=wandb`; or `teach_seed=0,1`) were several runs of one name, and W&B drew one group's mean line
over different settings. Now:

- name: `<method>[-<setting>][-teach<teach_seed>]-seed<seed>`, the setting being the run's overrides (the command
  line's under `train.py`, single or `-m`; the frontier's own and its `--base`), sorted by key, less what the name
  says already (the method, the seeds) and what moves no number (NOT_NAMED), a method's own prefix dropped as the
  report's row names drop it (`optimizer.lr=5e-05`, `alpha=5`): `ga-optimizer.lr=5e-05-seed0`;
- group: `<data>-<forget split>-<model>-<method>[-<setting>]`, the setting less the data, model and forget split its
  head says: the runs that differ only by `seed` and `teach_seed`, whose mean ± std W&B draws. The report groups
  by the resolved config instead, so an override written at its default value is a group of its own here and
  not in the report (docs/guide/comparing_methods.md).

Only a W&B logger whose `name` (or `group`) is null is named: a `logger.name=...` given wins.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from omegaconf import DictConfig, OmegaConf, open_dict

from unlearn.later_keys import TRAINER_NEUTRAL
from unlearn.report import NOT_A_SETTING, without_method_prefix

# what the group's head says (these keys alone: `data.spec.num_people` is a setting); the name says them too, as
# the runs of `-m model=a,b` would share a name otherwise; `method` starts both
GROUP_SAYS = ("data", "data.name", "data.forget_split", "model", "model.name")
# what moves no number, with the keys under it: the report's NOT_A_SETTING (seeds, paths, the logger, caching
# flags), Hydra's own, the trainer keys that change no number
NOT_NAMED = ("hydra", *NOT_A_SETTING, *(f"trainer.{k}" for k in TRAINER_NEUTRAL))
# the loggers named here (a CSV logger's `name` is its directory's)
NAMED_LOGGERS = ("unlearn.wandb_logger.WandbLogger", "lightning.pytorch.loggers.WandbLogger",
                 "lightning.pytorch.loggers.wandb.WandbLogger")
ESCAPED = r"\${"  # an interpolation's start as OmegaConf keeps it text
MAX_LENGTH = 128  # W&B's longest project name; a longer setting is cut and a hash of the whole appended


def setting_overrides(method: str, overrides: Sequence[str], said: Sequence[str] = ()) -> list[str]:
    """The overrides that set the run apart, less `said`, sorted by key, each key without `method.` or
    `<method>.` (a deletion keeps its `~`)."""
    out = []
    for o in overrides:
        key, eq, value = o.partition("=")
        deleted, key = key.lstrip("+").startswith("~"), key.lstrip("+~")
        if key == "method" or key in said or any(key == k or key.startswith(k + ".") for k in NOT_NAMED):
            continue
        key = without_method_prefix(method, key)
        # an interpolation given as a value is text in the name (escaped: OmegaConf would resolve it there)
        value = value.replace("${", ESCAPED)
        out.append((key, f"{'~' * deleted}{key}{eq}{value}"))
    return [o for _, o in sorted(out)]


def _bounded(text: str, room: int) -> str:
    """`text`, or where longer than `room` its start and an 8-digit hash of the whole (two cut texts stay apart)."""
    if len(text) <= room:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{text[:max(room - 9, 0)]}~{digest}"


def dashboard_names(cfg: DictConfig, overrides: Sequence[str]) -> tuple[str, str]:
    """(name, group) of the run `cfg` made with `overrides`."""
    method = str(OmegaConf.select(cfg, "method.name", default="run", throw_on_resolution_failure=False))
    named = ",".join(setting_overrides(method, overrides))
    grouped = ",".join(setting_overrides(method, overrides, GROUP_SAYS))
    seed, teach_seed = (OmegaConf.select(cfg, k, default=None, throw_on_resolution_failure=False)
                        for k in ("seed", "teach_seed"))
    seeds = (f"-teach{teach_seed}" if teach_seed != seed else "") + f"-seed{seed}"
    # a key a user's config lacks is left out (the run's own checks name what it needs; a data config without
    # `name` runs): naming never stops a run, nor composing one (compose_config names before the checks run)
    head = "-".join(str(v) for v in (*(OmegaConf.select(cfg, k, default=None, throw_on_resolution_failure=False)
                                       for k in ("data.name", "data.forget_split", "model.name")), method)
                    if v is not None)
    name = f"{method}-{_bounded(named, MAX_LENGTH - len(method) - len(seeds) - 1)}" if named else method
    group = f"{head}-{_bounded(grouped, MAX_LENGTH - len(head) - 1)}" if grouped else head
    return name + seeds, group


def name_logger(cfg: DictConfig, overrides: Sequence[str]) -> None:
    """Fill a W&B logger's null `name` and `group` in `cfg` (config.json and the dashboard's config then say them)."""
    logger = cfg.get("logger")
    if not isinstance(logger, DictConfig) or logger.get("_target_") not in NAMED_LOGGERS:
        return
    name, group = dashboard_names(cfg, overrides)
    with open_dict(logger):
        if logger.get("name") is None:
            logger.name = name
        if logger.get("group") is None:
            logger.group = group


def hydra_overrides() -> list[str] | None:
    """This job's overrides where Hydra launched it (`train.py`, each job of a `-m` sweep its own), else None."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return list(HydraConfig.get().overrides.task)
