"""Sequences written as an official codebase writes them: `finetune.sequences`, `method.sequences`,
`mmunlearner.sequences`, `manu.sequences`.

`template` (every default) builds a QA pair from the model's template (the prompt tokenized as one string, the
answer as its own piece: ChatProcessor.opening_ids), the stop token after
the answer, and labels the span the recipe asks for (unlearn/data/sequences.py): the sequences the model was
taught and is evaluated on. The other values write each pair as one string, the way that codebase's collate
does, and tokenise it whole with the tokenizer's own special tokens (their `processor(text=...)` /
`tokenizer(text)`: a leading bos on LLaVA and Idefics2), each `<image>` expanded into the image's tokens as
their processors expand it. No stop token follows the answer but what a chat template writes there (Idefics2's
<end_of_utterance>, Qwen2-VL's <|im_end|>): none of them appends one.

  manu         franciscoliu/MANU data_process/data_preprocess.py, `train_collate_fn_llava` /
               `train_collate_fn_idefics` as prune/prune_incremental.py calls them for the four statistics
               loaders. LLaVA "USER: <image>\\n{q}\\nASSISTANT: {a}", text-only "USER:{q}\\nASSISTANT: {a}" (no
               space after "USER:"); Idefics2: the processor's chat template over (image, question) and
               (answer), `add_generation_prompt=False`, stripped (idefics2-8b's processor_config.json
               template writes "User:<image>{q}<end_of_utterance>\\nAssistant: {a}<end_of_utterance>", and
               "User: " with a space when the turn starts with text). Rows: `LLAVA_multimodal_Dataset` takes
               every metadata pair; `LLAVA_unimodal_Dataset` writes the name into question and answer
               (unlearn/data/mllmu_bench.py's `text_question` and `text_answer`) and drops the pairs that ask
               the name (a question in MANU_NAME_QUESTIONS whose answer gives the person's name).
  mllmu_bench  franciscoliu/MLLMU-Bench data_process/data_preprocess.py (finetune.py, baselines/GA.py, ...):
               `train_collate_fn_llava`, the same LLaVA string as MANU's; `train_collate_fn_idefics`, the
               same Idefics2 chat template. Image+text only: their training has no text-only string.
  mmunlearner  Z1zs/MMUnlearner data_process/CLEAR_process.py `train_collate_clear`, which their mask passes
               and updates (MLLMU_gen_mask.py, MLLMU_manifold.py, CLEAR_gen_mask.py, CLEAR_manifold.py) call:
               the processor's chat template over the same turns, stripped. LLaVA (llava-1.5's
               chat_template.json): "USER: <image>\\n{q} ASSISTANT: {a}", text-only "USER: {q} ASSISTANT: {a}";
               Qwen2-VL (its CLEAR runs, and its Qwen2-VL branches on MLLMU-Bench): Qwen2-VL-Instruct's
               template with its system prompt, "<|im_end|>" after the answer and no newline after it.
               With the answer as the label span (`mmunlearner.update_labels=answer`, their `--ans_only True`)
               the collate is `train_collate_clear_ansonly`: the answer tokenised alone, special tokens
               dropped, and only the first place the row holds those ids labelled.
  clear        somvy/multimodal_unlearning (CLEAR) mm/dataset.py `convert_mm_data_to_model_format` and
               `mm_data_collator_preprocessor`, which its finetune.py and forget.py train on: Qwen2-VL's chat
               template (its default system prompt) over (image, question) and (answer), not stripped, so the
               answer is followed by "<|im_end|>\\n". Qwen2-VL only (CLEAR's default model). Its labels are
               its own (below).

Labels of `clear`: CLEAR masks as many leading tokens as the prompt has when tokenized alone (its chat
template with `add_generation_prompt=True`, "...<|im_start|>assistant\\n"), counted before its processor
repeats `<|image_pad|>` into the image's tokens: on a text-only pair that is the prompt exactly, and the answer,
"<|im_end|>" and the newline after it carry loss; on an image pair the count falls short by the image's tokens
less one, so the prompt's last that many tokens carry loss too: the question, the turn markers,
`<|vision_end|>` and, behind a real image's hundreds of tokens, most `<|image_pad|>` positions (labelled with
their own id, which Qwen2-VL's loss does not skip). Padding carries none (left padding lies inside the masked
count; right padding is masked after the last token).

Labels of the other three (and of `mmunlearner`'s answer span, above): every token but those equal to the pad id, as all three collates set them
(`labels[labels == pad] = -100`: on Idefics2, whose pad is <unk>, an <unk> in the text too), and but the image
tokens, which their
losses never see. LLaVA: under MLLMU-Bench's and MANU's pinned transformers 4.45.1 with a llava-hf processor
config that has no `patch_size` (the checkpoints' configs until transformers PR #30962's migration, late
2024) the processor leaves one `<image>` and the model's legacy merge gives the 576 image positions
ignore_index; a config with `patch_size` expands `<image>` in the processor and those positions keep the
image token id as their label (MMUnlearner pins no version; its `labels == processor.image_token` compares
ids with a string and masks nothing). Idefics2: the processor expands `<image>` and the collate labels the
block; under transformers 4.40.2 (MLLMU-Bench's idefics_requirements.txt) the model's loss
(`Idefics2ForConditionalGeneration.forward`) is `CrossEntropyLoss(ignore_index=image_token_id)`, so only the
block's `<fake_token_around_image>` tokens count (the default here); under 4.45.1 (its requirements.txt, which its
README installs first) the loss is a plain `CrossEntropyLoss()` and the image tokens count too, each labelled with
the image token id (`image_labels=image_token`). Qwen2-VL (MMUnlearner's chat template): its processor expands `<|image_pad|>` before the collate labels
the row, and its loss skips nothing, so the image's tokens, `<|vision_start|>` and `<|vision_end|>` carry loss,
each labelled with its own id. MANU's statistics pass uses no labels.

Differences that remain: the rows' questions and answers are stripped (their multimodal datasets keep
surrounding whitespace); no `truncation` (their limits exceed these sequences; CLEAR's is 2048 tokens). A
family without the codebase's string (Qwen2-VL under `manu` and `mllmu_bench`, Idefics2 under `mmunlearner`,
anything but Qwen2-VL under `clear`) is refused.
"""

