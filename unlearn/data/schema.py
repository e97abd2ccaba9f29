"""Row checks shared by every benchmark loader, and what a loader does with a row it cannot use.

Every check raises `RowError` (a `DataError`) naming split, row and field. `BadRows` decides what happens
next (`data.on_bad_row`): `error` lets it stop the run, as the checks always did; `skip` drops what cannot be
scored (the row, or only the bad question where the rest of the row is sound) and counts it per split and
reason, so a run over a published snapshot scores what it can and says what it left out (the official
evaluation scripts of MLLMU-Bench and CLEAR iterate over rows and never stop on one; see the loaders).
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
    locate = _LOCATORS.get(split)
    try:
        where = locate(row) if locate is not None else None
    except Exception:  # a locator that cannot tell must not hide the error it annotates
        where = None
    return f" (in {where})" if where else ""


class RowError(DataError):
    """One bad row. `reason` is the message without row-specific values, so that counts can group rows."""

    def __init__(self, split: str, row: int, msg: str, reason: str | None = None):
        super().__init__(f"split '{split}', row {row}: {msg}{_located(split, row)}")
        self.split, self.row, self.msg = split, row, msg
        self.reason = re.sub(r"\[\d+\]", "[]", reason or msg)


EVAL_FIELDS = ("ID", "name", "image", "Classification_Task", "Generation_Task", "Mask_Task")
TRAIN_FIELDS = ("ID", "name", "images", "qa")
ON_BAD_ROW = ("error", "skip")


def fail(split: str, row: int, msg: str, reason: str | None = None) -> None:
    """Raise the error every loader uses: `split '<split>', row <i>: <msg>`."""
    raise RowError(split, row, msg, reason)


_fail = fail
MC_LETTERS = "ABCD"  # evaluation reads exactly four options


def split_name(label: str) -> str:
    """`forget_10 (/data/MLLMU-Bench)` -> `forget_10`: loaders label splits with their source."""
    return label.split(" (")[0]


class BadRows:
    """The `data.on_bad_row` policy and what it skipped: `skipped[split][reason] = count`.

    `error`: a bad row raises its RowError (the run stops, naming split, row and field). `skip`: the row (or
    the one bad question) is dropped, counted, and logged once per split and reason.
    """

    def __init__(self, mode: str = "error", key: str = "data.on_bad_row"):
        if mode not in ON_BAD_ROW:
            raise DataError(f"{key}={mode!r}: expected one of {list(ON_BAD_ROW)}")
        self.mode = mode
        self.skipped: dict[str, dict[str, int]] = {}

    def record(self, err: RowError, unit: str = "row") -> None:
        """Count `err` as one dropped `unit` (row or question), or raise it under `error`."""
        if self.mode == "error":
            raise err
        split = split_name(err.split)
        reason = f"{unit} dropped: {err.reason}"
        counts = self.skipped.setdefault(split, {})
        if reason not in counts:
            log.warning("data.on_bad_row=skip: %s (first: %s)", reason, err)
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

    def keep(self, fn: Callable, *args, **kwargs):
        """`fn(*args, **kwargs)`, or None when it raised a RowError that `skip` drops."""
        try:
            return fn(*args, **kwargs)
        except RowError as err:
            self.record(err)
            return None

    def total(self) -> int:
        return sum(n for reasons in self.skipped.values() for n in reasons.values())


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
    empty = [k for k in MC_LETTERS if not (opts.get(k) or "").strip()]
    if empty:
        _fail(split, i, f"{key}[{j}] Options {empty} are empty (four options A-D are needed)",
              f"{key}[] has empty Options (four options A-D are needed)")


def _check_free(split: str, i: int, task: str, j: int, q: dict) -> None:
    if not q.get("Question"):
        _fail(split, i, f"{task}[{j}] has an empty Question")
    if not (q.get("Ground_Truth") or "").strip():
        _fail(split, i, f"{task}[{j}] has an empty Ground_Truth")
    if q.get("Type") not in ("Image_Textual", "Pure_Text"):
        _fail(split, i, f"{task}[{j}] has unknown Type {q.get('Type')!r}", f"{task}[] has an unknown Type")
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
    for key in ("Image_Textual_Questions", "Pure_Text_Questions"):
        out["Classification_Task"][key] = _good(bad, (mc.get(key) or []), lambda j, q: _check_mc(split, i, key, j, q))
    for task in ("Generation_Task", "Mask_Task"):
        out[task] = _good(bad, row[task], lambda j, q: _check_free(split, i, task, j, q))
    return out


def _good(bad: BadRows, questions: list, check: Callable[[int, dict], None]) -> list:
    kept = []
    for j, q in enumerate(questions):
        try:
            check(j, q)
        except RowError as err:
            bad.record(err, unit="question")
            continue
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
