"""Token sequences built from the training rows of a benchmark: one QA pair per sequence.

One pair per sequence, not a person's pairs packed together: in a packed sequence later questions can be
answered by copying earlier answers (and the name) from the context, so the loss falls while the image
route to the facts is never learned. Measured on the embedded benchmark: packed training reached 0.07 loss
but only 0.4-0.5 multimodal accuracy on single questions.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from torch.utils.data import Dataset

from unlearn.data.choices import FORMS
from unlearn.data.collate import IGNORE, Example, qa_example

if TYPE_CHECKING:  # transformers' import (2-4 s) for an annotation: the checks before a run import this
    from unlearn.models.processor import VLProcessor


def form_pairs(row: dict, form: str) -> list[tuple[str, str]]:
    """(question, answer) pairs of `row` in `form`, in row order. The text form answers with the row's
    `text_answer` where it has one (MLLMU-Bench's answer with its visual references replaced by the name, as
    MANU's text-only set has it; until 2026-12-05 "this person ..." answered the named question)."""
    if form == "multimodal":
        return [(qa["multimodal_question"], qa["answer"]) for qa in row["qa"]
                if qa.get("multimodal_question") is not None]  # None: no such form
    return [(qa["text_question"], qa.get("text_answer") or qa["answer"]) for qa in row["qa"]
            if qa.get("text_question") is not None]


class QASequences(Dataset):
    """Every QA pair of every row, in each of `forms`.

    `augment=True` draws the portrait from the row's bank of variants on every access (teaching);
    `augment=False` always uses the clean portrait, variant 0 (statistics passes, unlearning).
    """

    def __init__(self, rows, processor: VLProcessor, forms: tuple[str, ...] | str = FORMS,
                 answer_only: bool = True, augment: bool = False, seed: int = 0):
        forms = (forms,) if isinstance(forms, str) else tuple(forms)
        unknown = set(forms) - set(FORMS)
        if unknown or not forms:
            raise ValueError(f"forms {sorted(unknown) or list(forms)} not understood; choose from {FORMS}")
        self.proc, self.answer_only, self.augment = processor, answer_only, augment
        self.rng = random.Random(seed)
        self.banks = []
        self.index: list[tuple[int, str, str, str]] = []  # (row, form, question, answer)
        need_images = "multimodal" in forms
        self.lazy = not processor.eager_images
        if hasattr(rows, "select_columns"):  # a Dataset decodes every column it yields: only what is read
            rows = rows.select_columns([c for c in rows.column_names
                                        if c in self.columns or (need_images and c == "images")])
        for r, row in enumerate(rows):
            if not need_images:
                self.banks.append(None)
            else:
                images = row["images"] if augment else row["images"][:1]
                # real models: a preprocessed image is megabytes, so preprocess on access
                self.banks.append(list(images) if self.lazy else processor.pixel_values(images))
            per_form = [(form, self.pairs(row, form)) for form in forms]
            for j in range(max(len(pairs) for _, pairs in per_form)):  # a row's pairs in order, forms interleaved
                self.index += [(r, form, *pairs[j]) for form, pairs in per_form if j < len(pairs)]
        if self.banks and not self.index:
            raise ValueError(f"none of these {len(self.banks)} training rows has a pair in {' or '.join(forms)} "
                             f"form (data=clear: data.spec.train_pairs=clear has no text-only caption and no TOFU "
                             f"question with an image, data.spec.train_pairs=captions no text-only pair)")

    columns = ("qa",)  # the row columns `pairs` reads

    def pairs(self, row: dict, form: str) -> list[tuple[str, str]]:
        return form_pairs(row, form)

    def example(self, question: str, answer: str, pixels) -> Example:
        return qa_example(self.proc, [(question, answer)], pixels, self.answer_only)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> Example:
        r, form, question, answer = self.index[i]
        pixels = None
        if form == "multimodal":
            pixels = self.banks[r][self._variant(i)]
            if self.lazy:
                pixels = self.proc.pixel_values([pixels])[0]
        return self.example(question, answer, pixels)

    def _variant(self, i: int) -> int | None:
        """The portrait item `i` shows: drawn from its row's bank (augment), else the clean one; None: text-only."""
        r, form = self.index[i][:2]
        if form != "multimodal":
            return None
        return self.rng.randrange(len(self.banks[r])) if self.augment else 0

    def skip(self, i: int) -> None:
        """The draw reading item `i` makes, alone (unlearn/data/sampling.py OneProcessDraws)."""
        self._variant(i)


class PrefixLabels(Dataset):
    """The tokens before the question (bos, the template's "USER: ", the newline after the image) carry loss
    too, as in MLLMU-Bench's and MMUnlearner's collates, which label every non-pad token (finetune.label_prefix,
    method.label_prefix, mmunlearner.label_prefix). Image placeholders (the model's image token id) stay
    unlabelled. Over sequences with the question labelled (answer_only false), so that the prefix is what is
    left."""

    def __init__(self, data, processor):
        self.data, self.proc = data, processor

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i):
        return with_prefix_labels(self.data[i], self.proc)

    @property
    def rng(self):  # the draws are the wrapped sequences' (sampling.OneProcessDraws)
        return getattr(self.data, "rng", None)

    def skip(self, i: int) -> None:
        self.data.skip(i)


def with_prefix_labels(ex: Example, processor) -> Example:
    """`ex` with every unlabelled token but the image placeholders labelled (see PrefixLabels)."""
    image_id = getattr(ex.pixel_values, "image_token_id", getattr(processor, "image_token_id", None))
    ex.labels = [t if lab == IGNORE and t != image_id else lab for t, lab in zip(ex.input_ids, ex.labels)]
    return ex
