"""How a generated reply is scored: the embedded benchmark's rules, or MLLMU-Bench's (`eval.scorer`).

A scorer turns (reply, reference) into a score for the three generated tasks: the MC letter, ROUGE-L of a
generation, and cloze correctness. Replies are what the model generated after the prompt; the prompt is
never part of them.

`mllmu_bench` follows the official eval.py (franciscoliu/MLLMU-Bench; read through its copy
YokeYao/MLLMU-Bench eval.py, functions `evaluate_classification`, `evaluate_generation`,
`evaluate_fill_in_the_blank`). Their code decodes prompt plus reply and keeps
`text.split("ASSISTANT:")[1].strip()` (generation and cloze fall back to the text after "Answer:", then to
the whole text). Their LLaVA prompts contain "ASSISTANT:" exactly once, at the end, so on the reply alone
that is `reply.split("ASSISTANT:")[0]`: a reply that itself starts with "ASSISTANT:" yields an empty
answer there, and here (tests/test_scorers.py checks the equivalence on prompt plus reply). Then:
  * MC: the first character of that answer, upper-cased, if it is an option letter (else wrong);
  * generation: rouge_score's ROUGE-L F-measure with the Porter stemmer, `score(ground_truth, answer)`;
  * cloze: `ground_truth.lower() in answer.lower()` (containment anywhere in the answer).

`clear` follows CLEAR's scoring (somvy/multimodal_unlearning mm/calculate_metrics.py, `eval_rouge_recall`):
the reply as decoded, uncut, and rouge_score's stemmed ROUGE-L, its recall CLEAR's generation metric (the
F-measure beside it). CLEAR has no MC or cloze; those take MLLMU-Bench's rules.

`mmunlearner` follows MMUnlearner's copy of eval.py (Z1zs/MMUnlearner MLLMU_eval.py, set by
experiment=mmunlearner_official), which decodes the new tokens alone and cuts nothing: MC, every character but
[a-zA-Z0-9] removed and the first one upper-cased; generation, the stemmed ROUGE-L F-measure of the whole
reply; cloze, the lower-cased ground truth anywhere in the whole reply. Its image+text MC counts that letter where it
is a key of the Options (`in options`, MLLMU_eval.py:242, as eval.py), its text-only MC compares it with
Correct_Answer as it is (MLLMU_eval.py:295-301: no `in options`, a space appended so an empty reply reads " "):
the two differ only where the Correct_Answer is no key of the Options (data.on_bad_row=score keeps such questions),
which there is right where the reply's letter equals it ("E" with options A-D), and a null one never (MLLMU-Bench's
eval.py: right where the reply names no option letter). `Scorer.text_mc` reads so; `mc_right` decides.

Both official eval.py files also report, for generation, ROUGE-1 and ROUGE-2 F-measures (the same stemmed
scorer) and nltk's sentence BLEU (whitespace words, smoothing method 1; their `compute_bleu`) of the same
answer: the `mllmu_bench` and `mmunlearner` scorers add them as `rouge1`, `rouge2` and `bleu` (`columns`).

`embedded` (the default of data=mllmu_mini) is stricter by choice, because its tiny model answers in
the benchmark's own words and a loose rule would hide partial forgetting:
  * MC: the first non-blank character of the reply (the same letter rule, no "ASSISTANT:" handling);
  * generation: torchmetrics ROUGE-L F-measure without stemming ("lives" and "living" differ);
  * cloze: the reply must START with the blank's words (case, "." and "," ignored): "a lawyer" for
    "lawyer" is wrong here and right under mllmu_bench.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from unlearn.eval.metrics import cloze_correct, parse_letter, rouge_l, rouge_l_recall

LETTERS = ("A", "B", "C", "D")


def mllmu_answer(reply: str) -> str:
    """The answer MLLMU-Bench's eval.py extracts, computed on the reply alone (see the module docstring).

    Their "Answer:" fallback (generation, cloze) applies only when the decoded text holds no "ASSISTANT:",
    which never happens with their prompts, so it has no counterpart here.
    """
    return reply.split("ASSISTANT:")[0].strip()


def mllmu_letter(reply: str, letters: tuple[str, ...] = LETTERS) -> int:
    """Index of the option MLLMU-Bench reads from a reply (-1: no option letter, counted wrong)."""
    return _letter_index(mllmu_answer(reply), letters)


def named_keys(keys: tuple[str, ...]) -> tuple[str, ...]:
    """A question's own Options keys (data.on_bad_row=score) as `letters` for the readings above: eval.py counts a
    reply's first character, upper-cased, where it is a key (`in options`, eval.py:376, 432), so a key that is no
    single upper-case character is never named ("" here, which no reply's letter is), where the readings would
    upper-case it."""
    return tuple(k if len(k) == 1 and k == k.upper() else "" for k in keys)


def _letter_index(text: str, letters: tuple[str, ...]) -> int:
    """The option whose letter is `text`'s first character, upper-cased (-1: none)."""
    head = text[:1].upper()
    wanted = [x.upper() for x in letters]
    return wanted.index(head) if head and head in wanted else -1


@lru_cache(maxsize=None)
def _stemmed_scorer(*keys: str):
    """rouge_score's scorer of `keys` with the Porter stemmer, built once per set of keys."""
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(list(keys), use_stemmer=True)


def _stemmed_rouge_l(reply: str, reference: str, answer: Callable[[str], str] = mllmu_answer):
    """rouge_score's stemmed ROUGE-L of the extracted answer against the reference."""
    return _stemmed_scorer("rougeL").score(reference, answer(reply))["rougeL"]


def bleu(answer: str, reference: str) -> float:
    """nltk's sentence BLEU of whitespace words against the one reference, smoothing method 1 (their
    `compute_bleu`); 0 for an empty answer."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    return float(sentence_bleu([reference.split()], answer.split(), smoothing_function=SmoothingFunction().method1))


def official_columns(answer: Callable[[str], str]) -> Callable[[str, str], dict[str, float]]:
    """The generation columns both official eval.py files report beside ROUGE-L, of `answer(reply)`: stemmed
    ROUGE-1 and ROUGE-2 F-measures (`score(ground_truth, answer)`) and BLEU."""
    def columns(reply: str, reference: str) -> dict[str, float]:
        text = answer(reply)
        scores = _stemmed_scorer("rouge1", "rouge2").score(reference, text)
        return {"rouge1": float(scores["rouge1"].fmeasure), "rouge2": float(scores["rouge2"].fmeasure),
                "bleu": bleu(text, reference)}
    return columns


def mllmu_rouge_l(reply: str, reference: str) -> float:
    """rouge_score's ROUGE-L F-measure with the Porter stemmer, reference first, as their eval.py calls it."""
    return float(_stemmed_rouge_l(reply, reference).fmeasure)


def mllmu_rouge_l_recall(reply: str, reference: str) -> float:
    """The same stemmed ROUGE-L, recall: CLEAR's generation metric (somvy/multimodal_unlearning mm/eval.py,
    `eval_rouge_recall`: rouge_score with the Porter stemmer, `score(ground_truth, generated).recall`)."""
    return float(_stemmed_rouge_l(reply, reference).recall)


def whole_rouge_l(reply: str, reference: str) -> float:
    """The stemmed ROUGE-L F-measure of the whole reply (CLEAR and MMUnlearner cut nothing from theirs)."""
    return float(_stemmed_rouge_l(reply, reference, str).fmeasure)


def whole_rouge_l_recall(reply: str, reference: str) -> float:
    """CLEAR's generation metric: `rouge_scorer.score(ground_truth, generated)["rougeL"].recall`, stemmed."""
    return float(_stemmed_rouge_l(reply, reference, str).recall)


def mmunlearner_letter(reply: str, letters: tuple[str, ...] = LETTERS) -> int:
    """MMUnlearner's MLLMU_eval.py: every character but [a-zA-Z0-9] removed from the reply, then its first one
    upper-cased, if it is an option letter (else -1): "(B)" and "**B**" read as B, where MLLMU-Bench reads none."""
    return _letter_index(re.sub(r"[^a-zA-Z0-9]", "", reply), letters)


def mmunlearner_text_letter(reply: str) -> str:
    """MMUnlearner's MLLMU_eval.py text-only MC (295-299): every character but [a-zA-Z0-9] removed, a space appended,
    the first character upper-cased; compared with Correct_Answer as it is, not checked against the Options."""
    return (re.sub(r"[^a-zA-Z0-9]", "", reply) + " ")[0].upper()


def written_answer(answer_index: int, letters: tuple[str, ...], answer: str):
    """An MC item's Correct_Answer as its file writes it, from its reading (unlearn/eval/items.py `answer_place`):
    its key (`letters`: the Options' keys as written), None where it is null (-1), else the item's `answer`, which
    holds it as written (`f"{Correct_Answer}"`, -2)."""
    if answer_index >= 0:
        return letters[answer_index]
    return None if answer_index == -1 else answer


def whole_cloze(reply: str, reference: str) -> bool:
    """The lower-cased ground truth anywhere in the whole lower-cased reply (MMUnlearner's MLLMU_eval.py)."""
    return reference.lower() in reply.lower()


def mllmu_cloze(reply: str, reference: str) -> bool:
    """Their containment rule: the lower-cased ground truth anywhere in the lower-cased answer."""
    return whole_cloze(mllmu_answer(reply), reference)


@dataclass(frozen=True)
class Scorer:
    name: str
    mc_letter: Callable[[str, tuple[str, ...]], int]
    rouge: Callable[[str, str], float]
    cloze: Callable[[str, str], bool]
    rouge_recall: Callable[[str, str], float]  # reported beside the F-measure as rougeL_recall
    # further generation metrics, by name (the official eval.py files' ROUGE-1, ROUGE-2, BLEU); None: none
    columns: Callable[[str, str], dict[str, float]] | None = None
    # the text-only MC's letter, compared with Correct_Answer as written, not checked against the Options
    # (MMUnlearner's MLLMU_eval.py); None: the text-only MC reads as the image+text MC
    text_mc: Callable[[str], str] | None = None

    def mc_right(self, reply: str, choice: int, answer_index: int, written: tuple[str, ...], answer: str,
                 modality: str) -> bool:
        """Whether a generated MC reply is right: the option it names (`choice`, from `mc_letter`) is the answer's
        place, or, for a text-only item under `text_mc`, that letter is the Correct_Answer as written (`written`:
        the Options' keys as the file writes them; `written_answer`)."""
        if self.text_mc is not None and modality == "text":
            return self.text_mc(reply) == written_answer(answer_index, written, answer)
        return choice == answer_index

    def score(self, task: str, reply: str, answer: str, options: tuple[str, ...] = (),
              letters: tuple[str, ...] = LETTERS, answer_index: int | None = None, modality: str | None = None,
              written: tuple[str, ...] | None = None) -> float:
        """The score of one generated item: MC (generate mode) 1/0, gen ROUGE-L, cloze 1/0. MC compares the
        letter's place with `answer_index` (eval.py compares letters; `mc_right`, with the item's `modality` and
        its Options' keys as `written`, A-D unless given); without it (records from before 2026-12-04) the option's
        text with the answer's, which a repeated option text would also count."""
        if task == "mc":
            choice = self.mc_letter(reply, letters)
            if answer_index is not None:
                return float(self.mc_right(reply, choice, answer_index, written or LETTERS, answer, modality))
            return float(choice >= 0 and options[choice] == answer)
        if task == "gen":
            return self.rouge(reply, answer)
        if task == "cloze":
            return float(self.cloze(reply, answer))
        raise ValueError(f"unknown task {task!r}: expected mc, gen or cloze")

    def generation_fields(self, reply: str, answer: str) -> dict:
        """What a generation record keeps beside its score: ROUGE-L recall and, if any, the further columns."""
        fields = {"recall": self.rouge_recall(reply, answer)}
        if self.columns is not None:
            fields["columns"] = self.columns(reply, answer)
        return fields


SCORERS = {
    "embedded": Scorer("embedded", parse_letter, rouge_l, cloze_correct, rouge_l_recall),
    "mllmu_bench": Scorer("mllmu_bench", mllmu_letter, mllmu_rouge_l, mllmu_cloze, mllmu_rouge_l_recall,
                          official_columns(mllmu_answer)),
    "clear": Scorer("clear", mllmu_letter, whole_rouge_l, mllmu_cloze, whole_rouge_l_recall),
    "mmunlearner": Scorer("mmunlearner", mmunlearner_letter, whole_rouge_l, whole_cloze, whole_rouge_l_recall,
                          official_columns(str), mmunlearner_text_letter),
}


def get_scorer(name: str) -> Scorer:
    if name not in SCORERS:
        raise ValueError(f"eval.scorer={name!r}: expected one of {sorted(SCORERS)}")
    return SCORERS[name]
