"""Token sequences with answer-only labels, and padding them into model batches.

A sequence is [bos] (+ image tokens) then one or more `question : q answer : a <eos>` segments; only the
answer words and their <eos> carry loss. Rows with an image contribute their image tensors in row order,
which is the order the models fill image placeholders in (real models: `batch_images`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the checks before a run import this (unlearn/before_run.py): torch (1-3 s) and transformers
    # (2-4 s) only where a batch is padded
    import torch

    from unlearn.models.chat_processor import ImageInput
    from unlearn.models.processor import VLProcessor

IGNORE = -100


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]
    pixel_values: torch.Tensor | ImageInput | list | None = None  # (3, H, W) for the embedded model; list: several
    # a DDP shard's padding repeat (unlearn/data/sampling.py unlabelled): no row of the one-process batch
    filler: bool = False


def qa_example(proc: VLProcessor, segments: list[tuple[str, str]], pixel_values: torch.Tensor | None,
               answer_only: bool = True) -> Example:
    if not segments:
        raise ValueError("a row needs at least one (question, answer) segment")
    ids, labels = [], []
    for i, (question, answer) in enumerate(segments):
        if i == 0:  # the opening: bos, the template's prefix, the image, the first question (one string)
            q, before = proc.opening_ids(question, pixel_values)
        else:
            q, before = proc.prompt_ids(question), 0
        a = proc.answer_ids(answer)
        ids += q + a
        labels += [IGNORE] * (len(q) if answer_only else before) + ([] if answer_only else q[before:]) + a
    return Example(ids, labels, pixel_values)


def prompt_example(proc: VLProcessor, question: str, pixel_values: torch.Tensor | None) -> Example:
    """A question awaiting its answer (for generation)."""
    ids, _ = proc.opening_ids(question, pixel_values)
    return Example(ids, [IGNORE] * len(ids), pixel_values)


def collate(examples: list[Example], pad_id: int, padding_side: str = "right") -> dict[str, torch.Tensor]:
    import torch

    from unlearn.models.chat_processor import ImageInput, batch_images

    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e.input_ids)
        sl = slice(0, n) if padding_side == "right" else slice(width - n, width)
        ids[i, sl] = torch.tensor(e.input_ids)
        labels[i, sl] = torch.tensor(e.labels)
        mask[i, sl] = 1
    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    images = []
    for e in examples:  # a row may hold several images (few-shot prompts), in placeholder order
        if isinstance(e.pixel_values, list):
            images += e.pixel_values
        elif e.pixel_values is not None:
            images.append(e.pixel_values)
    if images and isinstance(images[0], ImageInput):
        batch.update(batch_images(images, ids))
    elif images:
        batch["pixel_values"] = torch.stack(images)
    return batch
