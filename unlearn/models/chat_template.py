"""The chat template a real checkpoint's prompts are written in (`model.template`), and the model families
that have an image adapter (unlearn/models/chat_processor.py).

Why apart from the processor: the checks before a run read them (unlearn/before_run.py), and the processor
imports torch (1-3 s).
"""

from __future__ import annotations

from dataclasses import dataclass

MROPE_FAMILIES = ("qwen2_vl", "qwen2_5_vl")  # position ids need `mm_token_type_ids`
FAMILIES = ("llava", "idefics2", *MROPE_FAMILIES)


@dataclass(frozen=True)
class ChatTemplate:
    """`prefix` + [image block + `after_image`] + `question` -> prompt; `answer` + stop token -> target."""

    prefix: str = ""
    after_image: str = ""
    # the prefix of a turn that opens with text, where the model's chat template writes another (Idefics2's
    # "User: " against "User:<image>"); None: `prefix`
    text_prefix: str | None = None
    question: str = "{question}"
    answer: str = " {answer}"
    stop: str | None = None  # the token that ends an answer; None: the tokenizer's eos
    bos: bool = True  # start with the tokenizer's bos token (when it has one)
    # MLLMU-Bench's zero-shot MC question (`evaluate_classification` in its eval.py), inside the chat turn
    letter_question: str = ("{question}\nA: {A}\nB: {B}\nC: {C}\nD: {D}\n"
                            "Just give ONE letter representing the answer directly.")
