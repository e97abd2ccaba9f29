"""One results table for every method, split by modality: `python -m unlearn.report <dir> [<dir> ...] [--out DIR]`.

Why: each run prints only its own before/after table, so comparing GA, NPO and MANU (or MANU at several
alphas) meant opening many `metrics.json` files. This module gathers runs (a Hydra sweep dir of
`<job num>_<method>/` run dirs, or single run dirs) into the layout of the MANU paper's main table, where
every number is reported separately for multimodal (image + text) and text-only questions, because an
unlearning method can forget a person under one modality and still answer under the other.

Table: a "vanilla" row first (the before/* values of the first run that has them, i.e. the model before
unlearning; `method=evaluate` and `eval.before=false` runs have none),
then one row per run with its after/* values. For each modality (multimodal, then text) a column group:

    forget MC acc (lower = more forgotten) | forget ROUGE-L | retain MC acc | retain ROUGE-L | untouched MC acc

then the modality gap and the method's wall time (`time/method_s`). A metric a run lacks shows as "n/a"
and is named in a footnote under the table; "-" marks a cell that does not apply (the vanilla row's gap
and time).

Modality gap (per run, from that run's own before and after values):

    drop(mod) = before/forget/<mod>/mc_acc - after/forget/<mod>/mc_acc
    gap       = drop(multimodal) - drop(text)

Positive: the run forgot more under multimodal questions than under text-only ones (the facts are still
reachable by name); about 0: forgetting transferred across modalities.

Seeds: runs whose saved configs differ only by `seed` and `teach_seed` (`group_by_seed`) form one setting;
when any setting has more than one seed, a second table gives mean ± sample std over seeds of the headline
MC numbers.

Test set: where the runs evaluated it (MLLMU-Bench's Test Set, the forget people's held-out questions and
portraits), a table of its MC accuracy per modality, mean ± std over seeds, each split with its vanilla row.

Plots (PNG, next to results.md): forget MC accuracy after unlearning per run and modality against the
vanilla level, and the forget-drop vs retain-drop trade-off (both MC acc, mean of the two modalities).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import sys
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from unlearn import later_keys
from unlearn.eval.table import MODALITIES, number
from unlearn.io import config_hash, save_figure, write_atomic

METRICS_FILE = "metrics.json"
OVERRIDES_FILE = Path(".hydra") / "overrides.yaml"
CONFIG_FILE = Path(".hydra") / "config.yaml"  # the composed config, interpolations kept (${seed} stays a string)
RESOLVED_CONFIG_FILE = "config.json"  # the config as the run read it, interpolations resolved (every run writes it)
SWEEP_OVERRIDES_FILE = "overrides.json"  # the frontier's runs: the overrides it composed (unlearn/frontier.py)
# what a run's config holds that does not make it another setting: the sample it is (seed, teach_seed), where
# it ran and what it wrote (paths, logger, save_model), whether its before stage was read from the cache, and
# the checkpoint it resumed from
NOT_A_SETTING = ("seed", "teach_seed", "paths", "logger", "save_model", "eval.before", "eval.cache_before",
                 "method.ckpt_path", "finetune.ckpt_path")
MOD_LABEL = {"multimodal": "MM", "text": "text"}
# (split, metric, header, arrow): the column group repeated for each modality; arrow = which way is better.
GROUP: tuple[tuple[str, str, str, str], ...] = (
    ("forget", "mc_acc", "forget MC", "↓"),
    ("forget", "rougeL", "forget ROUGE-L", "↓"),
    ("retain", "mc_acc", "retain MC", "↑"),
    ("retain", "rougeL", "retain ROUGE-L", "↑"),
    ("untouched", "mc_acc", "untouched MC", "↑"),
)
TIME_KEY = "time/method_s"
NA = "n/a"  # the metric is missing from the run
NOT_APPLICABLE = "-"


class ReportWarning(UserWarning):
    """What the report says of the runs it reads (skipped, left out, read apart): printed, and kept on its page."""


@dataclass
class Run:
    """One finished run: what `metrics.json` and `.hydra/overrides.yaml` say about it."""

    name: str
    method: str
    overrides: list[str]
    metrics: dict[str, float]
    path: Path
    source_model: str | None = None
    seed: int | None = None  # metrics.json "seed", else a `seed=` override; None: not recorded
    teach_seed: int | None = None  # metrics.json "teach_seed" (which vanilla model), else `seed`
    setting: dict | None = None  # `setting_of` its recorded config (`recorded_setting`); None: not recorded
    source_teaching: str | None = None  # a hash of its vanilla model's teaching record (metrics.json)
    code: str | None = None  # the framework's commit that made it (metrics.json `code`, "+edits" when dirty)
    code_key: str | None = None  # what tells its code from another run's (`code_key`: the executed code's digest)
    unread: dict | None = None  # {key: why}: its command-line overrides its method never reads (`unread_overrides`)
    given_model: bool = False  # it unlearned a checkpoint given as `model.path`: no seed taught it (`given_checkpoint`)


# --------------------------------------------------------------------------------------------- loading


def load_runs(paths: Sequence[str | Path], scorer: str | None = None) -> list[Run]:
    """Runs from sweep dirs (run subdirs in job order) and single run dirs, in the order given; `scorer`: each
    run's metrics as `python -m unlearn.rescore --scorer` made them (metrics_<scorer>.json).

    A run dir without metrics.json (crashed or unfinished) is skipped with a warning; a malformed file
    raises ValueError naming it, because a silently missing run would make the table lie.
    """
    runs: list[Run] = []
    not_rescored: list[Path] = []

    def add(run_dir: Path) -> None:
        try:
            runs.append(load_run(run_dir, scorer))
        except NotRescored:
            not_rescored.append(run_dir)

    for p in map(Path, paths):
        if not p.is_dir():
            raise FileNotFoundError(f"{p} is not a directory (expected a sweep dir or a run dir)")
        if (p / METRICS_FILE).is_file():
            add(p)
            continue
        if next(p.glob(f"*/*=*/seed*/{METRICS_FILE}"), None) is not None:  # until 2026-12-06: "no runs found"
            raise ValueError(f"{p} is a frontier sweep (<method>/<knob>=<value>/seed<k>/): its runs after a seed's "
                             "first carry no before-evaluation of their own (they read that seed's), which "
                             f"`python -m unlearn.frontier --out {p} --report-only` reads; unlearn.report reads runs "
                             "that carry their own (train.py runs and -m sweeps)")
        subdirs = sorted((d for d in p.iterdir() if d.is_dir() and not d.name.startswith(".")), key=_job_order)
        found = False
        for d in subdirs:
            if (d / METRICS_FILE).is_file():
                add(d)
                found = True
            elif any(d.glob(f"*/{METRICS_FILE}")):  # a sweep dir of its own (the report reads one level down)
                warnings.warn(f"skipping {d}: a sweep dir (its runs one level down); give it as a dir of its own",
                              ReportWarning, stacklevel=2)
            else:
                warnings.warn(f"skipping {d}: no {METRICS_FILE} (run failed or unfinished?)", ReportWarning,
                              stacklevel=2)
        if not found:
            warnings.warn(f"no runs found in {p}: neither {METRICS_FILE} nor run subdirs with one", ReportWarning,
                          stacklevel=2)
    if not_rescored:  # all of them at once: until the forty-eighth session one a time, each after a rerun
        dirs = " ".join(map(str, not_rescored))
        raise NotRescored(f"{len(not_rescored)} run(s) not re-scored by {scorer} (no metrics_{scorer}.json): "
                          f"{', '.join(map(str, not_rescored))}; re-score them: for d in {dirs}; do python -m "
                          f"unlearn.rescore $d --scorer {scorer}; done")
    runs = without_teaching(runs)
    if mixed := mixed_code([r.code for r in runs], [r.code_key for r in runs]):
        warnings.warn(mixed, ReportWarning, stacklevel=2)
    runs = _unique_names(_without_shared_overrides(runs))
    for said in unread_notes(runs):
        warnings.warn(said, ReportWarning, stacklevel=2)
    return runs


def unread_notes(runs: Sequence[Run]) -> list[str]:
    """One sentence per key set on the command line of runs whose method never reads it, naming their rows. Why: a
    `-m method=ga,manu data.forget_modality=multimodal,text` sweep gave MANU rows named by a training modality MANU
    never reads (the runs warned in their logs, the page said nothing), read as two settings where one ran twice."""
    by_key: dict[tuple[str, str], list[str]] = {}
    for r in runs:
        for key, why in (r.unread or {}).items():
            by_key.setdefault((key, why), []).append(r.name)
    return [f"{key} is set and never read in {', '.join(f'`{n}`' for n in names)} ({why}): those rows are the "
            f"method without it, and rows that differ by it alone are one setting run again"
            for (key, why), names in by_key.items()]


def unread_overrides(config: dict | None, overrides: Sequence[str]) -> dict[str, str]:
    """{key: why} for each of `overrides` whose key the run's recorded `config` never reads
    (unlearn.settings.unread_settings, which the run itself warned of); {} where no config was recorded."""
    if not isinstance(config, dict) or not isinstance(config.get("method"), dict) or "name" not in config["method"]:
        return {}
    from omegaconf import OmegaConf

    from unlearn.settings import unread_settings

    unread = unread_settings(OmegaConf.create(config))
    given = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    return {k: unread[k] for k in sorted(given & unread.keys())}


def without_teaching(runs: list[Run]) -> list[Run]:
    """Beside unlearning runs, a teaching run (method=finetune) is left out, with a warning: its before stage is
    the untaught model, which the vanilla row (the first run's before) would have read as the model the others
    unlearned (until 2026-12-05). Teaching runs alone are reported as they are."""
    teaching = [r for r in runs if r.method == "finetune"]
    if not teaching or len(teaching) == len(runs):
        return runs
    warnings.warn(f"left out {', '.join(str(r.path) for r in teaching)}: a teaching run (method=finetune), whose "
                  "before stage is the untaught model, not the vanilla model the other runs unlearned", ReportWarning,
                  stacklevel=2)
    return [r for r in runs if r.method != "finetune"]


SHARED_NOTE = "every run was made with "  # the run table's note of shared_overrides; unlearn.reproduce reads it


def shared_overrides(runs: Sequence[Run]) -> list[str]:
    """The overrides every run was made with, in the first run's order ([] for one run, whose name says them all):
    the row names leave them out, so the page names them once. Until the fiftieth session it did not, and a
    report of a `data.forget_split=forget_5` sweep read nowhere that it was one (unlearn.reproduce then compared
    it with a forget_10 page as two runs of one sweep)."""
    if len(runs) < 2:
        return []
    shared = set.intersection(*(set(r.overrides) for r in runs))
    return [o for o in runs[0].overrides if o in shared and o.split("=", 1)[0] != "method"]  # a name says its method


def _without_shared_overrides(runs: list[Run]) -> list[Run]:
    """Name runs by what differs between them: an override every run shares (logger=none) says nothing in a row's
    name (`shared_overrides` names it once under the table)."""
    if len(runs) < 2:
        return runs
    shared = set(shared_overrides(runs))
    for r in runs:
        r.name = run_name(r.method, [o for o in r.overrides if o not in shared])
    return runs


class NotRescored(FileNotFoundError):
    """A run asked for under `--scorer` that `python -m unlearn.rescore` has not re-scored."""


def load_run(run_dir: str | Path, scorer: str | None = None) -> Run:
    """One run dir; ValueError naming the file if metrics.json or overrides.yaml cannot be read. `scorer`: the
    metrics of its metrics_<scorer>.json (the rest of metrics.json stands: what made the run, and how)."""
    run_dir = Path(run_dir)
    mfile = run_dir / METRICS_FILE
    summary = _read_metrics_file(mfile)
    if scorer is not None:  # a run not re-scored is refused: beside re-scored ones its row would mix two scorers
        mfile = run_dir / f"metrics_{scorer}.json"
        if not mfile.is_file():
            raise NotRescored(f"{mfile}: {run_dir} was not re-scored by {scorer}: python -m unlearn.rescore "
                                    f"{run_dir} --scorer {scorer}")
        summary = {**summary, "metrics": _read_metrics_file(mfile)["metrics"]}
    if bad := sorted(k for k, v in summary["metrics"].items()
                     if isinstance(v, float) and not math.isfinite(v) and not k.startswith("time/")):
        warnings.warn(f"{mfile}: non-finite {bad[:4]}{' ...' if len(bad) > 4 else ''}: every mean it joins reads "
                      "nan", ReportWarning, stacklevel=2)
    overrides = _read_overrides(run_dir / OVERRIDES_FILE) or _read_sweep_overrides(run_dir / SWEEP_OVERRIDES_FILE)
    config = recorded_config(run_dir)  # read once: the setting and the keys its method never reads
    setting = recorded_setting(run_dir, summary, config)
    unread = unread_overrides(config, overrides)
    if setting is None and not overrides:
        warnings.warn(f"{run_dir}: neither its configuration nor its overrides recorded: it is a setting of its own, "
                      "grouped with no other run", ReportWarning, stacklevel=2)
    method = summary.get("method") or _override_value(overrides, "method") or run_dir.name
    seed = summary.get("seed", _override_value(overrides, "seed"))
    teach_seed = summary.get("teach_seed", seed)
    record = summary.get("source_teaching")
    given = given_checkpoint(config)
    source = summary.get("source_model")
    return Run(name=run_name(str(method), overrides), method=str(method), overrides=overrides,
               metrics=summary["metrics"], path=run_dir,
               source_model=given_source(source, run_dir, summary.get("source_model_resolved"))
               if given and isinstance(source, str) else source,
               seed=None if seed is None else int(seed), teach_seed=None if teach_seed is None else int(teach_seed),
               setting=setting, source_teaching=None if record is None else config_hash(record),
               code=code_label(summary), code_key=code_key(summary), unread=unread,
               given_model=given)


def given_source(source: str, run_dir: Path, resolved: str | None = None) -> str:
    """A checkpoint given as model.path, as one string however the run wrote it: metrics.json keeps the path as
    given, so `runs/v0/model` in one run and `/home/me/runs/v0/model/` in another were two taught models (a vanilla
    row of 3 over 2 models, and no seed-by-seed pairs between the runs) until 2026-12-07. `resolved`: how the run
    read it (metrics.json's source_model_resolved, pipeline.source_record), which runs since record; a run made
    before: a relative local path is read from the run's working directory (.hydra/hydra.yaml's runtime.cwd), and
    told from a hub id (`owner/name`) by its slashes or by the directory existing now."""
    import posixpath

    if isinstance(resolved, str):
        return resolved
    text = os.path.expanduser(source)
    if os.path.isabs(text):
        return posixpath.normpath(text)
    try:
        cwd = yaml.safe_load((run_dir / ".hydra" / "hydra.yaml").read_text())["hydra"]["runtime"]["cwd"]
    except Exception:  # noqa: BLE001 - not recorded: the path as given
        return source
    joined = posixpath.normpath(posixpath.join(str(cwd), text))
    from unlearn.models.checkpoint_files import written_local

    return joined if written_local(text) or os.path.isdir(joined) else source


def given_checkpoint(config: dict | None) -> bool:
    """Whether the run unlearned a checkpoint given as `model.path`. Why: `teach_seed` follows `seed` in every
    config, but with a given checkpoint nothing is taught, so every seed starts from that one model; until the
    fifty-second session such runs at seeds 0 and 1 read as two taught models (a vanilla row of 2, no note that
    their spread is the method's seed alone)."""
    model = config.get("model") if isinstance(config, dict) else None
    return bool(isinstance(model, dict) and model.get("path"))


def recorded_config(run_dir: Path) -> dict | None:
    """The run's config as recorded: config.json (resolved), else .hydra/config.yaml; None where neither is."""
    if (run_dir / RESOLVED_CONFIG_FILE).is_file():
        return _read_json(run_dir / RESOLVED_CONFIG_FILE, dict, "an object (the run's resolved config)")
    return _read_composed(run_dir / CONFIG_FILE)


def code_label(summary: dict) -> str | None:
    """The commit that made a run (metrics.json `code`, since 2026-12-05), "+edits" when its files were edited, with
    a hash of the edits since 2026-12-06 ("+edits 1a2b3c4d"), so two runs edited apart read as two codes."""
    code = summary.get("code")
    if not (isinstance(code, dict) and code.get("commit")):
        return None
    edits = (f"+edits {code['edits']}" if code.get("edits") else "+edits") if code.get("dirty") else ""
    return f"{code['commit'][:7]}{edits}"


def code_key(summary: dict) -> str | None:
    """What tells two runs' code apart: the digest of the code they executed (metrics.json `code.digest`, since the
    fifty-first session: commits that differ in docs or tests alone share it), else their code_label."""
    code = summary.get("code")
    if isinstance(code, dict) and code.get("digest"):
        return f"digest {code['digest']}"
    return code_label(summary)


def mixed_code(codes: Sequence[str | None], keys: Sequence[str | None] | None = None) -> str | None:
    """A sentence naming the commits that made these runs, where their code differs (a difference between rows may
    then be the code's); None where one code made them all. `keys` (code_key, one per run): runs of other commits
    with one key, e.g. a README edit apart, ran the same code and are not told apart."""
    keys = list(codes) if keys is None else list(keys)
    by_key: dict[str, Counter] = {}
    for code, key in zip(codes, keys):
        by_key.setdefault(key or code or "unrecorded", Counter())[code or "unrecorded"] += 1
    if len(by_key) < 2:
        return None
    return "runs made by different code: " + ", ".join(
        f"{' / '.join(labels)} ({n} run{'s' * (n > 1)})" for labels, n in
        ((list(made), sum(made.values())) for made in by_key.values()))


def _read_metrics_file(mfile: Path) -> dict:
    summary = _read_json(mfile, dict, "an object with a 'metrics' object")
    if not isinstance(summary.get("metrics"), dict):
        raise ValueError(f"{mfile}: expected an object with a 'metrics' object")
    return summary


# the keys of the shipped configs that follow a run's seeds or where it ran (pipeline.run_following_keys on
# each of them; tests/test_report_seeds.py holds it to that): set aside for a run made before metrics.json
# recorded its own (`follows_run`, 2026-12-05)
RUN_FOLLOWING = ("data.benchmark.cache_dir", "eval.few_shot_seed", "logger.name", "logger.save_dir",
                 "manu.official.seed", "model.build.spec.init_seed", "trainer.default_root_dir")


def recorded_setting(run_dir: Path, summary: dict, config: dict | None = None) -> dict | None:
    """A run's setting: its resolved config.json (written by every run since 2026-12-01) less the keys that follow
    its seeds or where it ran (metrics.json `follows_run`, else RUN_FOLLOWING), else its .hydra/config.yaml
    (interpolations kept, so `${seed}` reads alike at every seed); None where neither is recorded. Why the
    resolved config: the frontier's runs, and runs made with hydra.output_subdir=null, have no .hydra/ (until
    2026-12-05 such runs at lr 1e-3 and 5e-5 were one setting), and an lr written out at its default value is the
    default's setting. `config`: recorded_config(run_dir) where the caller has read it already."""
    config = recorded_config(run_dir) if config is None else config
    if config is None:
        setting = None
    elif (run_dir / RESOLVED_CONFIG_FILE).is_file():
        follows = summary.get("follows_run")
        follows = follows if isinstance(follows, list) else RUN_FOLLOWING
        setting = {k: v for k, v in setting_of(config).items()
                   if not any(k == f or k.startswith(f + ".") for f in follows)}
    else:
        setting = setting_of(config)
    return with_score_reading(with_reference_setting(setting, summary), summary)


def with_reference_setting(setting: dict | None, summary: dict) -> dict | None:
    """`setting` with its eval.reference_run read as the reference run's own setting, where the run recorded it
    (metrics.json `reference_setting`, since 2026-12-07): what taught the reference, not where it lies. Why: each
    seed's reference written out (`eval.reference_run=runs/ref_0`, `runs/ref_1`) made each seed a setting of its
    own, one run each, with no forget quality over seeds; named through `${seed}` the path follows the run and was
    dropped, so two reference recipes so named were one setting."""
    digest = summary.get("reference_setting")
    if setting is None or not isinstance(digest, str):
        return setting
    return {**{k: v for k, v in setting.items() if k != "eval.reference_run"},
            "eval.reference_run": f"a run of setting {digest}"}


def reference_setting(run_dir: str | Path) -> str | None:
    """A short digest of a reference run's setting (its recorded config less its seeds and what follows them, as
    the report groups runs), so runs against references of one recipe at different seeds are one setting; None
    where the reference recorded no config (a run directory made by hand)."""
    path = Path(str(run_dir)).expanduser()
    metrics = path / METRICS_FILE
    summary = _read_json(metrics, dict, "an object") if metrics.is_file() else {}
    setting = recorded_setting(path, summary)
    return None if setting is None else config_hash(_comparable(setting))


def with_score_reading(setting: dict | None, summary: dict) -> dict | None:
    """`setting` with data.on_bad_row=score's reading where the run recorded one (metrics.json `score_reading`,
    unlearn/pipeline.py SCORE_READING, since the forty-seventh session): one config read by two readings scores
    other questions, or reads them otherwise, so the two are two settings, not one seed group. Runs that recorded
    none (every run not under score, and score's before then) read as before."""
    reading = summary.get("score_reading")
    if setting is None or reading is None:
        return setting
    return {**setting, "score_reading": reading}


def setting_of(config: dict) -> dict[str, object]:
    """A run's setting: its config flattened to dotted keys, without NOT_A_SETTING and without null, false or
    empty values (a key newer code added with such a default reads as absent, as the runs made before it
    had it: `method.reference_required: false`, `method.image_processor: {}`; unlearn/later_keys.py's keys at
    their defaults likewise)."""
    later = later_keys.DOTTED
    out: dict[str, object] = {}

    def walk(node, prefix: str) -> None:
        if prefix and _not_a_setting(prefix):
            return
        if isinstance(node, dict) and node:
            for k, v in node.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))
        elif prefix in later:  # absent only at its default (clip_retain false is a setting)
            default = later[prefix]
            if not (node == default and type(node) is type(default)):
                out[prefix] = node
        elif node is not None and node is not False and node != {} and node != []:
            out[prefix] = node

    walk(config, "")
    if not later_keys.split_floor_read(config.get("finetune") or {}):
        out.pop("finetune.target_split_mc_acc", None)
    if later_keys.one_process(config.get("trainer") or {}):  # where the token means are the same
        for key in later_keys.TOKEN_MEANS:
            out.pop(key, None)
    for key in later_keys.TRAINER_NEUTRAL:  # the trainer keys that move no number (progress bar, log interval)
        out.pop(f"trainer.{key}", None)
    # no shots drawn, or one person per task: their order moves nothing
    if not later_keys.shot_order_read(config.get("eval") or {}, config.get("model")):
        out.pop("eval.shot_order", None)
    return out