from __future__ import annotations

from dataclasses import replace

from unlearn.data.collate import IGNORE, Example
from unlearn.data.manu_text_rule import MANU_NAME_QUESTIONS, manu_extract_name
from unlearn.data.sequences import PrefixLabels, QASequences, form_pairs
from unlearn.data.writings import (ANSWER_FIELD, ANSWER_IDS, IMAGE_MARKUP, STRINGS, check_answer_ids, check_sequences,
                                    check_writing, written_text)
from unlearn.models.prompt_ids import IMAGE_PLACEHOLDER


def asks_the_name(question: str, answer: str, name: str) -> bool:
    """MANU's text-only rows skip a pair whose question is a name question and whose answer gives the name."""
    return question.strip() in MANU_NAME_QUESTIONS and manu_extract_name(answer) == name


def encode_whole(proc, text: str, image=None) -> list[int]:
    """`text` tokenised whole with the tokenizer's own special tokens, its `<image>` expanded into the image's
    tokens, as their processors expand it in the string before tokenizing. A tokenizer without an `<image>`
    token (Qwen2-VL, whose image markup begins and ends with special tokens, where a whole-string tokenization
    splits anyway) reads the text on either side of it apart."""
    tok = proc.tokenizer
    placeholder = tok.convert_tokens_to_ids(IMAGE_PLACEHOLDER)
    if placeholder is None or placeholder == tok.unk_token_id:
        parts = text.split(IMAGE_PLACEHOLDER)
        if len(parts) - 1 != (image is not None):
            raise ValueError(f"{text!r} has {len(parts) - 1} {IMAGE_PLACEHOLDER} for {int(image is not None)} image")
        ids = tok.encode(parts[0], add_special_tokens=True)
        return ids if image is None else ids + proc.image_ids(image) + tok.encode(parts[1], add_special_tokens=False)
    ids = tok.encode(text, add_special_tokens=True)
    if ids.count(placeholder) != (image is not None):
        raise ValueError(f"{text!r} has {ids.count(placeholder)} {IMAGE_PLACEHOLDER} tokens for "
                         f"{int(image is not None)} image")
    return [i for t in ids for i in (proc.image_ids(image) if t == placeholder else [t])]


