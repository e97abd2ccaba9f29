"""The MANU authors' text-only rule (franciscoliu/MANU, data_process/data_preprocess.py): a profile's name from
its name question, and each visual reference replaced by it. Apart from the MLLMU-Bench loader
(unlearn/data/mllmu_bench.py), which applies it, so that the sequence settings' check reads the name questions
without importing `datasets` (unlearn/before_run.py)."""

from __future__ import annotations

import re

from unlearn.data.schema import DataError

MANU_NAME_QUESTIONS = (
    "What is the name of the person in this profile?",
    "What is this person's name as stated in the biography?",
    "What is the person's name?",
    "What is the name of the person in the image?",
    "What is this person's name?",
    "What is the full name of this person?",
    "What is the full name of the person in the image?",
    "What is the name of the person in this biography?",
    "What is the name of the person in the profile?",
    "What is the name of the person in the biography?",
    "What is the person's name as stated in the profile?",
    "What is this person's full name?",
    "What is the name of this individual?",
    "What is the name of the individual in the profile?",
    "What is the name of this person?",
    "What is the name associated with this profile?",
    "What is the name of the individual in the image?",
)
MANU_PLACEHOLDERS = (
    ("this person", "{name}"), ("the person", "{name}"), ("The person", "{name}"), ("This person", "{name}"),
    ("this person's", "{name}'s"), ("This person's", "{name}'s"), ("this individual", "{name}"),
    ("This individual", "{name}"), ("the individual", "{name}"), ("The individual", "{name}"),
    ("this profile", "{name}"),
)
# text_rule="clean": whole visual phrases first, so no "in the image" is left behind (our addition).
CLEAN_PHRASES = tuple(
    f"{who} in {where}" for who in ("the person", "The person", "this person", "This person", "the individual",
                                   "The individual", "this individual", "This individual")
    for where in ("the image", "this image", "the picture", "this picture", "the photo", "this photo"))
TEXT_RULES = ("manu", "clean")


def manu_extract_name(text: str) -> str:
    """MANU's `extract_person_name`: the words after "named", else after the word "is", else the whole text."""
    text = text.strip().rstrip(".")
    if "named" in text:
        return text[text.index("named") + len("named"):].strip()
    match = re.search(r"\bis\b (.+)", text)
    if match:
        return match.group(1).strip()
    return text


def manu_find_name(pairs: list[tuple[str, str]]) -> str | None:
    """The name from the first (question, answer) pair whose stripped question is one of MANU's name questions."""
    for question, answer in pairs:
        if question.strip() in MANU_NAME_QUESTIONS:
            name = manu_extract_name(answer.strip())
            if name:
                return name
    return None


def manu_text_form(text: str, name: str, rule: str = "manu") -> str:
    """`text` with its visual references replaced by `name` (MANU's `replace_placeholders`)."""
    if rule not in TEXT_RULES:
        raise DataError(f"text_rule={rule!r}: expected one of {list(TEXT_RULES)}")
    if rule == "manu":  # MANU's own: plain substrings ("the personality" reads "{name}ality")
        for placeholder, replacement in MANU_PLACEHOLDERS:
            text = text.replace(placeholder, replacement.format(name=name))
        return text
    for phrase, replacement in (*((p, "{name}") for p in CLEAN_PHRASES), *MANU_PLACEHOLDERS):  # whole words only
        text = re.sub(rf"(?<!\w){re.escape(phrase)}(?!\w)", lambda _: replacement.format(name=name), text)
    return text