def _not_a_setting(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in NOT_A_SETTING)


def _read_composed(path: Path) -> dict | None:
    """A run's .hydra/config.yaml (the composed config), or None where it has none; ValueError naming the file
    where it is malformed or not a mapping."""
    if not path.is_file():
        return None  # hydra.output_subdir=null, or a run dir made by hand: grouped by its overrides
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: malformed YAML ({e})") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping (the run's composed config), got {type(data).__name__}")
    return data


def run_name(method: str, overrides: Sequence[str]) -> str:
    """`method` plus its non-method overrides, with the method's own prefix dropped: "manu alpha=5"."""
    return " ".join([method, *(without_method_prefix(method, o) for o in overrides if o.split("=", 1)[0] != "method")])


def without_method_prefix(method: str, text: str) -> str:
    """An override or key without `method.` or `<method>.` (the W&B names drop it too, unlearn/run_names.py)."""
    for prefix in ("method.", f"{method}."):
        if text.startswith(prefix):
            return text[len(prefix):]
    return text


def _read_overrides(path: Path) -> list[str]:
    if not path.is_file():
        return []  # a run started with hydra.output_subdir=null: no overrides recorded
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: malformed YAML ({e})") from e
    if data is None:
        return []
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of override strings, got {type(data).__name__}")
    return [str(o) for o in data]


