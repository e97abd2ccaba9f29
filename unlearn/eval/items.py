"""Flatten MLLMU-Bench-style rows into one evaluation item per (question, form).

The same loader serves the embedded benchmark, MLLMU-Bench and CLEAR: rows carry `Classification_Task`
(Image_Textual / Pure_Text questions with lettered options), `Generation_Task` and `Mask_Task`.
A generation question that also carries `Perturbed_Answers` (and usually `Paraphrased_Answer`) yields a
second item of task `prob`, scored by likelihood: answer probability and truth ratio
(unlearn/eval/truth_ratio.py). A row may carry `Image_Index` (CLEAR: one row per image of a person); rows
after a person's first image get `<ID>.<k>` in their uids so every image's items stay apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from unlearn.data.people import LETTERS
from unlearn.data.schema import empty_options

if TYPE_CHECKING:  # an annotation: the checks before a run read the protocols, which import this
    import torch

FORM_OF_TYPE = {"Image_Textual": "multimodal", "Pure_Text": "text"}
MC_KEYS = {"Image_Textual_Questions": "multimodal", "Pure_Text_Questions": "text"}
# answer_index of an MC question whose Correct_Answer is no option letter, kept under data.on_bad_row=score
# (unlearn/data/schema.py `_scored_mc`) and scored as MLLMU-Bench's eval.py does, `predicted == Correct_Answer`
# with `predicted` None where the reply names no option letter: a null one equals exactly that reading (the
# scorers' -1), any other value none (-2, which no reading gives)
ANSWER_NULL, ANSWER_OFF_LETTER = -1, -2
MC_LETTERS = tuple(LETTERS)  # an MC item's option keys, unless data.on_bad_row=score keeps a file's own


def answer_place(correct, letters: tuple[str, ...] = MC_LETTERS) -> int:
    """The option index an MC reading must give to be right (the sentinels above for no option letter); `letters`:
    the options' keys. Matched whole (until the forty-sixth session a substring of "ABCD" matched: an empty or
    "AB" Correct_Answer, never right in eval.py, was read as A)."""
    if correct is None:
        return ANSWER_NULL
    return letters.index(correct) if correct in letters else ANSWER_OFF_LETTER


def asked(question) -> str:
    """A Question as MLLMU-Bench's eval.py writes it into its prompts, `f"{question}"`: "None" for a null one, which
    only data.on_bad_row=score keeps (unlearn/data/schema.py `_scored_question`); any other as it is."""
    return f"{question}"


def as_checked(row: dict) -> dict:
    """`row` with its MC questions as data.on_bad_row=error and skip read them: those with a Question, with their
    Options A-D alone (what else they refuse, `refused_by_checks` tells of the items). Why: the teaching reads
    skip's questions (its probe: unlearn/methods/finetune.py), and data.on_bad_row=score, which reuses skip's
    vanilla model, keeps more and reads a file's own Options keys."""
    mc = {key: [{**q, "Options": {k: q["Options"].get(k) for k in MC_LETTERS}}
                for q in row["Classification_Task"][key] if q["Question"]] for key in MC_KEYS}
    return {**row, "Classification_Task": {**row["Classification_Task"], **mc}}


def refused_by_checks(item: EvalItem) -> bool:
    """An MC item of options A-D kept only under data.on_bad_row=score: its answer no option letter, or an option
    empty (`as_checked` gives a row's items so). None is a taught answer (the teaching probe leaves them out). An
    empty option has no likelihood reading (refused: unlearn/eval/scoring.py `check_mc_options`); an answer that
    is no letter is never right under the likelihood and letter readings, which always name an option, and under
    the generated letter as eval.py reads it (a null one right where the reply names no letter)."""
    return item.task == "mc" and (item.answer_index < 0 or has_empty_option(item))


def has_empty_option(item: EvalItem) -> bool:
    """An MC item with an option whose text is empty (kept only under data.on_bad_row=score)."""
    return item.task == "mc" and bool(empty_options(dict(zip(item.letters, item.options)), item.letters))


def other_options(item: EvalItem) -> bool:
    """An MC item whose options are not four (a file's own Options keys, kept only under data.on_bad_row=score)."""
    return item.task == "mc" and len(item.options) != len(MC_LETTERS)


