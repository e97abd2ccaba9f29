"""A benchmark as methods see it: forget / retain / test / untouched eval rows and the training rows."""

from __future__ import annotations

import functools

import logging
from pathlib import Path

from datasets import DatasetDict

from unlearn.data import clear, mllmu_bench, mllmu_mini
from unlearn.data.schema import BadRows, DataError, check_eval_rows, check_train_rows

log = logging.getLogger(__name__)


class Benchmark:
    """`skipped`: what the loader left out under data.on_bad_row=skip, {split: {reason: count}} (empty when
    nothing was skipped), for the log and metrics.json (`skipped_rows`). `people`: the forget and retain people
    as the source names them, {"forget": IDs, "retain": IDs}, where some may have no evaluation row (CLEAR's
    data.eval_rows, a row dropped under skip); by default the people of the evaluation rows. `scored`: the
    questions kept under data.on_bad_row=score although the checks refuse them, {split: {reason: count}}
    (metrics.json `scored_rows`). `full_set`: the IDs
    of MLLMU-Bench's Full_Set as its file writes them, in its row order, the order eval.shot_order=full_set lays
    drawn few-shot people out in (unlearn/eval/protocol.py); by default, for the embedded benchmark's splits (a
    train split with `group`), its fictitious people in ID order (mllmu_mini.full_set_ids), else None (none:
    data=clear, a snapshot without Full_Set)."""

    def __init__(self, splits: DatasetDict, forget_split: str, name: str = "benchmark",
                 skipped: dict[str, dict[str, int]] | None = None, people: dict[str, set[int]] | None = None,
                 full_set=None, scored: dict[str, dict[str, int]] | None = None):
        self.name = name
        if full_set is None and "group" in splits["train"].column_names:
            full_set = functools.partial(mllmu_mini.full_set_ids, splits["train"])  # read where shots are ordered
        # a list, or a loader read on first use (MLLMU-Bench's Full_Set: only where eval.shot_order=full_set is read)
        self._full_set = full_set if full_set is None or callable(full_set) else tuple(full_set)
        self.skipped = skipped or {}
        self.scored = scored or {}
        forgets = sorted((s for s in splits if s.startswith("forget_")), key=lambda s: int(s.split("_")[1]))
        if forget_split not in forgets:
            raise DataError(f"data.forget_split={forget_split!r} is not a split of {name}; available: {forgets}")
        pct = int(forget_split.split("_")[1])
        self.forget_split = forget_split
        self.eval = {"forget": splits[forget_split], "retain": splits[f"retain_{100 - pct}"],
                     "test": splits[f"test_{pct}"], "untouched": splits["untouched"]}
        self.train = splits["train"]
        # until 2026-12-05 always those of the evaluation rows: clear_baselines' data.eval_rows=300 left the
        # forget authors whose images lie past row 300 taught, never unlearned, and in the reference's teaching
        named = people or {}
        evaluated = {g: set(self.eval[g]["ID"]) for g in ("forget", "retain")}
        self.forget_ids = evaluated["forget"] | set(named.get("forget", ()))
        self.retain_ids = evaluated["retain"] | set(named.get("retain", ()))
        for group, all_ids in (("forget", self.forget_ids), ("retain", self.retain_ids)):
            ids = sorted(all_ids - evaluated[group])
            if ids:
                # "in the split": a forget person's test rows are still scored (until the fifty-first session this
                # said "not evaluated", and a researcher found the person in the test split's counts)
                log.info("%s: %d %s people have no evaluation row (data.eval_rows, or rows dropped under "
                         "data.on_bad_row): they are %s, not evaluated in the %s split (IDs %s%s)", name, len(ids),
                         group, "unlearned" if group == "forget" else "kept", group, ids[:10],
                         " ..." if len(ids) > 10 else "")
        self.untouched_ids = set(self.eval["untouched"]["ID"])

    @property
    def full_set(self) -> tuple[str, ...] | None:
        if callable(self._full_set):
            loaded = self._full_set()
            self._full_set = None if loaded is None else tuple(loaded)
        return self._full_set

    def train_rows(self, group: str):
        """Training rows of `all` people, only the `forget`, `retain` or `untouched` ones, or everyone
        `without_forget` (what a reference model for forget quality is taught)."""
        if group == "all":
            return self.train
        if group == "without_forget":
            return self.train.filter(lambda row: row["ID"] not in self.forget_ids)
        ids = {"forget": self.forget_ids, "retain": self.retain_ids, "untouched": self.untouched_ids}.get(group)
        if ids is None:
            raise DataError(f"unknown training group {group!r}; expected all, without_forget, forget, retain or untouched")
        return self.train.filter(lambda row: row["ID"] in ids)