def _read_sweep_overrides(path: Path) -> list[str]:
    if not path.is_file():
        return []
    return [str(o) for o in _read_json(path, list, "a list of override strings")]


def _read_json(path: Path, kind: type, what: str):
    """`path`'s JSON, which must be a `kind`; ValueError naming the file otherwise."""
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: malformed JSON ({e})") from e
    if not isinstance(data, kind):
        raise ValueError(f"{path}: expected {what}, got {type(data).__name__}")
    return data


def _override_value(overrides: Sequence[str], key: str) -> str | None:
    for o in overrides:
        k, _, v = o.partition("=")
        if k == key:
            return v
    return None


def _job_order(d: Path) -> tuple[int, str]:
    """Hydra job dirs `<num>_<method>` in numeric order (10_x after 9_x)."""
    m = re.match(r"(\d+)", d.name)
    return (int(m.group(1)) if m else sys.maxsize, d.name)


def _unique_names(runs: list[Run]) -> list[Run]:
    """Two runs with the same name (e.g. two single `manu` run dirs) get their dir name appended."""
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.name] = counts.get(r.name, 0) + 1
    for r in runs:
        if counts[r.name] > 1:
            r.name = f"{r.name} [{r.path.name}]"
    return runs


# ------------------------------------------------------------------------------------------ arithmetic


def metric(metrics: dict, key: str) -> float | None:
    """The value at `key` if it is a number, else None (missing, null, or not numeric)."""
    v = metrics.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def drop(metrics: dict, split: str, modality: str, name: str = "mc_acc") -> float | None:
    """before - after for one split/modality/metric (positive = the run lowered it); None if either is missing."""
    b = metric(metrics, f"before/{split}/{modality}/{name}")
    a = metric(metrics, f"after/{split}/{modality}/{name}")
    return None if a is None or b is None else b - a


def modality_gap(metrics: dict) -> float | None:
    """drop(forget MC acc, multimodal) - drop(forget MC acc, text); None if a needed key is missing."""
    mm, text = drop(metrics, "forget", "multimodal"), drop(metrics, "forget", "text")
    return None if mm is None or text is None else mm - text


def mean_drop(metrics: dict, split: str, name: str = "mc_acc", modalities: Sequence[str] = MODALITIES) -> float | None:
    """Drop averaged over `modalities`; None if any is missing (half a mean would mislead)."""
    drops = [drop(metrics, split, mod, name) for mod in modalities]
    return None if any(d is None for d in drops) else sum(drops) / len(drops)


def scored_modalities(runs: Sequence[Run], name: str = "mc_acc") -> tuple[str, ...]:
    """The modalities in which any run scored forget `name` before or after: both on the embedded benchmark and
    MLLMU-Bench, image+text alone on CLEAR, which asks no text-only MC (its runs drew no trade-off point until the
    forty-eighth session: the mean over both modalities lacked one)."""
    found = tuple(m for m in MODALITIES if any(metric(r.metrics, f"{stage}/forget/{m}/{name}") is not None
                                               for r in runs for stage in ("before", "after")))
    return found or MODALITIES


# --------------------------------------------------------------------------------------------- table


def table_keys(stage: str) -> list[str]:
    """The metrics.json keys of one row's metric columns, in column order."""
    return [f"{stage}/{split}/{mod}/{name}" for mod in MODALITIES for split, name, _, _ in GROUP]