@dataclass
class EvalItem:
    uid: str
    split: str  # forget | retain | test | untouched
    modality: str  # multimodal | text
    task: str  # mc | gen | cloze
    person: int
    attribute: str
    question: str
    answer: str  # the correct option text (mc) or the ground truth (gen, cloze)
    options: tuple[str, ...] = ()
    answer_index: int = -1
    pixel_values: torch.Tensor | None = None  # (3, H, W) for multimodal items
    paraphrase: str | None = None  # task prob: the paraphrased answer (the ground truth when none is given)
    perturbed: tuple[str, ...] = ()  # task prob: wrong answers of the same form
    # the row's own ID as its file writes it (MLLMU-Bench: a string; a celebrity's `person` is renumbered,
    # unlearn/data/mllmu_bench.py), and the question's position in its row's list (MC: its modality's list;
    # generation and cloze: the one list of both forms). MLLMU-Bench's few-shot lookup and skip read these.
    source_id: str | None = None
    position: int | None = None
    # MC: the options' keys, as the file writes them under data.on_bad_row=score (eval.py shows and reads them);
    # A-D otherwise
    letters: tuple[str, ...] = MC_LETTERS

    @property
    def profile(self) -> str:
        """The ID a few-shot lookup matches: the file's own, else the person's number."""
        return self.source_id if self.source_id is not None else str(self.person)

    @property
    def index(self) -> int:
        """The question's position in its row's list (the uid's per-form index where none was recorded)."""
        return self.position if self.position is not None else int(self.uid.rsplit("/", 1)[1])

    def record(self, prediction: str | None, score: float, reply: str | None = None) -> dict:
        """The per-item result kept for drill-down (no tensors, JSON-able). `prediction`: the option chosen (MC;
        null where a generated reply names no letter), or the reply. `reply`: the raw generated text of a
        generated item, kept so that another scorer can re-score the run (`python -m unlearn.rescore`)."""
        out = {"uid": self.uid, "split": self.split, "modality": self.modality, "task": self.task,
               "person": self.person, "attribute": self.attribute, "question": self.question,
               "answer": self.answer, "prediction": prediction, "score": float(score)}
        if self.source_id is not None:  # the row's own ID as its file writes it (CLEAR: `real_faces/12`)
            out["source_id"] = self.source_id
        if reply is not None:
            out["reply"] = reply
            if self.task == "mc":  # a re-scoring reads the letter against the answer's place, as the run does
                out["options"], out["answer_index"] = list(self.options), int(self.answer_index)
                if self.letters != MC_LETTERS:  # a file's own keys (records of A-D stay as they were)
                    out["letters"] = list(self.letters)
        return out


def flatten(split: str, rows, pixel_values) -> list[EvalItem]:
    """`pixel_values(list_of_images)` turns portraits into model input (the processor's job)."""
    items: list[EvalItem] = []
    for row in rows:
        pid = int(row["ID"])
        sid = str(row["source_id"]) if row.get("source_id") is not None else None
        image_index = int(row.get("Image_Index") or 0)
        who = f"{pid}" if image_index == 0 else f"{pid}.{image_index}"
        pixels = pixel_values([row["image"]])[0]
        for key, form in MC_KEYS.items():
            for j, q in enumerate(row["Classification_Task"][key]):
                letters = tuple(q["Options"])  # A-D, or a file's own keys under data.on_bad_row=score
                opts = tuple(q["Options"][k] for k in letters)
                idx = answer_place(q["Correct_Answer"], letters)
                # no option letter: the answer as eval.py writes it into a few-shot block (`f"{Correct_Answer}"`)
                answer = opts[idx] if idx >= 0 else f"{q['Correct_Answer']}"
                items.append(EvalItem(
                    f"{split}/{who}/mc/{form}/{j}", split, form, "mc", pid, q.get("attribute") or "",
                    asked(q["Question"]), answer, opts, idx, pixels if form == "multimodal" else None,
                    source_id=sid, position=j, letters=letters))
        for task, field in (("gen", "Generation_Task"), ("cloze", "Mask_Task")):
            seen = {"multimodal": 0, "text": 0}
            for pos, q in enumerate(row[field]):
                # another Type reaches here only as a generation item under data.on_bad_row=score: eval.py asks
                # and scores it as Pure_Text (its `else` branch)
                form = FORM_OF_TYPE.get(q["Type"], "text")
                j, seen[form] = seen[form], seen[form] + 1  # per-form index: twin questions share uids
                pix = pixels if form == "multimodal" else None
                items.append(EvalItem(
                    f"{split}/{who}/{task}/{form}/{j}", split, form, task, pid, q.get("attribute") or "",
                    asked(q["Question"]), q["Ground_Truth"], pixel_values=pix, source_id=sid, position=pos))
                if task == "gen" and q.get("Perturbed_Answers"):
                    items.append(EvalItem(
                        f"{split}/{who}/prob/{form}/{j}", split, form, "prob", pid, q.get("attribute") or "",
                        asked(q["Question"]), q["Ground_Truth"], pixel_values=pix,
                        paraphrase=q.get("Paraphrased_Answer") or q["Ground_Truth"],
                        perturbed=tuple(q["Perturbed_Answers"]), source_id=sid, position=pos))
    return items
