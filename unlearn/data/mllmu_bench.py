"""MLLMU-Bench (Liu et al. 2024, arXiv:2410.22108) read from the hub or a local snapshot, in the internal layout.

Source: the hub dataset `MLLMMU/MLLMU-Bench`, or a directory holding a copy of that repository
(`hf download --repo-type dataset MLLMMU/MLLMU-Bench --local-dir DIR`, then `data.path=DIR`).

The real format, as the loader expects it (sources at the end):
  * Configs, each one `train` split of parquet files under `<config>/train-*`: `ft_Data` (500 rows),
    `Full_Set` (500), `forget_5/10/15` (25/50/75), `retain_95/90/85` (475/450/425), `Test_Set` (500, in two
    shards) and `Retain_Set` (153 real celebrities).
  * `ft_Data`: `image` (an image), `ID` (a string such as '110') and `metadata`: a JSON *string* holding the
    list of `{"Question", "Answer"}` pairs taught in finetuning, asked about "this person" in the image.
    Only ft_Data has `metadata`; the other configs have none.
  * `Full_Set`, `forget_P`, `retain_R`, `Retain_Set`: `image`, `ID`, `Directory`, `biography`, `question`,
    `answer` and the three task blocks:
    `Classification_Task = {Image_Textual_Questions, Pure_Text_Questions: [{Question, Options{A,B,C,D},
    Correct_Answer}]}` (Correct_Answer is the letter), `Generation_Task` and `Mask_Task` =
    `[{Question, Ground_Truth, Type}]` with Type `Image_Textual` or `Pure_Text`; cloze blanks are written
    `__`. The Pure_Text questions already name the person: both forms of every eval question are in the data.
  * `Test_Set`: the same task blocks with paraphrased questions and, instead of `image`, `images`: a list of
    transformed portraits of the person (new poses); their evaluation draws one of them at random, unseeded,
    for each row in each task (MC, generation and cloze may show a person different images); here one seeded
    draw per person serves every task (`test_image`), the same in distribution.

Mapping to the internal splits (`Benchmark` reads them unchanged):
  ==============================  ==================================================================
  real config                     internal split
  ==============================  ==================================================================
  ft_Data                         train: one row per person, `images=[portrait]`, `qa` from metadata
  forget_P                        forget_P
  retain_{100-P}                  retain_{100-P}
  Test_Set, rows of forget_P IDs  test_P: one of `images` per person (`test_image`), paraphrases as given
  Retain_Set (real celebrities)   untouched (no training rows: their knowledge comes from pretraining)
  Full_Set                        its ID column alone (`full_set_ids`): the row order in which eval.py lays
                                  out drawn few-shot people (eval.shot_order=full_set); its rows are
                                  forget_P + retain_{100-P}'s and are not read
  ==============================  ==================================================================
Only the requested forget percentage is converted (its splits are all a run reads). forget_P and retain_{100-P}
split ft_Data's people: one in both is refused, a taught one in neither (never evaluated) is logged as a warning. IDs become integers:
a fictitious person's ID is its source ID (a digit string); a celebrity's is `UNTOUCHED_ID_OFFSET` + its
row index, since Retain_Set IDs may repeat fictitious ones. `source_id` keeps the original string.

Text-only training questions follow the MANU authors (`LLAVA_unimodal_Dataset` in franciscoliu/MANU,
data_process/data_preprocess.py): the person's name is the answer to the first metadata question found in
their list of name questions (`MANU_NAME_QUESTIONS`), extracted by `manu_extract_name`; then every
visual reference in `MANU_PLACEHOLDERS` ("this person", "the person", "this individual", ...) is replaced
by the name, in that order, by plain substring replacement, in the question and in the answer. Their rule
leaves the rest of a phrase as it is ("What is the job of the person in the image?" becomes "What is the job
of Jane Doe in the image?"); `text_rule="clean"` first rewrites the whole phrases "the person in the image"
and the like (`CLEAN_PHRASES`; the rule's code: unlearn/data/manu_text_rule.py). The rewritten answer is kept as
`text_answer`, which the text form trains on.
One difference from their dataset: the name question stays in the training rows in both forms (they drop it
from the text-only set).

Which of these are confirmed, and where (the same findings for readers: docs/data_formats.md):
  confirmed, hub card and viewer of MLLMMU/MLLMU-Bench (huggingface.co/datasets/MLLMMU/MLLMU-Bench, /viewer,
  /tree, README.md at refs/pr/3):
    - the ten config names and row counts (Full_Set 500, ft_Data 500, forget_5/10/15 25/50/75,
      retain_95/90/85 475/450/425, Test_Set 500, Retain_Set 153), each one `train` split;
    - Full_Set features: image (`dtype: image`), ID (`dtype: string`), Directory, biography, question, answer,
      Classification_Task {Image_Textual_Questions, Pure_Text_Questions: [{Correct_Answer, Options{A-D},
      Question}]}, Generation_Task [{Ground_Truth, Question, Type}] (earlier card revisions 5c58a05 / 2278901
      list the forget configs without `Directory`; nothing here reads it);
    - files: `<config>/train-00000-of-00001.parquet`; Test_Set as train-00000-of-00002 and -00001-of-00002.
  confirmed, official code (franciscoliu/MLLMU-Bench eval.py, read through its copy YokeYao/MLLMU-Bench eval.py;
  franciscoliu/MANU's eval.py is not the same code: its shots differ, unlearn/eval/protocol.py):
    - images read as `row["image"]["bytes"]` (the {bytes, path} encoding);
    - Test_Set rows carry `images`, a list of images, one drawn at random per row in test mode;
    - Test_Set is filtered to the forget IDs (`df['ID'].isin(forget IDs)`), so forget and Test_Set IDs are the
      same strings;
    - Correct_Answer is the option letter, compared as published with the upper-cased first character of the
      reply; Mask_Task entries are {Question, Ground_Truth, Type} with the blank written `__`.
  confirmed, MANU's code (franciscoliu/MANU): ft_Data-style parquet = image + ID (string) + metadata (a JSON
    string of [{Question, Answer}]) (data_process/prune_data_creation.py writes exactly these Features;
    data_preprocess.py reads `json.loads(row['metadata'])` and skips pairs without Question or Answer); only
    ft_Data has `metadata` (issue Z1zs/MMUnlearner#4: Full_Set columns listed without it).
  unconfirmed:
    - ft_Data's own features on the card (not in the card excerpts found; the MANU code above is the evidence);
    - Test_Set's features on the card (the `images` list comes from the official code only);
    - that Retain_Set IDs may repeat fictitious IDs (untouched IDs are offset anyway, so nothing depends on it);
    - Correct_Answer always upper-case and four non-empty options A-D: the official scorer assumes it; a row that
      breaks it is handled by `data.on_bad_row` (the question is dropped under `skip`, kept and scored as
      eval.py scores it under `score`, which also keeps a file's own Options keys, such as a fifth key E, as
      eval.py shows and reads them: unlearn/data/schema.py `_scored_mc`).
  corrected here: nothing in the format; what a deviating row costs is now `data.on_bad_row`.

Rows that cannot be used follow `data.on_bad_row` (unlearn/data/schema.py): `error` stops naming split, row
and field; `skip` drops what cannot be scored and counts it per split and reason. A metadata entry with
neither a Question nor an Answer key (the `{Additional_ID, Additional_question, Additional_answer}` entry the
authors' split script appends to every profile) is no pair and passed over, counted nowhere; under `skip`, a
half-filled pair (one of the two missing or empty) is dropped alone and counted (MANU's loaders drop both
silently, `if question and answer`); a profile without a name question
is dropped from training (MANU's text-only dataset would fail on it) and, with it, that person's eval rows
(nothing taught, nothing to unlearn); a question whose Correct_Answer is not one of A-D with a non-empty
option is dropped alone under `skip` (not repaired); `score` keeps it as the official scorer reads it: a
Correct_Answer that is no key of its Options never right (a file's fifth key E is one), a null one right where the
reply names no letter.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

from datasets import DatasetDict

from unlearn.data.empty_modalities import warn_empty_modalities
from unlearn.data.hub import (EVAL_FEATURES, LETTERS, TRAIN_FEATURES, eval_features, field, image_value, load_config,
                              raw_rows, missing_config, resolve_source, to_dataset)
from unlearn.data.manu_text_rule import MANU_NAME_QUESTIONS, TEXT_RULES, manu_find_name, manu_text_form
from unlearn.data.schema import BadRows, DataError, RowError, check_eval_row, check_train_row, fail, split_name
from unlearn.run_dir import global_zero

log = logging.getLogger(__name__)

HUB_ID = "MLLMMU/MLLMU-Bench"
FORGET_PERCENTS = (5, 10, 15)
UNTOUCHED_ID_OFFSET = 1_000_000

# --- Conversion ------------------------------------------------------------------------------------------
def forget_percent(forget_split: str, available=FORGET_PERCENTS, name: str = "mllmu_bench") -> int:
    names = [f"forget_{p}" for p in available]
    if forget_split not in names:
        raise DataError(f"data.forget_split={forget_split!r} is not a split of {name}; available: {names}")
    return int(forget_split.split("_")[1])


def _int_id(split: str, i: int, source_id: str) -> int:
    if not source_id.strip().isdigit():
        fail(split, i, f"field 'ID' is {source_id!r}, expected a number written as a string",
             "field 'ID' is not a number written as a string")
    return int(source_id)


def _source_id(split: str, i: int, row: dict) -> str:
    return str(field(split, i, row, "ID", (str, int)))


def _qa_pairs(split: str, i: int, row: dict, bad: BadRows) -> list[tuple[str, str]]:
    """ft_Data's metadata pairs. An entry with neither a Question nor an Answer key is not a pair (the authors'
    split script appends `{Additional_ID, Additional_question, Additional_answer}` to every profile) and is
    passed over uncounted, as MANU's and MLLMU-Bench's loaders pass over it. A half-filled pair is bad: under
    `skip` it is dropped alone (counted; their `if question and answer` drops it silently); the row goes when no
    pair is left."""
    meta = field(split, i, row, "metadata", (str, list))
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except json.JSONDecodeError as err:
            fail(split, i, f"field 'metadata' is not valid JSON ({err})", "field 'metadata' is not valid JSON")
    if not isinstance(meta, list) or not meta:
        fail(split, i, "field 'metadata' is not a non-empty JSON list of {Question, Answer} pairs")
    pairs = []
    for j, qa in enumerate(meta):
        try:
            if not isinstance(qa, dict):
                fail(split, i, f"metadata[{j}] is not a {{Question, Answer}} object")
            if qa.get("Question") is None and qa.get("Answer") is None:  # not a pair (the Additional_* entry; as a
                continue  # parquet struct it holds both keys as null): not counted
            for key in ("Question", "Answer"):
                if not isinstance(qa.get(key), str) or not qa[key].strip():
                    fail(split, i, f"metadata[{j}] has a missing or empty '{key}'")
        except RowError as err:
            bad.record(err, unit="question")
            continue
        pairs.append((qa["Question"].strip(), qa["Answer"].strip()))
    if not pairs:
        fail(split, i, "field 'metadata' has no usable {Question, Answer} pair")
    return pairs


def _train_row(split: str, i: int, row: dict, text_rule: str, bad: BadRows) -> dict:
    source_id = _source_id(split, i, row)
    if "image" not in row:
        fail(split, i, "missing field 'image'")
    image = image_value(split, i, row["image"])
    pairs = _qa_pairs(split, i, row, bad)
    name = manu_find_name(pairs)
    if not name:
        # MANU's text-only dataset has no name to put in the questions either (its replace would fail on
        # None): the person cannot be taught in both forms, so the row goes (and, with it, their eval rows).
        fail(split, i, f"field 'metadata' has no name question (one of MANU_NAME_QUESTIONS, e.g. "
                       f"{MANU_NAME_QUESTIONS[4]!r}) to take the person's name from: ID {source_id!r} is neither "
                       f"taught nor evaluated", "field 'metadata' has no name question")
    qa = [{"multimodal_question": q, "text_question": manu_text_form(q, name, text_rule), "answer": a,
           "text_answer": manu_text_form(a, name, text_rule)} for q, a in pairs]
    return check_train_row(split, i, {"ID": _int_id(split, i, source_id), "source_id": source_id, "name": name,
                                      "images": [image], "qa": qa})


def convert_train(rows, split: str, text_rule: str = "manu", bad: BadRows | None = None) -> list[dict]:
    bad = bad or BadRows()
    out, seen = [], set()
    for i, row in enumerate(rows):
        r = bad.keep(_train_row, split, i, row, text_rule, bad)
        if r is not None:
            _add_once(out, seen, r["ID"], r, split, i, bad)
    return out


def _add_once(out: list, seen: set, key, r: dict, split: str, i: int, bad: BadRows) -> None:
    """Append row `r` unless `key` came before: a person twice in one split is a bad row (named by source ID)."""
    if key in seen:
        bad.record(RowError(split, i, f"ID {r['source_id']!r} appears twice", "ID appears twice"))
        return
    seen.add(key)
    out.append(r)


def _question(split: str, i: int, where: str, q, own_keys: bool = False) -> dict:
    """An MC question in the internal layout: its Options A-D (null where the file has none), or, with
    `own_keys` (data.on_bad_row=score), every key the file writes, in its order, as eval.py shows them."""
    if not isinstance(q, dict):
        fail(split, i, f"{where} is not a question object")
    opts = q.get("Options")
    if not isinstance(opts, dict):
        fail(split, i, f"{where} has no Options mapping")
    keys = list(opts) if own_keys else LETTERS
    return {"Question": _text(q.get("Question")), "Options": {str(k): _text(opts.get(k)) for k in keys},
            "Correct_Answer": _text(q.get("Correct_Answer")), "attribute": q.get("attribute") or ""}


def _text(value):
    return value if value is None or isinstance(value, str) else str(value)


def _free(split: str, i: int, where: str, q) -> dict:
    if not isinstance(q, dict):
        fail(split, i, f"{where} is not a question object")
    return {"Question": _text(q.get("Question")), "Ground_Truth": _text(q.get("Ground_Truth")),
            "Type": q.get("Type"), "attribute": q.get("attribute") or ""}


def tasks(split: str, i: int, row: dict, own_keys: bool = False) -> dict:
    """The three task blocks of a source row, in the internal struct layout (checked later, by field); `own_keys`:
    the MC Options as the file keys them (`_question`)."""
    mc = field(split, i, row, "Classification_Task", dict)
    out = {"Classification_Task": {}}
    for key in ("Image_Textual_Questions", "Pure_Text_Questions"):
        if key not in mc or mc[key] is None:
            fail(split, i, f"missing field 'Classification_Task.{key}'")
        out["Classification_Task"][key] = [_question(split, i, f"{key}[{j}]", q, own_keys)
                                           for j, q in enumerate(mc[key])]
    for task in ("Generation_Task", "Mask_Task"):
        items = field(split, i, row, task, list, nonempty=False)
        out[task] = [_free(split, i, f"{task}[{j}]", q) for j, q in enumerate(items)]
    return out


def _row_name(row: dict, names: dict[str, str], source_id: str) -> str:
    if source_id in names:
        return names[source_id]
    q, a = row.get("question"), row.get("answer")
    if isinstance(q, str) and isinstance(a, str):
        return manu_find_name([(q, a)]) or ""
    return ""


def _eval_row(split: str, i: int, row: dict, names: dict[str, str], untouched: bool, test_image: str | int,
              seed: int, known: set[int] | None, bad: BadRows) -> dict:
    source_id = _source_id(split, i, row)
    if "images" in row and row["images"] is not None:
        images = row["images"]
        if not isinstance(images, list) or not images:
            fail(split, i, "missing image: field 'images' is empty")
        k = (random.Random(f"{seed}/{source_id}").randrange(len(images)) if test_image == "random"
             else int(test_image))
        if not -len(images) <= k < len(images):  # it wrapped around (7 of 2 images read image 1) until 2026-12-03
            fail(split, i, f"data.spec.test_image={k}: the row has {len(images)} images",
                 "fewer images than data.spec.test_image")
        image = image_value(split, i, images[k], f"images[{k}]")
    elif "image" in row:
        image = image_value(split, i, row["image"])
    elif "images" in row:  # Test_Set's list is null: name it, not the 'image' field Test_Set never has
        fail(split, i, "missing image: field 'images' is null")
    else:
        fail(split, i, "missing field 'image'")
    ID = UNTOUCHED_ID_OFFSET + i if untouched else _int_id(split, i, source_id)
    if known is not None and ID not in known:
        # the ft_Data row may be there but dropped under skip: the message says both (until the fifty-first session
        # it said "no ft_Data row" of a person whose row was there and dropped, with the ID named nowhere else)
        fail(split, i, f"ID {source_id!r} has no usable ft_Data row (none, or one dropped as a "
                       f"bad row, named above): nothing to teach or unlearn", "ID has no ft_Data row")
    name = _row_name(row, {} if untouched else names, source_id)  # celebrity IDs may repeat fictitious ones
    out = {"ID": ID, "source_id": source_id, "name": name, "image": image, "Image_Index": 0,
           **tasks(split, i, row, own_keys=bad.mode == "score")}
    return check_eval_row(split, i, out, bad)


def convert_eval(rows, split: str, names: dict[str, str], *, untouched: bool = False, keep=None,
                 test_image: str | int = "random", seed: int = 0, known: set[int] | None = None,
                 bad: BadRows | None = None, met: set | None = None) -> list[dict]:
    """Eval rows of a forget / retain / untouched config, or of Test_Set restricted to the IDs in `keep`.
    `known`: the IDs taught (ft_Data); a row of another ID is bad. Bad rows and questions follow `bad`. `met`
    receives the IDs of `keep` that have a row, kept or dropped as bad (a dropped one is counted already)."""
    bad = bad or BadRows()
    out, seen = [], set()
    for i, row in enumerate(rows):
        if keep is not None:
            sid = bad.keep(_source_id, split, i, row)
            if sid is None or sid not in keep:
                continue
            if met is not None:
                met.add(sid)
        r = bad.keep(_eval_row, split, i, row, names, untouched, test_image, seed, known, bad)
        if r is not None:  # a fictitious person is its number ('0112' is '112', as in ft_Data and the
            # forget/retain overlap check); a celebrity, renumbered by row, is its source ID
            _add_once(out, seen, r["source_id"] if untouched else r["ID"], r, split, i, bad)
    return out


def option_keys(rows: list[dict]) -> tuple[str, ...]:
    """The MC Options keys of a split's kept rows, in the file's order (A-D where it has no MC question). Why: under
    data.on_bad_row=score the rows keep their file's own keys (`_question`), which a parquet file writes once, in
    its schema, for every question; eval.py shows and reads those (eval.py:125, 376, 432)."""
    keys = {k: None for r in rows for block in r["Classification_Task"].values() for q in block for k in q["Options"]}
    return tuple(keys) or tuple(LETTERS)


def unassigned(train: list[dict], forget: set[int], retain: set[int]) -> list[str]:
    """Source IDs of the taught people (train rows) in neither the forget nor the retain IDs, in train order.
    Why: forget_P and retain_{100-P} split ft_Data's people; one in neither (a row missing from a partial
    snapshot) is taught to the model but never evaluated, which nothing said (until 2026-12-05)."""
    return [r["source_id"] for r in train if r["ID"] not in forget and r["ID"] not in retain]


def named_people(ds, split: str, known: set[int]) -> dict[str, int]:
    """Source ID -> ID of every taught person a forget / retain config names, whatever its rows' other fields
    hold: under data.on_bad_row=skip a row whose image or question is bad is not evaluated, but its person is
    still the config's (unlearned, or kept, as the official scripts read the config's IDs). Reads the ID column
    alone (the rows' images are not decoded again)."""
    out = {}
    for i, value in enumerate(ds["ID"] if "ID" in ds.column_names else ()):
        try:
            source_id = _source_id(split, i, {"ID": value})
            ID = _int_id(split, i, source_id)
        except RowError:
            continue
        if ID in known:
            out[source_id] = ID
    return out


def full_set_ids(path: str = HUB_ID, cache_dir: str | Path | None = None, key: str = "data.path") -> list[str] | None:
    """Full_Set's IDs as its file writes them, in its row order, or None where a local snapshot has no Full_Set
    config. Why: the official eval.py looks the drawn few-shot people up in `--few_shot_data`, which its README and
    MMUnlearner's MLLMU_eval.sh name Full_Set, as `few_shot_df[few_shot_df['ID'].isin(selected_ids)]` (eval.py
    276, 514), so their shot blocks follow Full_Set's row order (eval.shot_order=full_set,
    unlearn/eval/protocol.py). Only the ID column is kept (from the hub, the parquet files are fetched whole). A
    Full_Set that is there but unreadable stops the load, naming its file (load_config); a row without an ID is
    passed over (no drawn ID matches it)."""
    source = resolve_source(path, key, HUB_ID)
    if Path(source).is_dir() and (why := missing_config(Path(source), "Full_Set", HUB_ID)) is not None:
        log.info("%s=%s has no Full_Set (%s): eval.shot_order=full_set is unavailable", key, source, why)
        return None
    ds, _ = load_config(source, "Full_Set", key=key, repo_id=HUB_ID, cache_dir=cache_dir, columns=["ID"])
    return [str(value) for value in ds["ID"] if value is not None]


def load(path: str = HUB_ID, forget_split: str = "forget_10", cache_dir: str | Path | None = None,
         test_image: str | int = "random", seed: int = 0, text_rule: str = "manu",
         key: str = "data.path", bad: BadRows | None = None, people: dict | None = None) -> DatasetDict:
    """The internal DatasetDict (train, forget_P, retain_{100-P}, test_P, untouched) for one forget split.
    `bad`: the data.on_bad_row policy, which also collects what was skipped (default: error). `people`, when
    given, receives the IDs the forget and retain configs name (`named_people`; Benchmark's forget and retain
    people: a row dropped under skip leaves its person in its group, unevaluated)."""
    bad = bad or BadRows()
    pct = forget_percent(forget_split)
    if text_rule not in TEXT_RULES:
        raise DataError(f"data.spec.text_rule={text_rule!r}: expected one of {list(TEXT_RULES)}")
    if test_image != "random" and not str(test_image).lstrip("-").isdigit():
        raise DataError(f"data.spec.test_image={test_image!r}: expected 'random' or an image index")
    source = resolve_source(path, key, HUB_ID)

    def get(config):
        return load_config(source, config, key=key, repo_id=HUB_ID, cache_dir=cache_dir)

    ds, label = get("ft_Data")
    train = convert_train(raw_rows(ds), label, text_rule, bad)
    names = {r["source_id"]: r["name"] for r in train}
    taught = {r["ID"] for r in train}

    ds, f_label = get(f"forget_{pct}")
    forget = convert_eval(raw_rows(ds), f_label, names, known=taught, bad=bad)
    f_named = named_people(ds, f_label, taught)
    ds, r_label = get(f"retain_{100 - pct}")
    retain = convert_eval(raw_rows(ds), r_label, names, known=taught, bad=bad)
    r_named = named_people(ds, r_label, taught)
    both = ({r["ID"] for r in forget} | set(f_named.values())) & ({r["ID"] for r in retain} | set(r_named.values()))
    if both:
        raise DataError(f"IDs {sorted(both)[:5]} are in both {f_label} and {r_label}")
    unseen = unassigned(train, {r["ID"] for r in forget} | set(f_named.values()),
                        {r["ID"] for r in retain} | set(r_named.values()))
    if unseen and global_zero():  # every DDP process loads the data: said once (twice on 2 until 2026-12-07)
        log.warning("%s: %d taught people are in neither %s nor %s: trained on, never evaluated (IDs %s%s)",
                    label, len(unseen), f_label, r_label, unseen[:5], " ..." if len(unseen) > 5 else "")
    if people is not None:
        people.update(forget=set(f_named.values()), retain=set(r_named.values()))

    ds, t_label = get("Test_Set")
    wanted = {r["source_id"] for r in forget} | set(f_named)
    met: set[str] = set()
    test = convert_eval(raw_rows(ds), t_label, names, keep=wanted, test_image=test_image, seed=seed, bad=bad,
                        met=met)
    missing = wanted - {r["source_id"] for r in test}
    if missing and bad.mode == "error":
        raise DataError(f"{t_label} has no row for the {forget_split} IDs {sorted(missing)[:10]}")
    if absent := missing - met:  # the forget people stay; test_P scores the ones it has. A row dropped as bad
        # was counted when it was dropped: only the IDs without any row are counted here (until 2026-12-05: both)
        bad.note(t_label, f"no row for a {forget_split} ID", len(absent))
    in_order = dict.fromkeys(list(f_named) + [r["source_id"] for r in forget])  # forget_P's row order
    order = {source_id: k for k, source_id in enumerate(in_order)}
    test.sort(key=lambda r: order[r["source_id"]])

    ds, u_label = get("Retain_Set")
    untouched = convert_eval(raw_rows(ds), u_label, names, untouched=True, bad=bad)

    for rows, label in ((train, label), (forget, f_label), (retain, r_label), (test, t_label),
                        (untouched, u_label)):
        if not rows:  # data.on_bad_row=skip may drop them all: `datasets` then fails on the empty schema
            dropped = bad.skipped.get(split_name(label), {})
            raise DataError(f"{label} has no usable rows (data.on_bad_row={bad.mode} dropped: "
                            f"{dropped or 'nothing: it is empty'})")
    for rows, label, split in ((forget, f_label, "forget"), (retain, r_label, "retain"), (test, t_label, "test"),
                               (untouched, u_label, "untouched")):
        warn_empty_modalities(rows, label, split)

    def features(rows):  # under score, the split's own MC Options keys (option_keys); else A-D
        return eval_features(option_keys(rows)) if bad.mode == "score" else EVAL_FEATURES

    return DatasetDict({
        "train": to_dataset(train, TRAIN_FEATURES),
        f"forget_{pct}": to_dataset(forget, features(forget)),
        f"retain_{100 - pct}": to_dataset(retain, features(retain)),
        f"test_{pct}": to_dataset(test, features(test)),
        "untouched": to_dataset(untouched, features(untouched)),
    })
