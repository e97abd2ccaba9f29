"""Re-score a finished run with another scorer, from the raw replies its items.json keeps.

    python -m unlearn.rescore RUN_DIR --scorer mllmu_bench

Writes `metrics_<scorer>.json` and `items_<scorer>.json` beside the run's own files (which stay as they
are) and prints the before/after table. Items scored without generating (likelihood or letter MC) keep
their score: no scorer reads them differently. Every metric the pipeline derives from the items alone is
recomputed, as the run's config made it (its config.json or .hydra/config.yaml): the split means, CLEAR's
per-task means (`eval.protocol=clear`) and per-source means (`data=clear`), the truth ratios with its
`eval.truth_ratio_perturbed`; a metric the old scoring made and the new one does not (another scorer's ROUGE-1)
is dropped. What needs more than the run's items (forget quality reads a reference model's) is carried over
from its metrics.json.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from unlearn.eval.metrics import aggregate, derived_metrics
from unlearn.eval.scorers import SCORERS, Scorer, get_scorer, named_keys
from unlearn.eval.table import before_after_table
from unlearn.io import write_json

log = logging.getLogger(__name__)


def rescore_records(records: list[dict], scorer: Scorer, where: str = "items.json") -> list[dict]:
    """New records with the generated items' scores recomputed by `scorer`."""
    out = []
    for r in records:
        r = dict(r)
        if r["task"] in ("gen", "cloze") and "reply" not in r:
            raise ValueError(f"{where}: item {r['uid']!r} has no raw reply (a run from before replies were "
                             f"kept); it cannot be re-scored")
        if "reply" in r:
            # a file's own Options keys, where the run read them (data.on_bad_row=score), else A-D
            written = tuple(r.get("letters") or "ABCD")
            letters = named_keys(written)
            r["score"] = scorer.score(r["task"], r["reply"], r["answer"], tuple(r.get("options", ())), letters,
                                      answer_index=r.get("answer_index"), modality=r.get("modality"),
                                      written=written)
            if r["task"] == "gen":
                r.pop("columns", None)  # another scorer's, or none
                r.update(scorer.generation_fields(r["reply"], r["answer"]))
            if r["task"] == "mc":
                choice = scorer.mc_letter(r["reply"], letters)
                r["prediction"] = r["options"][choice] if choice >= 0 else None
        out.append(r)
    return out


# the run settings that decide which metrics its items give, and each one's default
ITEM_SETTINGS = {"eval.truth_ratio_perturbed": "item", "eval.protocol": None, "data.name": None}


def item_settings(run_dir: Path) -> dict:
    """ITEM_SETTINGS as the run had them: config.json (resolved), else .hydra/config.yaml (each key resolved on
    its own: a composed config's interpolations name keys of its own, `${oc.select:data.x,item}`), else the
    defaults."""
    resolved, composed = run_dir / "config.json", run_dir / ".hydra" / "config.yaml"
    if resolved.is_file():
        from omegaconf import OmegaConf

        cfg = OmegaConf.create(read_object(resolved))
    elif composed.is_file():
        from omegaconf import OmegaConf

        cfg = OmegaConf.load(composed)
    else:
        log.warning("%s: no config.json or .hydra/config.yaml; re-scored with %s", run_dir,
                    ", ".join(f"{k}={v}" for k, v in ITEM_SETTINGS.items()))
        return dict(ITEM_SETTINGS)
    return {key: OmegaConf.select(cfg, key, default=default) for key, default in ITEM_SETTINGS.items()}


def item_metrics(records: list[dict], stage: str, settings: dict) -> dict[str, float]:
    """Every metric the pipeline derives from one stage's items alone, under the run's `settings` (item_settings):
    the split means and `derived_metrics` without a reference (forget quality reads a reference run's items)."""
    perturbed = settings["eval.truth_ratio_perturbed"]
    return {**aggregate(records, stage, perturbed),
            **derived_metrics(records, stage, perturbed, settings["eval.protocol"], settings["data.name"])}


def read_stages(path: Path) -> dict[str, list]:
    """A run's items.json, {stage: [record, ...]} with a `before` or `after` stage; anything else is refused naming
    the file (until 2026-12-05 `{}` wrote an empty table, a list or a truncated file raised a bare Python error)."""
    try:
        stages = json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"{path}: not readable JSON ({e}); a run still writing, or a truncated copy?") from e
    if not isinstance(stages, dict) or not {"before", "after"} & set(stages) or \
            not all(isinstance(records, list) for records in stages.values()):
        shown = sorted(stages) if isinstance(stages, dict) else type(stages).__name__
        raise ValueError(f"{path}: expected {{stage: [records]}} with a 'before' or 'after' stage, found {shown}")
    return stages


def read_object(path: Path) -> dict:
    """A JSON object file, or a ValueError naming it (until 2026-12-05 a damaged metrics.json or config.json
    raised a bare JSONDecodeError or AttributeError)."""
    try:
        data = json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"{path}: not readable JSON ({e}); a run still writing, or a truncated copy?") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def rescore_run(run_dir: str | Path, scorer_name: str) -> dict[str, float]:
    run_dir = Path(run_dir)
    path = run_dir / "items.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no items.json; is {run_dir} a run directory?")
    scorer = get_scorer(scorer_name)
    stages = read_stages(path)
    settings = item_settings(run_dir)
    own = run_dir / "metrics.json"
    metrics = dict(read_object(own).get("metrics") or {}) if own.is_file() else {}
    # what the items alone do not give (forget quality: the reference model's ratios) stays as the run had it;
    # what the old scoring derived from them goes, so that no key of the old scorer's stays under the new name
    for stage, records in stages.items():
        for key in item_metrics(records, stage, settings):
            metrics.pop(key, None)
    new_items = {}
    for stage, records in stages.items():
        new_items[stage] = rescore_records(records, scorer, str(path))
        metrics.update(item_metrics(new_items[stage], stage, settings))
    write_json(run_dir / f"items_{scorer.name}.json", new_items)
    write_json(run_dir / f"metrics_{scorer.name}.json", {"scorer": scorer.name, "metrics": metrics})
    return metrics


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--scorer", required=True, choices=sorted(SCORERS))
    args = ap.parse_args(argv)
    metrics = rescore_run(args.run_dir, args.scorer)
    print(f"{args.run_dir} re-scored with {args.scorer}:\n{rescored_table(metrics)}")


def rescored_table(metrics: dict) -> str:
    """The before/after table, and the relearning attack's (after -> relearn) where the run has that stage, as the
    run's own results.md shows them (until the forty-eighth session the attack's re-scored numbers were written to
    metrics_<scorer>.json and never shown)."""
    table = before_after_table(metrics)
    if any(k.startswith("relearn/") for k in metrics):
        table += "\n\nrelearning attack (after -> relearn):\n" + before_after_table(metrics, ("after", "relearn"))
    return table


if __name__ == "__main__":
    from unlearn.runtime import refusals_as_messages

    refusals_as_messages(main)