def first_people(rows, n: int):
    """The rows of the first `n` distinct people (CLEAR has one row per image, so rows are not people)."""
    ids = rows["ID"]
    keep = set(list(dict.fromkeys(ids))[:n])
    return rows.select([i for i, pid in enumerate(ids) if pid in keep])


def load_mllmu_mini(spec: mllmu_mini.MiniSpec, forget_split: str, cache_dir: str | Path,
                    on_bad_row: str = "error") -> Benchmark:
    """The embedded benchmark. Its rows are generated, so a bad one is a bug: `error` (the default) stops
    (they are checked when generated); `skip` checks them again on load."""
    bad = BadRows(on_bad_row)
    splits = mllmu_mini.load_or_build(spec, cache_dir)
    if bad.mode != "error":
        splits = DatasetDict({name: _keep_good(name, ds, bad) for name, ds in splits.items()})
    return Benchmark(splits, forget_split, name="mllmu_mini", skipped=bad.skipped)


def _keep_good(name: str, ds, bad: BadRows):
    check = check_train_rows if name == "train" else check_eval_rows
    kept = check(name, ds, bad=bad)
    return ds if len(kept) == len(ds) and name not in bad.skipped else ds.from_list(kept, features=ds.features)


def load_mllmu_bench(path: str, forget_split: str, cache_dir: str | Path | None = None, test_image="random",
                     seed: int = 0, text_rule: str = "manu", on_bad_row: str = "error") -> Benchmark:
    """MLLMU-Bench from the hub id or a local snapshot at `path` (see unlearn/data/mllmu_bench.py)."""
    bad, people = BadRows(on_bad_row, scores=True), {}  # score: MLLMU-Bench's eval.py's reading of these rows
    splits = mllmu_bench.load(path, forget_split, cache_dir=cache_dir, test_image=test_image, seed=seed,
                              text_rule=text_rule, bad=bad, people=people)
    # Full_Set is read only where eval.shot_order=full_set asks for it (pipeline.shot_order): a hub Full_Set
    # (images and all in its parquet files) is not fetched for runs that never order shots by it
    return _benchmark(splits, forget_split, "mllmu_bench", bad, people,
                      functools.partial(mllmu_bench.full_set_ids, path, cache_dir))


def load_clear(path: str, forget_split: str, cache_dir: str | Path | None = None, perturbed: bool = True,
               text_qa: bool = True, untouched=clear.UNTOUCHED_CONFIGS, seed: int = 0, every_image: bool = True,
               retain_images: str = "perturbed", train_pairs: str = "both_forms", caption_prompt: str = "cycle",
               eval_rows: int | None = None, on_bad_row: str = "error") -> Benchmark:
    """CLEAR from the hub id or a local snapshot at `path` (see unlearn/data/clear.py)."""
    bad, people = BadRows(on_bad_row), {}
    splits = clear.load(path, forget_split, cache_dir=cache_dir, perturbed=perturbed, text_qa=text_qa,
                        untouched=tuple(untouched), seed=seed, every_image=every_image,
                        retain_images=retain_images, train_pairs=train_pairs, caption_prompt=caption_prompt,
                        eval_rows=eval_rows, bad=bad, people=people)
    return _benchmark(splits, forget_split, "clear", bad, people)


def _benchmark(splits: DatasetDict, forget_split: str, name: str, bad: BadRows, people: dict,
               full_set: list[str] | None = None) -> Benchmark:
    if bad.skipped:
        log.warning("%s: data.on_bad_row=%s left out %d rows/questions: %s", name, bad.mode, bad.total(), bad.skipped)
    if bad.scored:
        log.warning("%s: data.on_bad_row=score kept %d questions the checks refuse, scored as MLLMU-Bench's eval.py "
                    "scores them: %s", name, sum(n for r in bad.scored.values() for n in r.values()), bad.scored)
    return Benchmark(splits, forget_split, name=name, skipped=bad.skipped, people=people, full_set=full_set,
                     scored=bad.scored)
