"""The strings each codebase's collate writes (`*.sequences`), and the checks of those settings, read from the
config alone.

Why apart from unlearn/data/written.py, which builds the sequences: the checks run before a run imports anything
heavy (unlearn/before_run.py), and building a sequence needs torch (1-3 s to import). The module docstring of
written.py says which codebase writes which string and how it labels it.
"""

from __future__ import annotations

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
