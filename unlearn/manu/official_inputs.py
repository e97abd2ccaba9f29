"""The statistics pass's sequences as the MANU authors build them (`manu.inputs=official`).

Source: franciscoliu/MANU data_process/data_preprocess.py, read whole: `LLAVA_multimodal_Dataset` and
`LLAVA_unimodal_Dataset` (the rows), `train_collate_fn_llava` and `train_collate_fn_idefics` (the strings), as
prune/prune_incremental.py calls them for the four statistics loaders. What they do, and so what this does:
  * LLaVA: "USER: <image>\\n{question}\\nASSISTANT: {answer}" with the image, "USER:{question}\\nASSISTANT:
    {answer}" text-only (no space after "USER:"); the whole string through their processor or tokenizer, so a
    leading bos, `<image>` expanded into the image's tokens, and no eos after the answer.
  * Idefics2: the processor's chat template over a user turn (image, question) and an assistant turn (answer),
    `add_generation_prompt=False`, stripped; the template (idefics2-8b's processor_config.json) writes
    "User:<image>{question}<end_of_utterance>\\nAssistant: {answer}<end_of_utterance>\\n", and "User: " with a
    space when the turn starts with text. Then the processor (bos, the image block) or the tokenizer.
  * Multimodal rows: every (question, answer) pair of the person's metadata, as written. Text-only rows: the
    same pairs with the name written in (unlearn/data/mllmu_bench.py's `text_question` and `text_answer`),
    without the pairs that ask the name: a question in MANU_NAME_QUESTIONS whose answer gives the person's name.
  * Right padding with the pad token (`padding_side = "right"`, `padding=True`): the ActivationPass collate.
Differences that remain: the rows' questions and answers are stripped here (their multimodal dataset keeps
surrounding whitespace, their text-only one strips); no `truncation` (their processors' limits exceed the
sequences). Qwen2-VL is not in their code (their loader raises for it), so it is refused here.

The project's default (`manu.inputs=template`) builds the pass from the model's template, piece by piece,
with the stop token after the answer: the sequences the model was taught and is evaluated on.
"""

from __future__ import annotations

from unlearn.data.collate import IGNORE, Example
from unlearn.data.mllmu_bench import MANU_NAME_QUESTIONS, manu_extract_name
from unlearn.data.sequences import QASequences
from unlearn.eval.protocol import IMAGE_PLACEHOLDER

INPUTS = ("template", "official")
TEMPLATES = {
    ("llava", "multimodal"): "USER: <image>\n{question}\nASSISTANT: {answer}",
    ("llava", "text"): "USER:{question}\nASSISTANT: {answer}",
    ("idefics2", "multimodal"): "User:<image>{question}<end_of_utterance>\nAssistant: {answer}<end_of_utterance>",
    ("idefics2", "text"): "User: {question}<end_of_utterance>\nAssistant: {answer}<end_of_utterance>",
}
FAMILIES = sorted({family for family, _ in TEMPLATES})
assert all(IMAGE_PLACEHOLDER in t for (_, form), t in TEMPLATES.items() if form == "multimodal")


def official_text(question: str, answer: str, form: str, family: str) -> str:
    """One statistics sequence as their collate writes it (before tokenizing)."""
    if family not in FAMILIES:
        raise ValueError(f"manu.inputs=official: the MANU authors' statistics strings exist for {FAMILIES}, "
                         f"not model family {family!r}; use manu.inputs=template")
    return TEMPLATES[family, form].format(question=question, answer=answer)


def asks_the_name(question: str, answer: str, name: str) -> bool:
    """Their text-only rows skip a pair whose question is a name question and whose answer gives the name."""
    return question.strip() in MANU_NAME_QUESTIONS and manu_extract_name(answer) == name


class OfficialStatisticSequences(QASequences):
    """The four statistics loaders' rows and token ids as the authors make them (see the module docstring).

    Labels are all IGNORE: the pass is forward-only."""

    columns = ("qa", "name")

    def __init__(self, rows, processor, forms, family: str):
        official_text("", "", "text", family)  # refuse an unknown family before reading any row
        self.family = family
        super().__init__(rows, processor, forms)

    def pairs(self, row: dict, form: str) -> list[tuple[str, str]]:
        if form == "multimodal":
            return [(qa["multimodal_question"], qa["answer"]) for qa in row["qa"]]
        if not row.get("name"):
            raise ValueError(f"manu.inputs=official: a training row (ID {row.get('ID')!r}) has no 'name', which "
                             f"the text-only rows need to drop the name question")
        return [(qa["text_question"], qa.get("text_answer") or qa["answer"]) for qa in row["qa"]
                if not asks_the_name(qa["multimodal_question"], qa["answer"], row["name"])]

    def example(self, question: str, answer: str, pixels) -> Example:
        form = "text" if pixels is None else "multimodal"
        ids = encode_whole(self.proc, official_text(question, answer, form, self.family), pixels)
        return Example(ids, [IGNORE] * len(ids), pixels)


def encode_whole(proc, text: str, image=None) -> list[int]:
    """`text` tokenised whole with the tokenizer's own special tokens (their `processor(text=...)` /
    `tokenizer(text)`: bos on LLaVA and Idefics2, whatever the model template says), its `<image>` expanded
    into the image's tokens, as their processors expand it in the string before tokenizing."""
    tok = proc.tokenizer
    ids = tok.encode(text, add_special_tokens=True)
    placeholder = tok.convert_tokens_to_ids(IMAGE_PLACEHOLDER)
    if ids.count(placeholder) != (image is not None):
        raise ValueError(f"{text!r} has {ids.count(placeholder)} {IMAGE_PLACEHOLDER} tokens for "
                         f"{int(image is not None)} image")
    return [i for t in ids for i in (proc.image_ids(image) if t == placeholder else [t])]
