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
from unlearn.models.prompt_ids import IMAGE_PLACEHOLDER

_LLAVA_MANU = {"multimodal": "USER: <image>\n{question}\nASSISTANT: {answer}",
               "text": "USER:{question}\nASSISTANT: {answer}"}
# Qwen2-VL-Instruct's chat template over one user turn (an image, or none, then text), add_generation_prompt=True
QWEN2_VL_PROMPT = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n{image}{text}"
                   "<|im_end|>\n<|im_start|>assistant\n")
_QWEN2_VL_CHAT = QWEN2_VL_PROMPT.replace("{text}", "{{question}}") + "{{answer}}<|im_end|>\n"
_IDEFICS2_CHAT = {"multimodal": "User:<image>{question}<end_of_utterance>\nAssistant: {answer}<end_of_utterance>",
                  "text": "User: {question}<end_of_utterance>\nAssistant: {answer}<end_of_utterance>"}
# (writing, family, form) -> the string their collate writes
STRINGS = {
    **{("manu", "llava", f): s for f, s in _LLAVA_MANU.items()},
    **{("manu", "idefics2", f): s for f, s in _IDEFICS2_CHAT.items()},
    ("mllmu_bench", "llava", "multimodal"): _LLAVA_MANU["multimodal"],
    ("mllmu_bench", "idefics2", "multimodal"): _IDEFICS2_CHAT["multimodal"],
    ("mmunlearner", "llava", "multimodal"): "USER: <image>\n{question} ASSISTANT: {answer}",
    ("mmunlearner", "llava", "text"): "USER: {question} ASSISTANT: {answer}",
    # train_collate_clear's `.strip()` takes the newline the template writes after <|im_end|>
    ("mmunlearner", "qwen2_vl", "multimodal"): _QWEN2_VL_CHAT.format(image="<image>").strip(),
    ("mmunlearner", "qwen2_vl", "text"): _QWEN2_VL_CHAT.format(image="").strip(),
    # Qwen2-VL-Instruct's chat template; <image> stands for its "<|vision_start|><|image_pad|><|vision_end|>"
    ("clear", "qwen2_vl", "multimodal"): _QWEN2_VL_CHAT.format(image="<image>"),
    ("clear", "qwen2_vl", "text"): _QWEN2_VL_CHAT.format(image=""),
}
# what a written string's <image> is in the text the official tokenizer reads, where that is not <image> itself
IMAGE_MARKUP = {"qwen2_vl": "<|vision_start|><|image_pad|><|vision_end|>"}
ANSWER_FIELD = "{answer}"
WRITINGS = ("manu", "mllmu_bench", "mmunlearner", "clear")
SEQUENCES = ("template", *WRITINGS)


def written_text(question: str, answer: str, form: str, family: str, writing: str, key: str = "sequences") -> str:
    """One QA pair as `writing`'s collate writes it (before tokenizing)."""
    if writing not in WRITINGS:
        raise ValueError(f"{key}={writing!r}: expected one of {list(SEQUENCES)}")
    string = STRINGS.get((writing, family, form))
    if string is None:
        have = sorted({(fam, f) for w, fam, f in STRINGS if w == writing})
        raise ValueError(f"{key}={writing}: that codebase writes no {form} sequence for model family {family!r} "
                         f"(it has {have}); use {key}=template")
    return string.format(question=question, answer=answer)


def check_writing(sequences: str, family: str, forms, key: str = "sequences") -> None:
    """Refuse, before any data is read, a writing with no string for this model family in one of `forms`."""
    if sequences != "template":
        for form in forms:
            written_text("", "", form, family, sequences, key)


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

# `<section>.image_labels` (finetune, method, mmunlearner; carried by the recipe's processor, as their processor
# config decided it): where a LLaVA row's image positions sit in the all-token collates' loss (labels = input_ids,
# pads masked). null: outside, as transformers' legacy merge leaves them under a processor config without
# patch_size, which expands the row's single <image> inside the model (MLLMU-Bench pins transformers 4.45.1 with
# such a config). image_token: each labelled with the image token id, as they are when the processor config has
# patch_size and expands <image> in input_ids before the collate copies them into labels (MMUnlearner pins no
# version: either may be theirs). Idefics2: image_token is transformers 4.45.1's loss, null 4.40.2's (MLLMU-Bench's
# requirements.txt and idefics_requirements.txt: either may be theirs). Only LLaVA and Idefics2 differ; only the
# written all-token writings read it.
IMAGE_LABELS = ("image_token",)
ALL_TOKEN_WRITINGS = ("mmunlearner", "mllmu_bench")