def _row_needs(stage: str) -> list[str]:
    """Every key a row reads: its columns, plus (for a run row) the gap's before keys and the wall time."""
    keys = table_keys(stage)
    if stage == "after":
        keys += [f"before/forget/{mod}/mc_acc" for mod in MODALITIES] + [TIME_KEY]
    return keys


def missing_metrics(runs: Sequence[Run]) -> list[tuple[str, str]]:
    """(row name, key) for every value the table needs but cannot find; the vanilla row is "vanilla"."""
    if not runs:
        return []
    out = [("vanilla", k) for k in _row_needs("before") if metric(vanilla_run(runs).metrics, k) is None]
    for r in runs:
        out += [(r.name, k) for k in _row_needs("after") if metric(r.metrics, k) is None]
    return out


def _fmt(v: float | None, spec: str = ".3f") -> str:
    return NA if v is None else format(v, spec)


def _cell_name(name: str) -> str:
    return name.replace("|", "\\|")


def results_table(runs: Sequence[Run]) -> str:
    """Markdown table (vanilla row + one row per run), with footnotes naming n/a cells and their keys."""
    if not runs:
        raise ValueError("no runs to tabulate")
    header = ["run"] + [f"{MOD_LABEL[mod]} {h} {arrow}" for mod in MODALITIES for _, _, h, arrow in GROUP]
    header += ["modality gap", "time"]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]

    first = vanilla_run(runs)
    vanilla = [_fmt(metric(first.metrics, k)) for k in table_keys("before")]
    lines.append("| vanilla | " + " | ".join(vanilla + [NOT_APPLICABLE, NOT_APPLICABLE]) + " |")
    for r in runs:
        cells = [_fmt(metric(r.metrics, k)) for k in table_keys("after")]
        cells.append(_fmt(modality_gap(r.metrics), "+.3f"))
        t = metric(r.metrics, TIME_KEY)
        cells.append(NA if t is None else f"{t:.1f} s")
        lines.append(f"| {_cell_name(r.name)} | " + " | ".join(cells) + " |")

    notes = [f"vanilla = before/* of `{first.name}`; gap = forget MC drop (before - after) under multimodal "
             "minus under text."]
    if shared := shared_overrides(runs):
        notes.append(SHARED_NOTE + ", ".join(f"`{o}`" for o in shared) + " (left out of the row names)")
    differs = _different_vanilla(runs)
    if differs:
        notes.append("runs whose own before/* values differ from the vanilla row (another source model, split "
                     "or evaluation's numerics, as bf16 under another strategy; their gap uses their own): " + ", ".join(f"`{n}`" for n in differs))
    if unevaluated := _unevaluated_other_vanilla(runs):
        notes.append("runs without a before stage of their own that started from another vanilla model than the vanilla "
                     "row's (another teaching seed, cached model or teaching; e.g. a frontier run after its seed's "
                     "first): the vanilla row is not theirs, read them against their own vanilla model: "
                     + ", ".join(f"`{n}`" for n in unevaluated))
    by_row: dict[str, list[str]] = {}
    for name, key in missing_metrics(runs):
        by_row.setdefault(name, []).append(key)
    for name, keys in by_row.items():
        notes.append(f"n/a in `{name}`: " + ", ".join(keys))
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes)


def vanilla_run(runs: Sequence[Run]) -> Run:
    """The run whose before/* the vanilla row (and the plots' vanilla line) reads: the first that has them, else the
    first. Why: a `method=evaluate` run (its one evaluation is the `after` stage) or an `eval.before=false` run has
    no before stage, and until the forty-eighth session a sweep that listed one first (`-m method=evaluate,ga`)
    printed the vanilla row as n/a beside runs that carried it, and drew no vanilla line."""
    return next((r for r in runs if _has_before(r.metrics)), runs[0])


def _unevaluated_other_vanilla(runs: Sequence[Run]) -> list[str]:
    """Runs with no before stage whose recorded vanilla model (`_taught`: teaching seed, model, teaching record) is
    not the vanilla row's. Why: _different_vanilla compares before values, so a run without them (eval.before=false,
    a frontier run after its seed's first) from another taught model sat under the vanilla row without a word,
    while a run of the same seed that carried its before stage was named."""
    first = vanilla_run(runs)
    if not _has_before(first.metrics) or not _recorded_seed(first):
        return []
    return [r.name for r in runs if r is not first and not _has_before(r.metrics) and _recorded_seed(r)
            and _taught(r) != _taught(first)]


def _recorded_seed(r: Run) -> bool:
    """Whether the run names its taught model (a teaching seed or seed): one that does not names no other model."""
    return r.teach_seed is not None or r.seed is not None


def _different_vanilla(runs: Sequence[Run]) -> list[str]:
    first = vanilla_run(runs)
    ref = first.metrics
    out = []
    for r in runs:
        if r is first:
            continue
        for k in table_keys("before"):
            a, b = metric(ref, k), metric(r.metrics, k)
            if a is not None and b is not None and not math.isclose(a, b, abs_tol=1e-9):
                out.append(r.name)
                break
    return out


# ------------------------------------------------------------------------------------------- seeds
# One taught model is one sample: CPU float kernels differ between machines, so a single run's numbers move
# by several points. Runs that differ only by `seed` are one setting; report its mean and spread.

SEED_COLUMNS: tuple[tuple[str, str, str], ...] = tuple(
    (split, mod, f"{MOD_LABEL[mod]} {split} MC {'↓' if split == 'forget' else '↑'}")
    for mod in MODALITIES for split in ("forget", "retain"))


@dataclass
class SeedGroup:
    """Runs of one setting: the same config but for NOT_A_SETTING (where every run recorded its config),
    else the same overrides but `seed=`."""

    name: str
    method: str
    runs: list[Run]


def _is_seed_override(o: str) -> bool:
    """`seed=` or `teach_seed=`: what tells a group's runs apart (until 2026-12-05 runs without a recorded config
    that differed only by teach_seed were two settings)."""
    return o.split("=", 1)[0].lstrip("+~") in ("seed", "teach_seed")


def group_by_seed(runs: Sequence[Run], pooled: Sequence[str] = ()) -> list[SeedGroup]:
    """Groups in order of first appearance; named by the overrides that differ between groups.

    `pooled` (`--pool-over`): config keys whose values tell a setting's samples apart as `seed` does, e.g.
    `model.path` where each seed unlearned a vanilla model of its own (a checkpoint given per seed was a
    setting of its own, one run each, until the fifty-third session); a run's value of them is part of its sample.

    A run that recorded its config (.hydra/config.yaml) is grouped by its setting (`setting_of`): runs started
    with the same overrides under different defaults (GA's lr has changed default more than once) are two
    settings, and an override that changes nothing (`logger=none` in one sweep only) does not split one.
    Groups of one name but different settings get the keys that set them apart appended to it.

    Two runs of one group with the same (teach_seed, seed) would count one sample twice in the group's mean and
    std (a single run beside a sweep of the same setting, or run dirs whose overrides were not recorded), so
    that raises, naming both run dirs."""
    keyed: dict[tuple, SeedGroup] = {}
    bare = {id(r): [o for o in r.overrides if not _is_seed_override(o)] for r in runs}
    shared = set.intersection(*(set(v) for v in bare.values())) if len(runs) > 1 else set()
    seen: dict[tuple, Run] = {}
    for r in runs:
        # what a run's command line says beside its setting (logger, paths, eval.before: the frontier evaluates
        # the vanilla model in one run of each seed) names no setting and splits none
        rest = [o for o in bare[id(r)] if o not in shared and not _not_a_setting(o.split("=", 1)[0].lstrip("+~"))
                and not _under(o.split("=", 1)[0].lstrip("+~"), pooled)]
        if r.setting is not None:
            key = (r.method, "config", _comparable({k: v for k, v in r.setting.items() if not _under(k, pooled)}))
        elif r.overrides:
            key = (r.method, "overrides", tuple(sorted(rest)))
        else:  # nothing says which setting it is (load_run warned)
            key = (r.method, "unrecorded", str(r.path))
        if key not in keyed:
            keyed[key] = SeedGroup(run_name(r.method, rest), r.method, [])
        sample = (key, r.teach_seed, r.seed, _comparable([pooled_value(r, k) for k in pooled]))
        if sample in seen:
            raise ValueError(f"{seen[sample].path} and {r.path}: the same setting ({keyed[key].name}) at the same "
                             f"seed {r.seed} (teach_seed {r.teach_seed}); one sample would count twice in its mean "
                             "and std: report one of them, or give each its own seed=")
        seen[sample] = r
        keyed[key].runs.append(r)
    return _named_apart(list(keyed.values()))


def _under(key: str, keys: Sequence[str]) -> bool:
    """`key` is one of `keys` or lies under one of them."""
    return any(key == k or key.startswith(k + ".") for k in keys)


def pooled_value(r: Run, key: str):
    """A run's value of a pooled key: from its setting (every key under it), else from its overrides."""
    if r.setting is not None:
        return {k: v for k, v in r.setting.items() if _under(k, [key])} or None
    return next((o.split("=", 1)[1] for o in r.overrides if o.split("=", 1)[0].lstrip("+~") == key), None)


