"""Words of the taught data that a model's tokenizer reads as its unknown token, said before teaching.

The embedded model (`model=tiny_llava`, the default) has a word-level tokenizer whose vocabulary is the embedded
benchmark's: lower-case words and spaced punctuation. On data of a user's own (`data=mllmu_bench
data.path=DIR`) most names, places and capitalised or punctuated words read as `<unk>`, so answers that differ only
there are the same ids: teaching ran its 150 epochs to a train loss of 0 with the probe at chance, and nothing
said why (until the fifty-first session). A subword tokenizer (a real checkpoint's) has no unknown words.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

SHOWN = 8  # how many of the unknown words the warning names


def taught_texts(rows) -> list[str]:
    """Every question and answer a teaching reads from training rows, in each form as the teaching reads them
    (`sequences.form_pairs`). The `qa` column alone is read: iterating the rows would decode every portrait."""
    from unlearn.data.sequences import FORMS, form_pairs

    return [text for pairs in rows["qa"] for form in FORMS for pair in form_pairs({"qa": pairs}, form)
            for text in pair if text]


def unknown_words(tokenizer, texts) -> tuple[list[str], int]:
    """The distinct whitespace-separated words of `texts` that `tokenizer` reads with its unknown token, in the
    order first seen, and how many distinct words there are; none where the tokenizer has no unknown token."""
    words = list(dict.fromkeys(w for t in texts for w in t.split()))
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None or not words:
        return [], len(words)
    ids = tokenizer(words, add_special_tokens=False)["input_ids"]
    return [w for w, i in zip(words, ids) if unk in i], len(words)


def advice(model_name: str, data_path, family: str = "llava", embedded: bool = True) -> str:
    """What to do about it. Why per model: a word-level stand-in of Idefics2 or Qwen2-VL written without
    `--words-from` lacks the words too, and until the fifty-second session its warning called it the embedded model
    and told its user to write a LLaVA stand-in and run model=llava_1_5_7b instead."""
    where = data_path if data_path else "<data.path>"
    if embedded:
        return ("The embedded model's vocabulary is the embedded benchmark's (data=mllmu_mini); for data of your own, "
                "write a stand-in whose vocabulary holds its words, `python -m unlearn.models.tiny_real llava DIR "
                f"--words-from {where}`, and run with model=llava_1_5_7b model.path=DIR (docs/guide/real_models.md)")
    from unlearn.models.tiny_real import FAMILIES

    family = family if family in FAMILIES else "llava"
    return ("A word-level stand-in (python -m unlearn.models.tiny_real) knows only the words it was written with: "
            f"write it again with your data's, `python -m unlearn.models.tiny_real {family} DIR --words-from {where}`, "
            f"and run with model={model_name} model.path=DIR (docs/guide/real_models.md)")


def warn_unknown_words(tokenizer, rows, model_name: str, data_path, family: str = "llava",
                       embedded: bool = True) -> list[str]:
    """Warn, naming the model and the first words, where the taught questions and answers hold words the
    tokenizer reads as unknown; returns those words. `family` (the checkpoint's model type) and `embedded` (the
    embedded model, built, not loaded) pick the advice."""
    unknown, total = unknown_words(tokenizer, taught_texts(rows))
    if unknown:
        log.warning(
            "model=%s's tokenizer reads %d of the %d distinct words of the taught questions and answers as its "
            "unknown token (%s%s): answers that differ only in those words are the same to the model, which cannot "
            "learn them. %s", model_name, len(unknown), total,
            ", ".join(repr(w) for w in unknown[:SHOWN]), ", ..." if len(unknown) > SHOWN else "",
            advice(model_name, data_path, family, embedded))
    return unknown