def clear_prompt_count(proc, question: str, form: str, family: str) -> int:
    """How many leading tokens CLEAR's collate masks: its prompt (the written string up to the answer) tokenized
    alone, with the image's markup as its chat template writes it, one `<|image_pad|>` (mm/dataset.py
    `convert_mm_data_to_model_format`: `len(tokenizer.tokenize(formatted_question, add_special_tokens=True))`)."""
    string = STRINGS[("clear", family, form)]
    prompt = string[:string.index(ANSWER_FIELD)].format(question=question)
    prompt = prompt.replace(IMAGE_PLACEHOLDER, IMAGE_MARKUP.get(family, IMAGE_PLACEHOLDER))
    return len(proc.tokenizer.encode(prompt, add_special_tokens=True))


# What of an image their collates hand the model: MLLMU-Bench's and MANU's data_preprocess.py return
# input_ids, attention_mask, pixel_values and labels only, so Idefics2 runs without the pixel_attention_mask
# its processor makes (transformers then counts every pixel as real: where a batch's images differ in size,
# the vision tower attends to the zero padding and places patches on the whole grid). MMUnlearner's collate
# hands on all its processor makes (LLaVA: pixel_values; Qwen2-VL: pixel_values and image_grid_thw).
IMAGE_TENSORS = {"manu": ("pixel_values",), "mllmu_bench": ("pixel_values",)}


def their_image(pixels, writing: str):
    """The image as that codebase's batch carries it (IMAGE_TENSORS)."""
    keep = IMAGE_TENSORS.get(writing)
    if pixels is None or keep is None or not hasattr(pixels, "tensors"):
        return pixels
    return replace(pixels, tensors={k: v for k, v in pixels.tensors.items() if k in keep})


# families whose loss never sees the image's tokens under these collates by default (the module docstring): LLaVA's
# legacy merge gives them ignore_index, Idefics2's loss under transformers 4.40.2 ignores the image token id (4.45.1's
# does not: image_labels=image_token); Qwen2-VL's loss skips nothing
IMAGE_OUTSIDE_LOSS = ("llava", "idefics2")

def first_answer_labels(tok, ids: list[int], answer: str, question: str, key: str = "sequences",
                        answer_ids: str = "without_specials") -> list[int]:
    """The answer-only collates' labels: the answer's ids (`answer_ids`, see ANSWER_IDS) labelled where the row
    first holds them, every other token unlabelled. (Theirs leave the whole row labelled, pads too, when the ids
    are not found: the `ValueError` is built but never raised; here it is raised.)"""
    if answer_ids not in ANSWER_IDS:
        raise ValueError(f"{key.rsplit('.', 1)[0]}.answer_ids={answer_ids!r}: expected one of {list(ANSWER_IDS)}")
    alone = tok.encode(answer, add_special_tokens=True)
    if answer_ids == "without_first":
        span = alone[1:]
        if not span:  # a one-token answer (no bos): theirs matches the empty span at 0 and labels nothing
            return [IGNORE] * len(ids)
    else:
        special = set(tok.all_special_ids)
        span = [t for t in alone if t not in special]
    n = len(span)
    for start in range(len(ids) - n + 1):
        if n and ids[start:start + n] == span:
            return [IGNORE] * start + span + [IGNORE] * (len(ids) - start - n)
    raise ValueError(f"{key}=mmunlearner with the answer as the label span: the answer {answer!r} (to "
                     f"{question!r}), tokenised alone, is not in its written row")


def written_example(proc, question: str, answer: str, pixels, writing: str, family: str, labels: bool = True,
                    key: str = "sequences", answer_only: bool = False,
                    answer_ids: str = "without_specials") -> Example:
    form = "text" if pixels is None else "multimodal"
    pixels = their_image(pixels, writing)
    ids = encode_whole(proc, written_text(question, answer, form, family, writing, key), pixels)
    if not labels:
        return Example(ids, [IGNORE] * len(ids), pixels)
    if writing == "clear":  # CLEAR's count of the prompt's tokens, taken before the image is expanded
        masked = clear_prompt_count(proc, question, form, family)
        return Example(ids, [IGNORE] * masked + ids[masked:], pixels)
    if answer_only:  # MMUnlearner's answer-only collates (check_sequences allows no other writing)
        return Example(ids, first_answer_labels(proc.tokenizer, ids, answer, question, key, answer_ids), pixels)
    # their `labels[labels == pad_token_id] = -100` masks every token equal to the pad id, padding or not
    # (Idefics2's pad is <unk>); padding itself is added, and left unlabelled, by the collate. The image
    # tokens: LLaVA's legacy merge and Idefics2's loss leave them out, Qwen2-VL's keeps them (IMAGE_OUTSIDE_LOSS)
    unlabelled = {proc.tokenizer.pad_token_id}
    if family in IMAGE_OUTSIDE_LOSS and getattr(proc, "image_labels", None) != "image_token":
        unlabelled.add(getattr(pixels, "image_token_id", getattr(proc, "image_token_id", None)))
    return Example(ids, [IGNORE if t in unlabelled else t for t in ids], pixels)