def check_image_labels(value, sequences: str, every_token: bool, section: str) -> None:
    """Refuse, from the config, an `image_labels` nothing would read (the family: `with_image_labels`)."""
    if value is None:
        return
    key = f"{section}.image_labels"
    if value not in IMAGE_LABELS:
        raise ValueError(f"{key}={value!r}: expected null (image positions outside the loss) or one of "
                         f"{list(IMAGE_LABELS)}")
    if sequences not in ALL_TOKEN_WRITINGS or not every_token:
        raise ValueError(f"{key}={value} labels the image positions of the all-token collates: it needs "
                         f"{section}.sequences in {list(ALL_TOKEN_WRITINGS)} with every token labelled "
                         f"(got sequences={sequences!r})")


# How MMUnlearner's answer-only collates find the answer in a row: the answer tokenised alone (special tokens
# added), then `without_specials` (CLEAR_process.py train_collate_clear_ansonly: its special tokens dropped) or
# `without_first` (data_preprocess.py:516-517 train_collate_mllmu_ansonly: `input_ids[0][1:]`, meant to drop bos;
# where the tokenizer adds none, as Qwen2's, it drops the answer's first real token, which then carries no label,
# and a one-token answer leaves an empty span, which their loop (:538-548) matches at 0: a row with no label)
ANSWER_IDS = ("without_specials", "without_first")


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


def check_sequences(sequences: str, answer_only: bool, label_prefix: bool, key: str,
                    labels_key: str | None = None) -> bool:
    """True for a codebase's written strings, False for the template; a written writing labels every token, as
    that codebase's collate does, so the recipe's label span must say so (`labels_key`: the setting that
    does; default, for `key` "<section>.sequences", "<section>.answer_only=false <section>.label_prefix=true").
    Two collates label less: CLEAR's (`clear`, the answer as it counts it) and MMUnlearner's answer-only one
    (`mmunlearner` with the answer span)."""
    section = key.rsplit(".", 1)[0]
    if labels_key is None:
        labels_key = f"{section}.answer_only=false {section}.label_prefix=true"
    if sequences == "template":
        return False
    if sequences not in WRITINGS:
        raise ValueError(f"{key}={sequences!r}: expected one of {list(SEQUENCES)}")
    if sequences == "clear":
        if section not in ("finetune", "method"):
            raise ValueError(f"{key}=clear: CLEAR's collate is what its fine-tuning and its unlearning losses read "
                             f"(finetune.sequences, method.sequences); MMUnlearner's CLEAR scripts write their "
                             f"own (experiment=mmunlearner_clear_official)")
        if not answer_only or label_prefix:
            raise ValueError(f"{key}=clear labels what follows CLEAR's count of the prompt's tokens (meant as the "
                             f"answer); set {section}.answer_only=true {section}.label_prefix=false to say so")
        return True
    if sequences == "mmunlearner" and answer_only and not label_prefix:
        return True  # its `train_collate_clear_ansonly`: the answer's first occurrence (first_answer_labels)
    if answer_only or not label_prefix:
        also = (" (or, for MMUnlearner's answer-only collate, the answer span alone)"
                if sequences == "mmunlearner" else "")
        raise ValueError(f"{key}={sequences} labels every token but the image, as that codebase's collate does; "
                         f"set {labels_key} to say so{also}")
    return True


def check_answer_ids(answer_ids: str, sequences: str, answer_only: bool, label_prefix: bool, key: str) -> None:
    """`answer_ids` is read only by MMUnlearner's answer-only collates: another value elsewhere would be ignored."""
    setting = f"{key.rsplit('.', 1)[0]}.answer_ids"
    if answer_ids not in ANSWER_IDS:
        raise ValueError(f"{setting}={answer_ids!r}: expected one of {list(ANSWER_IDS)}")
    if answer_ids != "without_specials" and not (sequences == "mmunlearner" and answer_only and not label_prefix):
        raise ValueError(f"{setting}={answer_ids} says how MMUnlearner's answer-only collates find the answer: it "
                         f"needs {key}=mmunlearner with the answer as the label span (got {key}={sequences}, "
                         f"answer_only={answer_only}, label_prefix={label_prefix})")


