"""Row checks shared by every benchmark loader, and what a loader does with a row it cannot use.

Every check raises `RowError` (a `DataError`) naming split, row and field. `BadRows` decides what happens
next (`data.on_bad_row`): `error` lets it stop the run, as the checks always did; `skip` drops what cannot be
scored (the row, or only the bad question where the rest of the row is sound) and counts it per split and
reason, so a run over a published snapshot scores what it can and says what it left out (the official
evaluation scripts of MLLMU-Bench and CLEAR iterate over rows and never stop on one; see the loaders).
`score` (MLLMU-Bench alone: its loader asks for it with `BadRows(..., scores=True)`) keeps the questions the
checks refuse but MLLMU-Bench's eval.py scores (`_scored_mc`, `_scored_free`), counted per split and reason in
`scored`, and drops the rest as `skip` does.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from itertools import count

log = logging.getLogger(__name__)


class DataError(ValueError):
    """A dataset row or split that cannot be used as it is."""


# split label -> where its global row i lies in the source's files ("<file>, row j", appended to the message),
# for the labels whose loader knows their data files (unlearn/data/hub.py: local parquet shards)
_LOCATORS: dict = {}


def register_locator(label: str, locate) -> None:
    _LOCATORS[label] = locate


def _located(split: str, row: int) -> str:
    """Where the row lies, and that rows count from 0 (pandas' `iloc`, pyarrow's `slice`): a researcher opening the
    file read row 7 as the seventh until 2026-12-07."""
    locate = _LOCATORS.get(split)
    try:
        where = locate(row) if locate is not None else None
    except Exception:  # a locator that cannot tell must not hide the error it annotates
        where = None
    return f" (in {where}; rows count from 0)" if where else " (rows count from 0)"


class RowError(DataError):
    """One bad row. `reason` is the message without row-specific values, so that counts can group rows."""

    def __init__(self, split: str, row: int, msg: str, reason: str | None = None):
        super().__init__(f"split '{split}', row {row}: {msg}{_located(split, row)}")
        self.split, self.row, self.msg = split, row, msg
        self.reason = re.sub(r"\[\d+\]", "[]", reason or msg)


EVAL_FIELDS = ("ID", "name", "image", "Classification_Task", "Generation_Task", "Mask_Task")
TRAIN_FIELDS = ("ID", "name", "images", "qa")
ON_BAD_ROW = ("error", "skip", "score")
# what every loader honours; `score` is MLLMU-Bench's eval.py's reading of its own rows (the MLLMU-Bench loader)
ON_BAD_ROW_EVERYWHERE = ("error", "skip")


def fail(split: str, row: int, msg: str, reason: str | None = None) -> None:
    """Raise the error every loader uses: `split '<split>', row <i>: <msg>`."""
    raise RowError(split, row, msg, reason)


_fail = fail
MC_LETTERS = "ABCD"  # the checks ask exactly four options (data.on_bad_row=score reads a file's own keys)


def split_name(label: str) -> str:
    """`forget_10 (/data/MLLMU-Bench)` -> `forget_10`: loaders label splits with their source."""
    return label.split(" (")[0]


class BadRows:
    """The `data.on_bad_row` policy and what it skipped: `skipped[split][reason] = count`.

    `error`: a bad row raises its RowError (the run stops, naming split, row and field). `skip`: the row (or
    the one bad question) is dropped, counted, and logged once per split and reason. `score` (only where the
    loader `scores`: MLLMU-Bench's): a question MLLMU-Bench's eval.py scores although the checks refuse it is
    kept and counted in `scored[split][reason]` (logged once per split and reason); anything else is dropped as
    under `skip`.
    """

    def __init__(self, mode: str = "error", key: str = "data.on_bad_row", scores: bool = False):
        modes = ON_BAD_ROW if scores else ON_BAD_ROW_EVERYWHERE
        if mode == "score" and not scores:
            raise DataError(f"{key}='score' keeps the rows MLLMU-Bench's eval.py scores and scores them as it does: "
                            f"only data=mllmu_bench's loader can; expected one of {list(modes)} here")
        if mode not in modes:
            raise DataError(f"{key}={mode!r}: expected one of {list(modes)}")
        self.mode = mode
        self.skipped: dict[str, dict[str, int]] = {}
        self.scored: dict[str, dict[str, int]] = {}  # data.on_bad_row=score: what was kept, {split: {reason: n}}

    def record(self, err: RowError, unit: str = "row") -> None:
        """Count `err` as one dropped `unit` (row or question), or raise it under `error`."""
        if self.mode == "error":
            raise err
        split = split_name(err.split)
        reason = f"{unit} dropped: {err.reason}"
        counts = self.skipped.setdefault(split, {})
        if reason not in counts:
            log.warning("data.on_bad_row=%s: %s (first: %s)", self.mode, reason, err)
        counts[reason] = counts.get(reason, 0) + 1

    def note(self, split: str, reason: str, n: int = 1) -> None:
        """Count `n` rows left out for a reason no single row carries (e.g. a forget ID with no test row);
        under `error`, raise a DataError with `reason`."""
        if self.mode == "error":
            raise DataError(f"split '{split}': {reason}")
        self.record(RowError(split, -1, reason), unit="row")
        if n > 1:
            self.skipped[split_name(split)][f"row dropped: {reason}"] += n - 1

    def count_unused(self, split: str, reason: str, n: int, first: str = "") -> None:
        """Count `n` well-formed rows that nothing can use (a perturbation of no image), under either mode:
        logged (with the `first` of them) and in `skipped`, never raised: the rows are not wrong, only left over."""
        counts = self.skipped.setdefault(split_name(split), {})
        key = f"row not used: {reason}"
        if key not in counts:
            log.warning("%s: %d row(s) not used: %s%s", split, n, reason, f" (first: {first})" if first else "")
        counts[key] = counts.get(key, 0) + n

    def kept(self, err: RowError) -> None:
        """Count `err` as one question kept and scored as MLLMU-Bench's eval.py scores it (data.on_bad_row=score)."""
        split = split_name(err.split)
        reason = f"question scored: {err.reason}"
        counts = self.scored.setdefault(split, {})
        if reason not in counts:
            log.warning("data.on_bad_row=score: %s (first: %s)", reason, err)
        counts[reason] = counts.get(reason, 0) + 1

    def keep(self, fn: Callable, *args, **kwargs):
        """`fn(*args, **kwargs)`, or None when it raised a RowError that `skip` drops."""
        try:
            return fn(*args, **kwargs)
        except RowError as err:
            self.record(err)
            return None

    def total(self) -> int:
        return sum(n for reasons in self.skipped.values() for n in reasons.values())


def empty_options(options, letters=MC_LETTERS) -> list[str]:
    """The `letters` (A-D unless given: a file's own keys under data.on_bad_row=score) whose option text is empty or
    null (`options`: letter -> text)."""
    return [k for k in letters if not (options.get(k) or "").strip()]


def _check_mc(split: str, i: int, key: str, j: int, q: dict) -> None:
    opts = q.get("Options") or {}
    if not q.get("Question"):
        _fail(split, i, f"{key}[{j}] has an empty Question")
    answer = q.get("Correct_Answer")
    if answer not in tuple(MC_LETTERS) or not (opts.get(answer) or "").strip():
        # MLLMU-Bench's eval.py compares the upper-cased reply letter with Correct_Answer as published: a
        # lower-case or missing letter could never be scored right, so the question is dropped, not repaired.
        _fail(split, i, f"{key}[{j}] Correct_Answer {answer!r} is not one of its Options",
              f"{key}[] Correct_Answer is not one of A-D with a non-empty option")
    empty = empty_options(opts)
    if empty:
        _fail(split, i, f"{key}[{j}] Options {empty} are empty (four options A-D are needed)",
              f"{key}[] has empty Options (four options A-D are needed)")


# What data.on_bad_row=score keeps, and why: MLLMU-Bench's eval.py (franciscoliu/MLLMU-Bench) never checks a
# question. MC (evaluate_classification, eval.py:376-377, 432-433): `predicted = reply[0].upper() if that letter is
# a key of Options else None; correct if predicted == Correct_Answer`, so the options' texts only fill the prompt
# ("A: " when empty, "A: None" when null) and a Correct_Answer that is no key of Options is never matched, unless it
# is null: `None == None` counts a reply naming no option letter as right. Its prompt shows every key the file
# writes, in its order (`f"{key}: {value}" for key, value in options.items()`, 125), and a reply whose letter is
# one of them names it (a fifth key E, null where a question has no fifth option, is shown "E: None" and read; a
# key that is no single upper-case character is never named: unlearn/eval/scorers.py `named_keys`), so the loader
# keeps a file's own keys under score (unlearn/data/mllmu_bench.py `_question`). Its few-shot block alone writes
# `few_shot_options['A']` to `['D']` by name (352-355, 406-409, built for each question it asks in a mode with
# shots: forget, retain_shared, test), so a question lacking one of A-D (a parquet file writes one set of keys for
# all its questions: every question of such a file) is asked wherever it is no shot, with its own keys (the
# celebrities' MC, zero-shot; a split's question under shots that have all four), and eval.py stops (a KeyError,
# uncaught: no split's numbers after it) where one is a shot shown before a question it asks. Such a question is
# kept; the evaluation refuses a run that would show one as a shot (unlearn/eval/protocol.py
# `check_shot_options`, before the run and where the prompts are made). Generation (evaluate_generation,
# eval.py:730-797): a Type other than Image_Textual takes the Pure_Text prompt and totals (`else`); an empty
# Ground_Truth scores ROUGE and BLEU 0. Cloze (evaluate_fill_in_the_blank, eval.py:639-646): `ground_truth.lower()
# in reply.lower()`, so an empty one is always right; a Type other than the two is generated but counted nowhere.
# A Question is written into the prompt by an f-string in all three (MC: `f"{question}\n{options_str}"`, 126, and
# `f"Question: {few_shot_question}"` in a shot, 351, 405; generation: 731, 751; cloze: 585, 606-608), so an empty
# one is asked with no text and a null one as "None"; nothing there stops on it, but the cloze's
# `question.replace("__", "[Blank]")` (585, and 534, 545 for a shot) does on a null one.
# What they cannot score: a null Ground_Truth (`None.lower()`, rouge_score on None: it stops), a null cloze Question,
# an MC question lacking one of A-D where it is a shot (above).
MC_NULL_ANSWER = "Correct_Answer is null: right where the reply names no option letter (eval.py: None == None)"
MC_OFF_LETTER = "Correct_Answer is no key of its Options: never right (eval.py compares the reply's letter with it)"
MC_EMPTY_OPTION = "has empty Options, shown as written (eval.py reads the letter, not the option)"
MC_OWN_KEYS = "has Options keys other than A-D, shown and read as written (eval.py: options.items(), `in options`)"
MC_MISSING_KEY = ("Options lack one of A-D, shown and read as written where asked (eval.py: options.items()); "
                  "refused as a shot (eval.py stops on few_shot_options['A'] to ['D'])")
QUESTION_EMPTY = 'has an empty Question: asked with no text (eval.py writes f"{question}")'
QUESTION_NULL = 'has a null Question: asked as "None" (eval.py writes f"{question}")'


def _scored_question(split: str, i: int, where: str, j: int, q: dict) -> list[RowError]:
    """data.on_bad_row=score: an empty or null Question, asked as eval.py writes it (unlearn/eval/items.py
    `flatten` writes it so), as a RowError to count."""
    question = q.get("Question")
    if question is None:
        return [RowError(split, i, f"{where}[{j}] {QUESTION_NULL}", f"{where}[] {QUESTION_NULL}")]
    if not question:
        return [RowError(split, i, f"{where}[{j}] {QUESTION_EMPTY}", f"{where}[] {QUESTION_EMPTY}")]
    return []


def _scored_mc(split: str, i: int, key: str, j: int, q: dict) -> list[RowError]:
    """data.on_bad_row=score: what eval.py scores of an MC question the checks refuse, as RowErrors to count (the
    question is kept)."""
    opts, answer = q.get("Options") or {}, q.get("Correct_Answer")
    keys = tuple(opts)  # the file's own (unlearn/data/mllmu_bench.py `_question`)
    out = _scored_question(split, i, key, j, q)
    if missing := [k for k in MC_LETTERS if k not in keys]:  # asked with its own keys; as a shot eval.py stops
        out.append(RowError(split, i, f"{key}[{j}] Options {list(keys)} lack {missing}: shown and read as written "
                                      f"where asked; refused as a shot (eval.py stops on few_shot_options['A'] to "
                                      f"['D'])", f"{key}[] {MC_MISSING_KEY}"))
    elif keys != tuple(MC_LETTERS):
        out.append(RowError(split, i, f"{key}[{j}] Options keys {list(keys)} are not A-D: shown and read as written",
                            f"{key}[] {MC_OWN_KEYS}"))
    if answer is None:
        out.append(RowError(split, i, f"{key}[{j}] {MC_NULL_ANSWER}", f"{key}[] {MC_NULL_ANSWER}"))
    elif answer not in keys:
        out.append(RowError(split, i, f"{key}[{j}] Correct_Answer {answer!r}: never right (eval.py compares the "
                                      f"reply's letter with it)", f"{key}[] {MC_OFF_LETTER}"))
    empty = empty_options(opts, keys)
    if empty:
        out.append(RowError(split, i, f"{key}[{j}] Options {empty} are empty, shown as written (eval.py reads the "
                                      f"letter, not the option)", f"{key}[] {MC_EMPTY_OPTION}"))
    return out


def _scored_free(split: str, i: int, task: str, j: int, q: dict) -> list[RowError]:
    """data.on_bad_row=score for a generation or cloze question: as `_scored_mc`; a RowError raised for what eval.py
    cannot score (dropped as under skip, with skip's message)."""
    _check_free(split, i, task, j, q, scored=True)
    truth, out = q.get("Ground_Truth"), _scored_question(split, i, task, j, q)
    if not truth.strip():
        rule = "always right (eval.py: '' in reply)" if task == "Mask_Task" else "ROUGE and BLEU 0"
        out.append(RowError(split, i, f"{task}[{j}] has an empty Ground_Truth: {rule}",
                            f"{task}[] has an empty Ground_Truth: {rule}"))
    if task == "Generation_Task" and q.get("Type") not in ("Image_Textual", "Pure_Text"):
        out.append(RowError(split, i, f"{task}[{j}] has unknown Type {q.get('Type')!r}: asked and scored as text "
                                      f"(eval.py's Pure_Text branch)",
                            f"{task}[] has an unknown Type: asked and scored as text (eval.py's Pure_Text branch)"))
    return out


def _check_free(split: str, i: int, task: str, j: int, q: dict, scored: bool = False) -> None:
    """A generation or cloze question's refusals; `scored` (data.on_bad_row=score, `_scored_free`): only of what
    eval.py cannot score, a null cloze Question (eval.py:585 `None.replace(...)` stops it), a Ground_Truth that is
    no text (it stops on it), a cloze Type other than the two (generated, counted nowhere)."""
    cloze, question, truth = task == "Mask_Task", q.get("Question"), q.get("Ground_Truth")
    if (cloze and question is None) if scored else not question:
        _fail(split, i, f"{task}[{j}] has an empty Question")
    if not isinstance(truth, str) if scored else not (truth or "").strip():
        _fail(split, i, f"{task}[{j}] has an empty Ground_Truth")
    if q.get("Type") not in ("Image_Textual", "Pure_Text") and (cloze or not scored):
        _fail(split, i, f"{task}[{j}] has unknown Type {q.get('Type')!r}", f"{task}[] has an unknown Type")
    _check_likelihood_fields(split, i, task, j, q)  # not eval.py's fields: checked under score as under skip


def _check_likelihood_fields(split: str, i: int, task: str, j: int, q: dict) -> None:
    """The optional answers of the likelihood items (task prob; not fields eval.py reads)."""
    para = q.get("Paraphrased_Answer")
    if para is not None and (not isinstance(para, str) or not para.strip()):
        _fail(split, i, f"{task}[{j}] has an empty Paraphrased_Answer (leave it null when there is none)")
    wrong = q.get("Perturbed_Answers")
    if wrong is not None and (not isinstance(wrong, list) or not wrong
                              or any(not isinstance(w, str) or not w.strip() for w in wrong)):
        _fail(split, i, f"{task}[{j}] Perturbed_Answers is not a non-empty list of non-empty texts "
                        f"(leave it null when there are none)")


def check_eval_row(split: str, i: int, row: dict, bad: BadRows | None = None) -> dict:
    """`row` with its bad questions dropped under `skip` (counted in `bad`); a RowError when the row itself
    is unusable, or under `error` (the default) when any part of it is.

    Optional fields: `Image_Index` (an int >= 0; default 0) and, in a Generation_Task entry,
    `Paraphrased_Answer` (a text) and `Perturbed_Answers` (a non-empty list of texts), null when absent.
    """
    bad = bad or BadRows()
    for f in EVAL_FIELDS:
        if f not in row:
            _fail(split, i, f"missing field '{f}'")
    if row["image"] is None:
        _fail(split, i, f"missing image for ID {row['ID']}", "missing image")
    index = row.get("Image_Index", 0)
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        _fail(split, i, f"field 'Image_Index' is {index!r}, expected an integer >= 0",
              "field 'Image_Index' is not an integer >= 0")
    mc = row["Classification_Task"]
    if not isinstance(mc, dict):
        _fail(split, i, "field 'Classification_Task' is not a mapping")
    for task in ("Generation_Task", "Mask_Task"):
        if not isinstance(row[task], list):
            _fail(split, i, f"field '{task}' is not a list")
    out = dict(row)
    out["Classification_Task"] = dict(mc)
    scoring = bad.mode == "score"
    for key in ("Image_Textual_Questions", "Pure_Text_Questions"):
        check = _scored_mc if scoring else _check_mc
        out["Classification_Task"][key] = _good(bad, (mc.get(key) or []), lambda j, q: check(split, i, key, j, q))
    for task in ("Generation_Task", "Mask_Task"):
        check = _scored_free if scoring else _check_free
        out[task] = _good(bad, row[task], lambda j, q: check(split, i, task, j, q))
    return out


def _good(bad: BadRows, questions: list, check: Callable[[int, dict], list[RowError] | None]) -> list:
    """The questions `check` passes; under data.on_bad_row=score it returns what eval.py scores of a question the
    checks refuse (counted in `bad.scored`, the question kept)."""
    kept = []
    for j, q in enumerate(questions):
        try:
            scored = check(j, q) or []
        except RowError as err:
            bad.record(err, unit="question")
            continue
        for err in scored:
            bad.kept(err)
        kept.append(q)
    return kept


def check_eval_rows(split: str, rows: Iterable[dict], numbers: Iterable[int] | None = None,
                    bad: BadRows | None = None) -> list[dict]:
    """The rows that can be scored (bad parts dropped under `skip`); under `error`, the first problem raises.

    `numbers`: the rows' positions in their source, when `rows` is a selection (default 0, 1, ...).
    """
    bad = bad or BadRows()
    out = []
    for i, row in zip(count() if numbers is None else numbers, rows):
        kept = bad.keep(check_eval_row, split, i, row, bad)
        if kept is not None:
            out.append(kept)
    return out


def check_train_row(split: str, i: int, row: dict) -> dict:
    for f in TRAIN_FIELDS:
        if f not in row:
            _fail(split, i, f"missing field '{f}'")
    if not row["images"] or any(im is None for im in row["images"]):
        _fail(split, i, f"missing image for ID {row['ID']}", "missing image")
    for j, qa in enumerate(row["qa"]):
        if not (qa.get("answer") or "").strip():
            _fail(split, i, f"qa[{j}] has an empty answer")
        # a form may be absent (None: CLEAR's own pairs have one form each), but not empty, and not both
        forms = [f for f in ("multimodal_question", "text_question") if qa.get(f) is not None]
        if not forms:
            _fail(split, i, f"qa[{j}] has neither a multimodal_question nor a text_question")
        for form in forms:
            if not isinstance(qa[form], str) or not qa[form].strip():
                _fail(split, i, f"qa[{j}] has an empty {form}")
    return row


def check_train_rows(split: str, rows: Iterable[dict], bad: BadRows | None = None) -> list[dict]:
    bad = bad or BadRows()
    return [r for r in (bad.keep(check_train_row, split, i, row) for i, row in enumerate(rows)) if r is not None]