def check_pooled(runs: Sequence[Run], pooled: Sequence[str]) -> None:
    """`--pool-over` keys refused where they would pool what is not a sample: a key the seeds already are, the
    method, or one no run sets (a misspelt key pooled nothing, silently)."""
    for key in pooled:
        if not re.fullmatch(r"[A-Za-z_][\w-]*(\.[\w-]+)*", key):
            raise ValueError(f"--pool-over {key!r}: not a config key (dotted, as in model.path)")
        if _not_a_setting(key):
            raise ValueError(f"--pool-over {key}: already not a setting (runs that differ in it are one setting)")
        if key == "method" or key.startswith("method."):
            raise ValueError(f"--pool-over {key}: a method's settings are what the report compares; pool over what "
                             "tells samples of one setting apart (model.path: a vanilla model of your own per seed)")
        if all(pooled_value(r, key) is None for r in runs):
            raise ValueError(f"--pool-over {key}: no run's config or overrides set it")


def pool_over_hint(runs: Sequence[Run], groups: Sequence[SeedGroup]) -> str | None:
    """Without `--pool-over`: where settings differ in `model.path` alone (a vanilla model of the user's own per
    seed), a line naming the flag that reads them as one setting; None where pooling would merge none. Why: such
    runs read as settings of one run each, no mean ± std, and nothing on the page named the flag (until
    2026-12-07)."""
    try:
        check_pooled(runs, ["model.path"])
        pooled = group_by_seed(runs, ["model.path"])
    except ValueError:
        return None
    if len(pooled) >= len(groups):
        return None
    return (f"{len(groups)} settings differ only in `model.path` and the seeds, one setting each here: where each "
            "`model.path` is a vanilla model of one recipe taught per seed (`method=finetune teach_seed=S`), "
            f"`--pool-over model.path` reads them as {len(pooled)}, mean ± std over those taught models")


