"""Row checks shared by every benchmark loader: a bad row fails loudly, naming split, row and field."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import count


class DataError(ValueError):
    """A dataset row or split that cannot be used as it is."""


EVAL_FIELDS = ("ID", "name", "image", "Classification_Task", "Generation_Task", "Mask_Task")
TRAIN_FIELDS = ("ID", "name", "images", "qa")


def fail(split: str, row: int, msg: str) -> None:
    """Raise the DataError every loader uses: `split '<split>', row <i>: <msg>`."""
    raise DataError(f"split '{split}', row {row}: {msg}")


_fail = fail
MC_LETTERS = "ABCD"  # evaluation reads exactly four options


def check_eval_rows(split: str, rows: Iterable[dict], numbers: Iterable[int] | None = None) -> None:
    """`numbers`: the rows' positions in their source, when `rows` is a selection (default 0, 1, ...)."""
    for i, row in zip(count() if numbers is None else numbers, rows):
        for f in EVAL_FIELDS:
            if f not in row:
                _fail(split, i, f"missing field '{f}'")
        if row["image"] is None:
            _fail(split, i, f"missing image for ID {row['ID']}")
        mc = row["Classification_Task"]
        if not isinstance(mc, dict):
            _fail(split, i, "field 'Classification_Task' is not a mapping")
        for key in ("Image_Textual_Questions", "Pure_Text_Questions"):
            for j, q in enumerate(mc.get(key) or []):
                opts = q.get("Options") or {}
                if not q.get("Question"):
                    _fail(split, i, f"{key}[{j}] has an empty Question")
                answer = q.get("Correct_Answer")
                if answer not in tuple(MC_LETTERS) or not (opts.get(answer) or "").strip():
                    _fail(split, i, f"{key}[{j}] Correct_Answer {answer!r} is not one of its Options")
                empty = [k for k in MC_LETTERS if not (opts.get(k) or "").strip()]
                if empty:
                    _fail(split, i, f"{key}[{j}] Options {empty} are empty (four options A-D are needed)")
        for task in ("Generation_Task", "Mask_Task"):
            if not isinstance(row[task], list):
                _fail(split, i, f"field '{task}' is not a list")
            for j, q in enumerate(row[task]):
                if not q.get("Question"):
                    _fail(split, i, f"{task}[{j}] has an empty Question")
                if not (q.get("Ground_Truth") or "").strip():
                    _fail(split, i, f"{task}[{j}] has an empty Ground_Truth")
                if q.get("Type") not in ("Image_Textual", "Pure_Text"):
                    _fail(split, i, f"{task}[{j}] has unknown Type {q.get('Type')!r}")


def check_train_rows(split: str, rows: Iterable[dict]) -> None:
    for i, row in enumerate(rows):
        for f in TRAIN_FIELDS:
            if f not in row:
                _fail(split, i, f"missing field '{f}'")
        if not row["images"] or any(im is None for im in row["images"]):
            _fail(split, i, f"missing image for ID {row['ID']}")
        for j, qa in enumerate(row["qa"]):
            if not (qa.get("answer") or "").strip():
                _fail(split, i, f"qa[{j}] has an empty answer")
            for form in ("multimodal_question", "text_question"):
                if not (qa.get(form) or "").strip():
                    _fail(split, i, f"qa[{j}] has an empty {form}")
