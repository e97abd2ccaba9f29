"""The prompts of MLLMU-Bench's own evaluation, rendered at run time by unlearn/eval/protocol.py. Apart from the
MLLMU-Bench loader (unlearn/data/mllmu_bench.py, which imports `datasets`), so that the settings check reads the
protocols without it (unlearn/before_run.py)."""

from __future__ import annotations

from unlearn.data.schema import MC_LETTERS

LETTERS = MC_LETTERS  # their options' keys, A-D (protocol.py reads them here)

# Source: `evaluate_classification` / `formulate_prompt_with_options` in the official eval.py
# (franciscoliu/MLLMU-Bench; read through its copy YokeYao/MLLMU-Bench eval.py; franciscoliu/MANU's eval.py
# differs in its shots, unlearn/eval/protocol.py). The options are joined as "A: text" lines; the reply is scored
# by its first character, upper-cased, counted only when it is one of the option letters (unlearn/eval/scorers.py,
# `mllmu_letter`, the one MC parser, used at run time under eval.scorer=mllmu_bench).
MC_OPTION_LINE = "{letter}: {option}"
MC_INSTRUCTION = "Just give ONE letter representing the answer directly."
MC_PROMPT_MULTIMODAL = "USER: <image>\n{question}\n{options}\n" + MC_INSTRUCTION + "\nASSISTANT:"
MC_PROMPT_TEXT = "USER:\n{question}\n{options}\n" + MC_INSTRUCTION + "\nASSISTANT:"
# Their few-shot mode prepends, per shot (unlearn/eval/protocol.py says which shots, and where):
MC_FEW_SHOT_MULTIMODAL = ("USER: <image>\nQuestion: {question}\nA: {A}\nB: {B}\nC: {C}\nD: {D}\n"
                          "Correct Answer: {answer}\n")
MC_FEW_SHOT_TEXT = "USER:\nQuestion: {question}\nA: {A}\nB: {B}\nC: {C}\nD: {D}\nCorrect Answer: {answer}\n"
# Generation (`evaluate_generation`) and cloze (`evaluate_fill_in_the_blank`) prompts of the same file.
GEN_INSTRUCTION_MULTIMODAL = "Answer the question based on your trained knowledge in one sentence accurately in ENGLISH."
GEN_PROMPT_MULTIMODAL = "USER: <image>\n{question}\n" + GEN_INSTRUCTION_MULTIMODAL + "\nASSISTANT: "
GEN_PROMPT_TEXT = ("USER: {question}\nAnswer the question based on your trained knowledge in one sentence in "
                   "ENGLISH.\nASSISTANT:")
CLOZE_BLANK, CLOZE_BLANK_SHOWN = "__", "[Blank]"
CLOZE_SUFFIX = "\nPlease **ONLY** provide the correct answer that should replace the [Blank]."
CLOZE_PROMPT_MULTIMODAL = "USER: <image>\n{question}\nASSISTANT:"
CLOZE_PROMPT_TEXT = "USER:\n{question}\nASSISTANT:"
# Cloze shots (their question already in the [Blank] form); note "USER:<image>" with no space, unlike the query.
CLOZE_FEW_SHOT_MULTIMODAL = "USER:<image>\n{question}\nCorrect Answer: {answer}\n"
CLOZE_FEW_SHOT_TEXT = "USER:\n{question}\nCorrect Answer: {answer}\n"


def format_options(options: dict[str, str]) -> str:
    """Their options block (`formulate_prompt_with_options`): "A: ..", one letter a line."""
    return "\n".join(MC_OPTION_LINE.format(letter=k, option=v) for k, v in options.items())


def format_mc_prompt(question: str, options: dict[str, str], multimodal: bool) -> str:
    """The zero-shot MLLMU-Bench multiple-choice prompt for one question."""
    return (MC_PROMPT_MULTIMODAL if multimodal else MC_PROMPT_TEXT).format(question=question,
                                                                          options=format_options(options))


def format_cloze_question(question: str) -> str:
    """Their cloze question: the `__` blank shown as [Blank], then the answer-only instruction."""
    return question.replace(CLOZE_BLANK, CLOZE_BLANK_SHOWN) + CLOZE_SUFFIX