def _comparable(value) -> str:
    """`value` as a string two equal settings share: numbers by value (`gamma=1` and `gamma=1.0` are one setting;
    until 2026-12-05 two), mappings by sorted key."""
    def norm(v):
        if isinstance(v, dict):
            return {str(k): norm(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [norm(x) for x in v]
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
        return v
    return json.dumps(norm(value), default=str, sort_keys=True)


def _named_apart(groups: list[SeedGroup]) -> list[SeedGroup]:
    """Groups that share a name (same overrides, different settings) get the keys that differ appended."""
    by_name: dict[str, list[SeedGroup]] = {}
    for g in groups:
        by_name.setdefault(g.name, []).append(g)
    for name, same in by_name.items():
        if len(same) < 2:
            continue
        settings = [g.runs[0].setting or {} for g in same]
        keys = sorted(set().union(*settings))
        differ = [k for k in keys if len({_comparable(s.get(k)) for s in settings}) > 1]
        for g, s in zip(same, settings):
            shown = ", ".join(f"{k}={s.get(k)}" for k in differ[:3]) + (", ..." if len(differ) > 3 else "")
            g.name = f"{name} [{shown}]"
    return groups


def independent_std(p: float, n: int) -> float:
    """The std over models of an accuracy over `n` questions if each model got each question right with
    probability `p`, independently of the other models: sqrt(p (1 - p) / n). A reference for the spread a
    split of n questions can resolve, not a floor: models that forget the same questions spread less."""
    if n < 1 or not 0.0 <= p <= 1.0:
        raise ValueError(f"independent_std: needs 0 <= p <= 1 and n >= 1, got p={p}, n={n}")
    return math.sqrt(p * (1.0 - p) / n)


def chance_std_above(p: float, n: int, seeds: int, limit: float, max_grid: int = 5_000_000) -> float:
    """The probability that the sample std over `seeds` accuracies exceeds `limit` when each is an independent
    Binomial(n, p) / n: how often a spread criterion fails from the questions' draws alone (the models
    otherwise alike). Every outcome of the first seeds - 1 draws, the last summed through its cdf; outcomes
    of probability under 1e-15 each are left out (at most 1e-15 x n x seeds of the answer). Past `max_grid`
    outcomes (many seeds of large splits), a seeded simulation of a million draws instead (to about 1e-3).

    The sample std exceeds `limit` iff the last value v leaves the interval where the sum of squares about the
    mean, (1 - 1/k) v^2 - (2 S / k) v + Q - S^2 / k (S, Q: sum and sum of squares of the others), stays
    within (k - 1) limit^2."""
    from scipy.stats import binom

    if seeds < 2 or n < 1 or not 0.0 <= p <= 1.0 or limit < 0:
        raise ValueError(f"chance_std_above: needs seeds >= 2, n >= 1, 0 <= p <= 1, limit >= 0; got "
                         f"seeds={seeds}, n={n}, p={p}, limit={limit}")
    k = seeds
    counts = np.arange(n + 1)
    pmf = binom.pmf(counts, n, p)
    keep = pmf >= 1e-15
    if int(keep.sum()) ** (k - 1) > max_grid:  # a Python int: numpy's int64 power wrapped negative at 9 seeds
        draws = np.random.default_rng(0).binomial(n, p, size=(1_000_000, k)) / n
        return float((draws.std(axis=1, ddof=1) > limit + 1e-12).mean())
    values, pmf = counts[keep] / n, pmf[keep]
    grids = np.meshgrid(*[values] * (k - 1), indexing="ij")
    weight = np.ones_like(grids[0])
    for g in np.meshgrid(*[pmf] * (k - 1), indexing="ij"):
        weight = weight * g
    S, Q = sum(grids), sum(g * g for g in grids)
    a, b, c = 1 - 1 / k, -2 * S / k, Q - S * S / k - (k - 1) * limit ** 2
    disc = b * b - 4 * a * c
    root = np.sqrt(np.clip(disc, 0, None))
    lo, hi = (-b - root) / (2 * a), (-b + root) / (2 * a)
    # P(v < lo) + P(v > hi) over the last draw's grid (a value within 1e-9 of a root is within the limit)
    below = binom.cdf(np.ceil(lo * n - 1e-9) - 1, n, p)
    above = binom.sf(np.floor(hi * n + 1e-9), n, p)
    outside = np.where(disc >= -1e-12, below + above, 1.0)  # no real root: every v exceeds the limit
    return float((weight * outside).sum())


def at_least(chances: Sequence[float], k: int) -> float:
    """P(at least `k` of independent events with these probabilities happen) (the Poisson-binomial tail):
    whether more cells are wide than independent question draws make likely."""
    dist = [1.0]  # dist[j]: P(j events so far)
    for c in chances:
        if not 0.0 <= c <= 1.0:
            raise ValueError(f"at_least: a probability must lie in [0, 1], got {c}")
        dist = [(dist[j] if j < len(dist) else 0.0) * (1 - c) + (dist[j - 1] * c if j >= 1 else 0.0)
                for j in range(len(dist) + 1)]
    return float(sum(dist[max(k, 0):]))


def question_count(metric_dicts: Sequence[dict], key: str) -> int | None:
    """How many questions `key` (".../mc_acc") averages over, from its count metric (".../n_mc_acc"), as the
    rounded mean over the runs; None where no run records it."""
    prefix, name = key.rsplit("/", 1)
    counts = [n for m in metric_dicts if (n := metric(m, f"{prefix}/n_{name}"))]
    return round(sum(counts) / len(counts)) if counts else None


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (n - 1 in the denominator); std None for a single value."""
    if not values:
        raise ValueError("mean_std of no values")
    n = len(values)
    mean = sum(values) / n
    if n == 1:
        return mean, None
    if all(v == values[0] for v in values):  # sum / n need not give the value back (3 x 0.1): no spread is 0
        return float(values[0]), 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def aggregate(metric_dicts: Sequence[dict], key: str) -> tuple[float, float | None, int] | None:
    """(mean, std, n) of `key` over the dicts that have it as a number; None if none has it."""
    values = [v for v in (metric(m, key) for m in metric_dicts) if v is not None]
    if not values:
        return None
    mean, std = mean_std(values)
    return mean, std, len(values)


def _fmt_spread(agg: tuple[float, float | None, int] | None) -> str:
    if agg is None:
        return NA
    mean, std, _ = agg
    return number(mean) if std is None else f"{number(mean)} ± {number(std)}"


def vanilla_metrics(groups: Sequence[SeedGroup], exclude: Sequence[str] = ()) -> list[dict]:
    """One metrics dict per vanilla model across the groups not in `exclude` (other_vanilla's: settings that
    evaluated another vanilla model at a seed, whose other seeds would otherwise fill the row with that model's
    numbers beside this one's): each teaching seed teaches its own."""
    by_seed: dict = {}
    for g in groups:
        if g.name in exclude:
            continue
        for r in g.runs:  # a run with the before-evaluation (a frontier's runs after a seed's first have none:
            # until 2026-12-06 the first run read, say MANU's, left the vanilla row n/a)
            if not _has_before(by_seed.get(_taught(r))) and (_has_before(r.metrics) or _taught(r) not in by_seed):
                by_seed[_taught(r)] = r.metrics
    return list(by_seed.values())


def _has_before(metrics: dict | None) -> bool:
    return bool(metrics) and any(k.startswith("before/") for k in metrics)


def _taught(r: Run):
    """Which vanilla model a run started from: its teaching seed (else its seed, else itself alone), the model's
    key (its directory's name: a cache copied elsewhere keeps it) and its teaching record. Until 2026-12-05 the
    teaching seed alone: runs from two caches, thread counts or machines at one teaching seed were paired as runs
    of one taught model, and shared one vanilla row."""
    if r.given_model:  # a checkpoint given as model.path: the same model at every seed, named by its whole path
        return None, str(r.source_model), r.source_teaching  # (vanilla_model's cache-key reading would take two
        # users' runs/vanilla/model for one model)
    taught = r.teach_seed if r.teach_seed is not None else r.seed
    if taught is None:
        return id(r)
    return vanilla_model(taught, r.source_model, r.source_teaching)


def vanilla_model(seed, source: str | None, teaching: str | None) -> tuple:
    """Which vanilla model a run started from: its teaching seed, the model (a cached one by its key, its
    directory's name, so a cache copied elsewhere keeps it; a user's checkpoint by its path as given, since every
    run's is named model/) and a hash of its teaching record (unlearn.frontier reads its points by the same)."""
    if source is None:
        return seed, None, teaching
    path = Path(str(source))
    return seed, path.name if path.parent.name == "vanilla" else str(source), teaching


def spread_table(groups: Sequence[SeedGroup], headers: Sequence[str], keys: Sequence[str]) -> str:
    """Markdown lines: a vanilla row (before/<key> over the distinct seeds of all runs: each seed has its own
    vanilla model) and one row per group (after/<key> over its seeds), each cell mean ± sample std; a cell that
    fewer runs than the row's count carry says how many, "(k of n)". Settings that started from disjoint sets of
    taught models (another forget split teaches other models) get a vanilla row each, above their rows."""
    if not groups:
        raise ValueError("no runs to tabulate")
    lines = ["| " + " | ".join(["setting", "seeds", *headers]) + " |", "|---|---:|" + "---:|" * len(headers)]
    other = other_vanilla(groups, keys)
    families = vanilla_families(groups)
    rows = []
    for family in families:
        name = "vanilla" if len(families) == 1 else f"vanilla {family_label(family, groups)}"
        rows.append((name, vanilla_metrics(family, other), "before"))
        rows += [(g.name, [r.metrics for r in g.runs], "after") for g in family]
    for name, ms, stage in rows:
        cells = []
        for k in keys:
            agg = aggregate(ms, f"{stage}/{k}")
            short = agg is not None and agg[2] < len(ms)
            cells.append(_fmt_spread(agg) + (f" ({agg[2]} of {len(ms)})" if short else ""))
        lines.append(f"| {_cell_name(name)} | {len(ms)} | " + " | ".join(cells) + " |")
    if len(families) > 1:  # until 2026-12-07 one vanilla row pooled them all: forget_5's and forget_10's models
        lines.append(f"\n- the settings started from {len(families)} sets of taught models that share none (another "
                     "data split or teaching): each set's vanilla row stands above the settings that started from "
                     "it, and counts its taught models alone.")
    if other:
        lines.append(f"\n- the vanilla row is each teaching seed's first run's before stage; {', '.join(other)} "
                     "evaluated another (other before values at the same seed: another data split or eval "
                     "setting): read their rows against their own before stage, not this row, which leaves "
                     "them out.")
    return "\n".join(lines)


def family_label(family: Sequence[SeedGroup], groups: Sequence[SeedGroup]) -> str:
    """What sets a family's taught models apart, for its vanilla row's name: the overrides every run of the family
    shares and not every run of all the groups (`(data.forget_split=forget_5)`), else its first setting's name
    (`of ga optimizer.lr=1e-4`: two caches, nothing on the command line tells them apart)."""
    def shared(gs):
        sets = [{o for o in r.overrides if not _is_seed_override(o)} for g in gs for r in g.runs]
        return set.intersection(*sets) if sets else set()

    everywhere = shared(groups)
    own = [o for o in family[0].runs[0].overrides if o in shared(family) - everywhere and o.split("=", 1)[0] != "method"]
    return f"({' '.join(own)})" if own else f"of {family[0].name}"


def vanilla_families(groups: Sequence[SeedGroup]) -> list[list[SeedGroup]]:
    """The groups parted by the taught models they started from: two groups are of one family when they share a
    taught model (directly or through a third), so seeds 0-2 beside seeds 0-4 of one teaching stay one family,
    and two forget splits (whose teachings are keyed apart) are two; families in order of their first group.
    A family's first group is never one other_vanilla names (that one shares a taught model with an earlier
    group), so each family's vanilla row has a run to read."""
    families: list[tuple[set, list[SeedGroup]]] = []
    for g in groups:
        # a run that recorded no seed names no taught model: it parts nothing and joins the first family
        taught = {_taught(r) for r in g.runs if r.teach_seed is not None or r.seed is not None}
        joined = [f for f in families if f[0] & taught] or (families[:1] if not taught else [])
        if not joined:
            families.append((taught, [g]))
            continue
        keep = joined[0]
        for f in joined[1:]:  # g bridges families: the later ones join the first, in their order
            keep[0].update(f[0])
            keep[1].extend(f[1])
            families.remove(f)
        keep[0].update(taught)
        keep[1].append(g)
    order = {id(g): i for i, g in enumerate(groups)}  # a merged family's groups in the order they came
    return [sorted(members, key=lambda g: order[id(g)]) for _, members in families]


def other_vanilla(groups: Sequence[SeedGroup], keys: Sequence[str]) -> list[str]:
    """The groups whose runs' before values in `keys` differ from the vanilla row's at the same teaching seed."""
    first: dict = {}
    out = []
    for g in groups:
        for r in g.runs:
            ref = first.setdefault(_taught(r), r.metrics)
            if any(a is not None and b is not None and not math.isclose(a, b, abs_tol=1e-9)
                   for a, b in ((metric(ref, f"before/{k}"), metric(r.metrics, f"before/{k}")) for k in keys)):
                if g.name not in out:
                    out.append(g.name)
    return out


def seed_table(groups: Sequence[SeedGroup], pooled: Sequence[str] = ()) -> str:
    """Markdown: mean ± std over seeds of the headline MC numbers; the vanilla row pools every group's seeds."""
    notes = ["mean ± sample std over seeds (runs whose settings differ only by `seed` and `teach_seed`)."]
    if pooled:  # `--pool-over`
        keys = ", ".join(f"`{k}`" for k in pooled)
        notes = [f"mean ± sample std over seeds (runs whose settings differ only by `seed`, `teach_seed` and {keys}, "
                 "pooled as seeds by `--pool-over`)."]
    shared = [f"{g.name} ({len(g.runs)} runs, {k} taught)" for g in groups
              if (k := len({_taught(r) for r in g.runs})) < len(g.runs)]
    if shared:  # until 2026-12-06 the seeds column counted such runs as independent samples, without a word
        notes.append(f"runs of one taught model (method seeds at one `teach_seed`): {', '.join(shared)}; the seeds "
                     "column counts runs, and their spread mixes the method's seeds with the taught models' (runs of "
                     "one taught model are not independent samples of it: the paired tables count taught models)")
    return spread_table(groups, [h for _, _, h in SEED_COLUMNS], [f"{s}/{m}/mc_acc" for s, m, _ in SEED_COLUMNS]) \
        + "\n\n" + "\n".join(f"- {n}" for n in notes)


def paired_seed_table(groups: Sequence[SeedGroup]) -> str | None:
    """Markdown: every pair of settings' forget and retain MC drops compared seed by seed (unlearn/paired.py),
    a run paired with the other setting's run from the same taught model and seed; None where no two settings
    share two seeds."""
    from unlearn.paired import LEVEL, comparable, matrix

    def taught_model(key):
        return key[0]

    parts = []
    for split in ("forget", "retain"):
        for mod in MODALITIES:
            readings = {}
            for g in groups:
                values = {(_taught(r), r.seed): d for r in g.runs
                          if (d := drop(r.metrics, split, mod)) is not None and math.isfinite(d)}
                if values:
                    readings[g.name] = values
            if comparable(readings, taught_model):
                parts.append(f"{MOD_LABEL[mod]} {split} MC drop:\n\n" + matrix(readings, unit=taught_model))
    if not parts:
        return None
    apart = ("\n- n/a: the two settings share no taught model (another data split or teaching: two forget splits teach "
             "other models), so no run pairs with another" if any("| n/a" in part for part in parts) else "")
    return "\n\n".join(parts) + (
        "\n\n- row − column: the row setting's MC drop (before - after) minus the column's, run by run from the "
        "same taught model and seed (what the model gives every setting cancels), averaged over the method seeds "
        "of each taught model, then mean ± sample std over the taught models both ran (runs of one taught model "
        "are not independent samples of it); (k): only k shared. On forget, + = the row forgets more; on retain, "
        f"+ = the row costs more.\n- *: the paired t interval ({LEVEL:.0%}) excludes 0; with no true difference "
        "about 1 pair in 20 is starred by chance, so read a lone star among many pairs with care; a difference "
        "equal on every taught model has no spread to test and is not starred.") + apart


# -------------------------------------------------------------------------------------- modality gap
# The MANU paper's claim is about the gap: GA on image+text data forgets under image+text input more than under
# text-only input. The run table gives each run's gap; this gives each setting's over its seeds.

GAP_COLUMNS = ("MM forget MC drop", "text forget MC drop", "gap (MM - text)")


def gap_readings(metrics: dict) -> dict[str, float]:
    """A run's forget MC drop per modality and their difference (modality_gap), under GAP_COLUMNS' names; what is
    missing is left out."""
    values = (drop(metrics, "forget", "multimodal"), drop(metrics, "forget", "text"), modality_gap(metrics))
    # rounded: accuracies are question counts over a count, and equal drops (1.0 - 0.96, 0.96 - 0.92) differ in the
    # last bits, which printed a spread of 7.9e-17 where there is none
    return {name: round(v, 12) for name, v in zip(GAP_COLUMNS, values) if v is not None}


def gap_table(groups: Sequence[SeedGroup]) -> str:
    """Markdown: per setting, mean ± sample std over its runs of each run's forget drops and modality gap (each run
    against its own before stage, so settings of other taught models read right beside each other)."""
    lines = ["| setting | seeds | " + " | ".join(GAP_COLUMNS) + " |", "|---|---:|" + "---:|" * len(GAP_COLUMNS)]
    for g in groups:
        readings = [gap_readings(r.metrics) for r in g.runs]
        cells = []
        for name in GAP_COLUMNS:
            agg = aggregate(readings, name)
            short = agg is not None and agg[2] < len(readings)
            cells.append(_fmt_spread(agg) + (f" ({agg[2]} of {len(readings)})" if short else ""))
        lines.append(f"| {_cell_name(g.name)} | {len(g.runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + (
        "\n\n- each run's forget MC drop (before - after, against its own vanilla model) under image+text and "
        "under text-only input, and its gap (image+text drop - text-only drop), then mean ± sample std over the "
        "setting's runs: + = forgets more under image+text (the MANU paper's finding for GA on image+text data).")


# ------------------------------------------------------------------------------------------ test set
# MLLMU-Bench's Test Set: the forget people asked other questions about other portraits. Every run evaluates it
# (after/test/*), but until the fiftieth session the report printed no cell of it, so the benchmark's layout
# (forget, test, retain per modality) could be read only from the frontier's page, which has it.

TEST_COLUMNS: tuple[tuple[str, str], ...] = tuple((f"test/{mod}/mc_acc", f"{MOD_LABEL[mod]} test MC") for mod in MODALITIES)


def has_test(runs: Sequence[Run]) -> bool:
    return any(metric(r.metrics, f"after/{key}") is not None for r in runs for key, _ in TEST_COLUMNS)


def forget_test_table(groups: Sequence[SeedGroup]) -> str:
    """Markdown: test-set MC accuracy per modality, mean ± std over seeds (one seed: its value), with the vanilla
    rows of spread_table (a forget split's own taught models)."""
    table = spread_table(groups, [h for _, h in TEST_COLUMNS], [k for k, _ in TEST_COLUMNS])
    return table + ("\n\n- test = the forget people asked paraphrased questions about held-out portraits (MLLMU-Bench's "
                    "Test Set): under the vanilla row, the forgetting carried past the questions the method saw.")


# ----------------------------------------------------------------------------------- likelihood metrics
# What the model believes rather than says (unlearn/eval/truth_ratio.py): present when the data carries
# perturbed answers (embedded benchmark, CLEAR); forget quality only with eval.reference_run.

LIKELIHOOD_COLUMNS: tuple[tuple[str, str, str], ...] = tuple(
    (split, name, f"{MOD_LABEL[mod]} {header}") for mod in MODALITIES for split, name, header in (
        ("forget", "truth_ratio", "forget TR (1 best)"), ("forget", "prob", "forget prob ↓"),
        ("forget", "forget_quality", "forget quality ↑"), ("retain", "truth_ratio", "retain TR ↑")))


def _likelihood_key(col: int) -> str:
    split, name, _ = LIKELIHOOD_COLUMNS[col]
    return f"{split}/{MODALITIES[col // 4]}/{name}"


def has_likelihood(runs: Sequence[Run]) -> bool:
    return any(k.endswith("/truth_ratio") for r in runs for k in r.metrics)


def likelihood_table(groups: Sequence[SeedGroup]) -> str:
    """Markdown: truth ratio, answer probability and forget quality per modality, mean ± std over seeds."""
    table = spread_table(groups, [h for _, _, h in LIKELIHOOD_COLUMNS],
                         [_likelihood_key(i) for i in range(len(LIKELIHOOD_COLUMNS))])
    return table + (
        "\n\n- TR = truth ratio as CLEAR and TOFU report it: forget `min(R, 1/R)` (1: no preference between "
        "the truth and wrong answers left), retain `max(0, 1 - R)`; prob = length-normalised probability of the "
        "ground truth; forget quality = KS p-value against `eval.reference_run` (n/a without one). On CLEAR "
        "these pool its caption and face-recognition items, which CLEAR reports apart (its cells are "
        "metrics.json's `*_caption` and `*_name` keys; CLEAR's Model Utility: `model_utility_clear`; its paper "
        "tables' Real / Retain / Forget metric and Forget Quality (1 - JS): `clear_*_metric` and "
        "`forget_quality_js_caption`). CLEAR's MLLM evaluation has no text-only task: text columns on CLEAR "
        "are this framework's.")


# ----------------------------------------------------------------------------------- relearning attack
# eval.relearn.enabled: after unlearning, a short fine-tune on a fraction of the forget people, re-evaluated
# as stage `relearn`. What comes back is the measure: MC after unlearning -> after the attack, per modality.


def has_relearn(runs: Sequence[Run]) -> bool:
    return any(k.startswith("relearn/") for r in runs for k in r.metrics)


def relearn_table(groups: Sequence[SeedGroup]) -> str:
    """Markdown: MC accuracy after unlearning -> after the relearning attack, mean ± std over seeds."""
    splits = [s for s in ("forget", "test", "retain", "untouched")
              if any(f"relearn/{s}/{m}/mc_acc" in r.metrics for g in groups for r in g.runs for m in MODALITIES)]
    cols = [(s, m) for s in splits for m in MODALITIES]
    header = ["setting", "seeds"] + [f"{MOD_LABEL[m]} {s} MC" for s, m in cols]
    lines = ["| " + " | ".join(header) + " |", "|---|---:|" + "---:|" * len(cols)]
    for g in groups:
        ms = [r.metrics for r in g.runs if any(k.startswith("relearn/") for k in r.metrics)]
        if not ms:
            continue
        cells = [f"{_fmt_spread(aggregate(ms, f'after/{s}/{m}/mc_acc'))} -> "
                 f"{_fmt_spread(aggregate(ms, f'relearn/{s}/{m}/mc_acc'))}" for s, m in cols]
        lines.append(f"| {_cell_name(g.name)} | {len(ms)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + ("\n\n- MC accuracy after unlearning -> after the relearning attack "
                               "(`eval.relearn`), mean ± sample std over seeds.")


# --------------------------------------------------------------------------------------------- plots


def plot_forget_bars(runs: Sequence[Run], out_dir: str | Path) -> Path:
    """Forget MC acc after unlearning, one bar per modality per run; dashed = the vanilla level per modality: one
    line where every run started from the same values, else each run's own over its bars (`vanilla_levels`)."""
    plt = _pyplot()

    width = 0.38
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(runs) + 2) + 2.5, 4.5))
    colors = {"multimodal": "tab:blue", "text": "tab:orange"}
    for i, mod in enumerate(MODALITIES):
        xs, ys, na = [], [], []
        for j, r in enumerate(runs):
            v = metric(r.metrics, f"after/forget/{mod}/mc_acc")
            x = j + (i - 0.5) * width
            (na if v is None else xs).append(x)
            if v is not None:
                ys.append(v)
        ax.bar(xs, ys, width, label=f"{mod} (after)", color=colors[mod])
        for x in na:
            ax.text(x, 0.02, NA, ha="center", va="bottom", fontsize=8, rotation=90)
        levels = vanilla_levels(runs, mod)
        known = [v for v in levels if v is not None]
        if known and all(math.isclose(v, known[0], abs_tol=1e-9) for v in known):
            ax.axhline(known[0], ls="--", lw=1, color=colors[mod], label=f"{mod} vanilla")
        elif known:  # runs from other taught models (seeds, forget splits): each bar's own, over its pair of bars
            drawn = [(j, v) for j, v in enumerate(levels) if v is not None]
            ax.hlines([v for _, v in drawn], [j - width for j, _ in drawn], [j + width for j, _ in drawn], ls="--",
                      lw=1, color=colors[mod], label=f"{mod} vanilla (each run's own)")
    ax.set_xticks(range(len(runs)), [r.name for r in runs], rotation=20, ha="right")
    ax.set_ylabel("forget MC accuracy (lower = more forgotten)")
    ax.set_ylim(0, 1.05)
    ax.set_title("Forget-set MC accuracy after unlearning")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # outside: never hides a bar
    return _save(fig, Path(out_dir) / "forget_mc_acc.png")


