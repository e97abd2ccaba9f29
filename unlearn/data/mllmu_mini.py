"""The embedded benchmark: MLLMU-Bench-style fictitious people, generated deterministically and cached.

Splits (a `datasets.DatasetDict`):
  train              every person (fictitious + untouched): the clean portrait plus augmented variants
                     (`train_variants` in all), and the QA pairs taught
  forget_{p}         eval rows for the first p % of fictitious people (clean portrait, training templates)
  retain_{100-p}     eval rows for the other fictitious people
  test_{p}           the forget people again, with held-out portrait variants and paraphrased questions
  untouched          eval rows for people learned in finetuning but never forgotten nor retained
Forget sets are nested: forget_5 is a subset of forget_10, which is a subset of forget_15.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

from datasets import Dataset, DatasetDict, Features, Image, Sequence, Value, load_from_disk

from unlearn.data import people as P
from unlearn.data.mini_spec import MiniSpec, forget_count  # data.spec's _target_ names MiniSpec here
from unlearn.data.portraits import portrait_variants
from unlearn.data.schema import DataError, check_eval_rows, check_train_rows
from unlearn.io import build_cached_dir

log = logging.getLogger(__name__)

_QUESTION = {"Question": Value("string"), "Options": {k: Value("string") for k in P.LETTERS},
             "Correct_Answer": Value("string"), "attribute": Value("string")}
_FREE = {"Question": Value("string"), "Ground_Truth": Value("string"), "Type": Value("string"),
         "attribute": Value("string")}
_GEN = {**_FREE, "Paraphrased_Answer": Value("string"), "Perturbed_Answers": Sequence(Value("string"))}
EVAL_FEATURES = Features({
    "ID": Value("int32"), "name": Value("string"), "image": Image(),
    "Classification_Task": {"Image_Textual_Questions": [_QUESTION], "Pure_Text_Questions": [_QUESTION]},
    "Generation_Task": [_GEN], "Mask_Task": [_FREE],
})
TRAIN_FEATURES = Features({
    "ID": Value("int32"), "name": Value("string"), "group": Value("string"), "biography": Value("string"),
    "profile": {a: Value("string") for a in P.ATTRIBUTES}, "images": Sequence(Image()),
    "qa": [{"multimodal_question": Value("string"), "text_question": Value("string"), "answer": Value("string")}],
})


def build(spec: MiniSpec) -> DatasetDict:
    people = P.make_people(spec.num_people + spec.num_untouched, spec.seed)
    fictitious, untouched = people[: spec.num_people], people[spec.num_people:]
    order = list(range(spec.num_people))
    random.Random(spec.seed + 1).shuffle(order)
    K = spec.train_variants

    def eval_row(person: P.Person, held_out: bool) -> dict:
        variant = K + 1 if held_out else 0  # K + 1: never in the training bank
        rng = random.Random(spec.seed * 31 + person.ID * 2 + held_out)
        (image,) = portrait_variants(person.ID, spec.seed, spec.image_size, [variant])
        return {"ID": person.ID, "name": person.name, "image": image, **P.eval_tasks(person, rng, held_out)}

    train = [
        {"ID": p.ID, "name": p.name, "group": "untouched" if p in untouched else "fictitious",
         "biography": p.biography, "profile": p.profile,
         "images": portrait_variants(p.ID, spec.seed, spec.image_size, list(range(K))),
         "qa": P.training_qa(p)}
        for p in people
    ]
    splits = {"train": Dataset.from_list(train, features=TRAIN_FEATURES)}
    clean = {p.ID: eval_row(p, held_out=False) for p in people}
    for pct in spec.forget_percents:
        forget_ids = set(order[: forget_count(spec.num_people, pct)])
        splits[f"forget_{pct}"] = Dataset.from_list([clean[i] for i in order if i in forget_ids], features=EVAL_FEATURES)
        splits[f"retain_{100 - pct}"] = Dataset.from_list(
            [clean[i] for i in order if i not in forget_ids], features=EVAL_FEATURES)
        splits[f"test_{pct}"] = Dataset.from_list(
            [eval_row(fictitious[i], held_out=True) for i in order if i in forget_ids], features=EVAL_FEATURES)
    splits["untouched"] = Dataset.from_list([clean[p.ID] for p in untouched], features=EVAL_FEATURES)
    return DatasetDict(splits)


def full_set_ids(train) -> list[str]:
    """The embedded benchmark's stand-in for MLLMU-Bench's Full_Set (the order eval.shot_order=full_set lays drawn
    few-shot people out in): its fictitious people, those the forget and retain splits divide (not the untouched
    ones, as Full_Set holds no celebrity), in ID order, the order they were generated in, before the seeded
    shuffle the splits follow; as the MLLMU-Bench fixture's Full_Set (unlearn/data/fixtures.py). IDs as strings,
    as a few-shot lookup matches them (EvalItem.profile)."""
    return [str(i) for i, group in sorted(zip(train["ID"], train["group"])) if group == "fictitious"]


def load_or_build(spec: MiniSpec, cache_dir: str | Path) -> DatasetDict:
    """Generate once into the cache (atomically), then reuse. The rows are checked once, before they are
    written (a bad generated row is a bug), not on every load: that took half a second of each run."""
    path = Path(cache_dir) / "data" / f"mllmu_mini-{spec.key()}"
    if not path.exists():
        log.info("generating the embedded benchmark into %s", path)

    def write(tmp) -> None:
        splits = build(spec)
        validate(splits)
        splits.save_to_disk(str(tmp))

    build_cached_dir(path, write)
    return load_from_disk(str(path))


def validate(dsd: DatasetDict) -> None:
    for name, ds in dsd.items():
        if name == "train":
            check_train_rows(name, ds)
        elif name.split("_")[0] in ("forget", "retain", "test", "untouched"):
            check_eval_rows(name, ds)
        else:
            raise DataError(f"unknown split '{name}' (expected train, forget_P, retain_P, test_P, untouched)")