# MMUnlearner's label spans (mmunlearner.fisher_labels, update_labels). answer: the answer tokens; full: question
# and answer; all: every text token, the prompt's prefix too (the authors' collates label every non-pad token;
# with the model's template the image placeholders stay unlabelled; with mmunlearner.sequences=mmunlearner, as
# their collate and loss leave them: written_example)
LABEL_SPANS = ("answer", "full", "all")


def label_flags(span: str, key: str) -> tuple[bool, bool]:
    """A label span as the sequence builders take it: (answer_only, label_prefix)."""
    if span not in LABEL_SPANS:
        raise ValueError(f"{key}={span!r}: expected one of {LABEL_SPANS}")
    return span == "answer", span == "all"


def check_sequence_settings(cfg) -> None:
    """Every `*.sequences` a run reads, named and with a label span that labels every token, checked from the
    config alone: before the vanilla model is taught or the before-evaluation runs. (Whether the model family
    has that codebase's string is checked where the data is built, once the processor is loaded.)"""
    fcfg = cfg.get("finetune")
    if fcfg is not None:  # the vanilla model's teaching, or method=finetune
        check_sequences(fcfg.get("sequences", "template"), fcfg.get("answer_only", True),
                        fcfg.get("label_prefix", False), "finetune.sequences")
    method = cfg.method
    if "sequences" in method:  # the gradient methods
        check_sequences(method.sequences, method.get("answer_only", True), method.get("label_prefix", False),
                        "method.sequences")
        check_answer_ids(method.get("answer_ids", "without_specials"), method.sequences,
                         method.get("answer_only", True), method.get("label_prefix", False), "method.sequences")
    if method.name == "mmunlearner":
        m = cfg.mmunlearner
        spans = {"update_labels": m.get("update_labels", "answer")}
        if m.get("apply_mask", True) and not m.get("mask_path"):
            spans["fisher_labels"] = m.get("fisher_labels", "answer")
        for name, span in spans.items():
            check_sequences(m.get("sequences", "template"), *label_flags(span, f"mmunlearner.{name}"),
                            "mmunlearner.sequences", f"mmunlearner.{name}=all")
    if method.name == "manu" and cfg.manu.get("sequences", "template") not in SEQUENCES:
        raise ValueError(f"manu.sequences={cfg.manu.sequences!r}: expected one of {list(SEQUENCES)}")
    check_checkpoint_writings(cfg)


def check_checkpoint_writings(cfg) -> None:
    """A codebase's writing with no string for the family of a local `model.path` (its config.json's model_type),
    refused from the config: until 2026-12-05 `experiment=mllmu_baselines model=qwen2_vl_2b` stopped on it only
    after the before-evaluation (hours at 7B, uncached for a checkpoint's first run). The forms each
    recipe trains on in every setting; the others are checked where the data is built."""
    from unlearn.methods.gradient_settings import FORGET_FORMS
    from unlearn.models.checkpoint_files import checkpoint_config

    config = checkpoint_config(cfg.model.path) if cfg.model.get("path") else None  # None: a hub id, or no file
    family = None if config is None else config.get("model_type")
    if not isinstance(family, str):
        return
    method, writings = cfg.method, []
    if method.name == "finetune" and cfg.get("finetune") is not None:
        writings.append(("finetune.sequences", cfg.finetune.get("sequences", "template"), ("multimodal",)))
    if "sequences" in method:
        writings.append(("method.sequences", method.sequences,
                         FORGET_FORMS.get(cfg.data.get("forget_modality", "multimodal"), ("multimodal",))))
    if method.name in ("mmunlearner", "manu"):
        section = cfg[method.name]
        writings.append((f"{method.name}.sequences", section.get("sequences", "template"), ("multimodal",)))
    for key, writing, forms in writings:
        if writing in WRITINGS:
            check_writing(writing, family, forms, key)


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