def vanilla_levels(runs: Sequence[Run], modality: str) -> list[float | None]:
    """Each run's own vanilla forget MC in `modality` (its before stage; a run without one, `method=evaluate`,
    reads the vanilla row's run). Until the fiftieth session the plot drew the first run's alone as every run's:
    beside forget_5's model at seed 0, forget_10's runs and other seeds' were drawn against a model they never
    started from."""
    fallback = metric(vanilla_run(runs).metrics, f"before/forget/{modality}/mc_acc")
    return [metric(r.metrics, f"before/forget/{modality}/mc_acc") if _has_before(r.metrics) else fallback
            for r in runs]


@dataclass
class TradeoffPoint:
    """One setting on the trade-off plot: each seed's (forget drop, retain drop) and their mean ± sample std."""

    name: str
    seeds: list[tuple[float, float]]
    mean: tuple[float, float]
    std: tuple[float, float]  # 0 for a single seed (nothing to draw)


def tradeoff_points(runs: Sequence[Run], modalities: Sequence[str] = MODALITIES,
                    groups: Sequence[SeedGroup] | None = None) -> tuple[list[TradeoffPoint], list[str]]:
    """The settings' points (grouped as the tables group them: `groups`, else `group_by_seed(runs)`) and the runs
    without one (a missing before or after MC key). Until 2026-12-07 the plot drew and labelled every run alone: a 3-seed sweep of seven
    methods was 21 overlapping names, and GA's and NPO's equal points hid each other's label."""
    points, skipped = [], []
    for g in group_by_seed(list(runs)) if groups is None else groups:
        seeds = []
        for r in g.runs:
            x, y = mean_drop(r.metrics, "forget", modalities=modalities), mean_drop(r.metrics, "retain",
                                                                                    modalities=modalities)
            if x is None or y is None:
                skipped.append(r.name)
            else:
                seeds.append((x, y))
        if seeds:
            (mx, sx), (my, sy) = (mean_std([p[i] for p in seeds]) for i in (0, 1))
            points.append(TradeoffPoint(g.name, seeds, (mx, my), (sx or 0.0, sy or 0.0)))
    return points, skipped