def written_pairs(row: dict, form: str, writing: str, key: str = "sequences") -> list[tuple[str, str]]:
    """The (question, answer) pairs `writing` trains on of `row` in `form`: the row's own (form_pairs; `template`
    too), but for the MANU authors' text-only rows, which drop the name question."""
    if form == "multimodal" or writing != "manu":
        return form_pairs(row, form)
    if not row.get("name"):
        raise ValueError(f"{key}=manu: a training row (ID {row.get('ID')!r}) has no 'name', which the "
                         f"text-only rows need to drop the name question")
    return [(qa["text_question"], qa.get("text_answer") or qa["answer"]) for qa in row["qa"]
            if qa.get("text_question") is not None
            and not asks_the_name(qa.get("multimodal_question") or "", qa["answer"], row["name"])]


def sequence_count(rows, forms, sequences: str = "template", key: str = "sequences") -> int:
    """len(qa_sequences(rows, proc, forms, sequences, ...)) without a processor and without decoding an image:
    every pair of every row in each of `forms` (a form named twice counts twice). What the teaching's step count
    is made of before any model is built (unlearn/teaching_steps.py)."""
    forms = (forms,) if isinstance(forms, str) else tuple(forms)
    if hasattr(rows, "select_columns"):  # a Dataset decodes every column it yields
        rows = rows.select_columns([c for c in rows.column_names if c in WrittenSequences.columns])
    return sum(len(written_pairs(row, form, sequences, key)) for row in rows for form in forms)


class WrittenSequences(QASequences):
    """QASequences whose pairs are written by `writing` (see the module docstring); `labels=False` for a
    forward-only pass."""

    columns = ("qa", "name", "ID")

    def __init__(self, rows, processor, forms, writing: str, labels: bool = True, augment: bool = False,
                 seed: int = 0, key: str = "sequences", answer_only: bool = False,
                 answer_ids: str = "without_specials"):
        self.writing, self.family, self.labels, self.key = writing, processor.family, labels, key
        self.answer_labels = answer_only  # MMUnlearner's ansonly collates (first_answer_labels)
        self.answer_ids = answer_ids
        check_writing(writing, self.family, (forms,) if isinstance(forms, str) else forms, key)
        super().__init__(rows, processor, forms, answer_only=False, augment=augment, seed=seed)

    def pairs(self, row: dict, form: str) -> list[tuple[str, str]]:
        return written_pairs(row, form, self.writing, self.key)

    def example(self, question: str, answer: str, pixels) -> Example:
        return written_example(self.proc, question, answer, pixels, self.writing, self.family, self.labels,
                               self.key, self.answer_labels, self.answer_ids)


def qa_sequences(rows, proc, forms, sequences: str = "template", answer_only: bool = True,
                 label_prefix: bool = False, key: str = "sequences", labels_key: str | None = None,
                 answer_ids: str = "without_specials", **kwargs):
    """The training sequences a recipe asks for: the model's template (`sequences=template`, with its label
    span and prefix), or a codebase's written strings, which label every token as their collates do.
    `answer_ids`: how MMUnlearner's answer-only collates find the answer (ANSWER_IDS)."""
    check_answer_ids(answer_ids, sequences, answer_only, label_prefix, key)
    if check_sequences(sequences, answer_only, label_prefix, key, labels_key):
        return WrittenSequences(rows, proc, forms, sequences, key=key, answer_only=answer_only,
                                answer_ids=answer_ids, **kwargs)
    ds = QASequences(rows, proc, forms, answer_only, **kwargs)
    return PrefixLabels(ds, proc) if label_prefix else ds