MARKERS = "osD^vP*Xph<>"  # a setting's colour and shape: two settings at one point (GA and NPO) stay told apart


def plot_tradeoff(runs: Sequence[Run], out_dir: str | Path, groups: Sequence[SeedGroup] | None = None) -> Path:
    """x = forget MC drop, y = retain MC drop (both the mean of the modalities the runs scored): lower right is the
    goal. One colour and shape per setting: its seeds small, their mean large with ± std in both drops, named in
    the legend (beside the axes: it hides no point)."""
    plt = _pyplot()

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    mods = scored_modalities(runs)
    over = "mean of modalities" if len(mods) > 1 else {"multimodal": "image+text", "text": "text-only"}[mods[0]]
    points, skipped = tradeoff_points(runs, mods, groups)
    for i, p in enumerate(points):
        color, marker = f"C{i % 10}", MARKERS[i % len(MARKERS)]
        if len(p.seeds) > 1:
            ax.scatter([x for x, _ in p.seeds], [y for _, y in p.seeds], s=14, color=color, marker=marker,
                       alpha=0.35, lw=0)
        ax.errorbar([p.mean[0]], [p.mean[1]], xerr=[p.std[0]], yerr=[p.std[1]], fmt=marker, ms=7, color=color,
                    capsize=2, lw=0.8, label=f"{p.name} ({len(p.seeds)} seed{'s' * (len(p.seeds) > 1)})")
    if skipped:
        warnings.warn(f"trade-off plot: no point for {', '.join(skipped)} (missing before/after MC keys)",
                      stacklevel=2)
    ax.axhline(0, color="grey", lw=0.5)
    ax.axvline(0, color="grey", lw=0.5)
    ax.set_xlabel(f"forget MC acc drop, before - after ({over})")
    ax.set_ylabel(f"retain MC acc drop ({over})")
    ax.set_title("Forgetting (right) vs. collateral damage (up)")
    if points:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), title="mean ± std over seeds",
                  title_fontsize=7)
    return _save(fig, Path(out_dir) / "tradeoff.png")


def write_plots(runs: Sequence[Run], out_dir: str | Path, groups: Sequence[SeedGroup] | None = None) -> list[Path]:
    """Both plots as PNG into `out_dir` (`groups`: the runs' settings where the caller has them); returns the
    written paths."""
    return [plot_forget_bars(runs, out_dir), plot_tradeoff(runs, out_dir, groups)]


def _pyplot():
    """pyplot on the Agg backend: files only, works headless, never opens a window."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    return save_figure(fig, path, dpi=120, bbox_inches="tight")


# ----------------------------------------------------------------------------------------------- CLI


def default_out_dir(first: str | Path) -> Path:
    """The first dir; for a single run dir, its `report/` subdir so the run's own results.md survives."""
    first = Path(first)
    return first / "report" if (first / METRICS_FILE).is_file() else first


def render_markdown(table: str, plots: Sequence[Path], command: str, out_dir: Path) -> str:
    """results.md: how it was made, the table, and the plots (linked relative to results.md)."""
    images = "\n\n".join(f"![{p.stem}]({os.path.relpath(p, out_dir)})" for p in plots)
    return (f"# Unlearning results\n\nProduced by (from the repository root):\n\n```bash\n{command}\n```\n\n"
            f"{table}\n\n{images}\n")


def said_alone(message, category, filename, lineno, line=None) -> str:
    """A warning as the report's reader needs it: its kind and message, without the source line Python adds."""
    return f"{category.__name__}: {message}\n"


def main(argv: Sequence[str] | None = None) -> Path:
    """CLI entry: print the table, write OUT_DIR/results.md and the PNGs; returns the results.md path."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m unlearn.report", description=__doc__.split("\n")[0])
    parser.add_argument("dirs", nargs="+", help="sweep dirs (run subdirs) or single run dirs (metrics.json)")
    parser.add_argument("--out", help="output dir (default: the first dir; a single run dir's report/)")
    parser.add_argument("--scorer", help="read each run's generation and cloze as re-scored by this scorer (its "
                                          "metrics_<scorer>.json, written by python -m unlearn.rescore)")
    parser.add_argument("--pool-over", action="append", default=[], metavar="KEY",
                        help="a config key whose values tell one setting's samples apart, as seed does (repeatable): "
                             "model.path where each seed unlearned a vanilla model of your own; runs that differ "
                             "only in seeds and these keys are one setting, mean ± std over them")
    args = parser.parse_args(args_list)
    if args.scorer:  # imported here: the scorers' metrics import torch (3 s), which the report otherwise never needs
        from unlearn.eval.scorers import SCORERS

        if args.scorer not in SCORERS:
            parser.error(f"--scorer {args.scorer!r}: expected one of {', '.join(sorted(SCORERS))}")

    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        runs = load_runs(args.dirs, args.scorer)
    shown = warnings.formatwarning
    warnings.formatwarning = said_alone  # until the forty-fifth session each came with a line of this module's source
    try:
        for w in said:  # shown as before; the report's own are kept for the page (a library's are not about the runs)
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    finally:
        warnings.formatwarning = shown
    said = [w for w in said if issubclass(w.category, ReportWarning)]
    if not runs:
        parser.exit(2, f"error: no runs with {METRICS_FILE} under {', '.join(args.dirs)}\n")
    out_dir = Path(args.out) if args.out else default_out_dir(args.dirs[0])
    if (out_dir / METRICS_FILE).is_file():  # until 2026-12-05 `--out RUN` replaced the run's own results.md
        parser.error(f"--out {out_dir} is a run's directory ({METRICS_FILE}): its results.md is that run's own "
                     "table; choose another --out (the default for one run is its report/)")
    if out_dir.exists() and not out_dir.is_dir():
        parser.error(f"--out {out_dir}: a file, not a directory")
    try:
        check_pooled(runs, args.pool_over)
    except ValueError as e:
        parser.error(str(e))
    table = results_table(runs)
    if args.scorer:
        table = (f"Generation and cloze scored by `{args.scorer}` (each run's metrics_{args.scorer}.json, "
                 "`python -m unlearn.rescore`).\n\n" + table)
    groups = group_by_seed(runs, args.pool_over)
    if not args.pool_over and (hint := pool_over_hint(runs, groups)):
        table += "\n- " + hint
    if any(len(g.runs) > 1 for g in groups):
        table += "\n\n## Over seeds\n\n" + seed_table(groups, args.pool_over)
        paired = paired_seed_table(groups)
        if paired:
            table += "\n\n### Seed by seed\n\n" + paired
        table += "\n\n### Modality gap\n\n" + gap_table(groups)
    if has_test(runs):
        table += "\n\n## Test set\n\n" + forget_test_table(groups)
    if has_likelihood(runs):
        table += "\n\n## Likelihood metrics\n\n" + likelihood_table(groups)
    if has_relearn(runs):
        table += "\n\n## Relearning attack\n\n" + relearn_table(groups)
    if said:  # a run skipped or left out changes every row it would have joined (until 2026-12-05 said on stderr only)
        table += "\n\n## Left out or read apart\n\n" + "\n".join(f"- {w.message}" for w in said)
    print(table)
    plots = write_plots(runs, out_dir, groups)
    command = "python -m unlearn.report " + shlex.join(args_list)
    md = out_dir / "results.md"
    text = render_markdown(table, plots, command, out_dir)
    write_atomic(md, lambda f: f.write(text.encode()))
    print(f"\nwrote {md}" + "".join(f"\nwrote {p}" for p in plots))
    return md


if __name__ == "__main__":
    from unlearn.runtime import refusals_as_messages

    refusals_as_messages(main)
