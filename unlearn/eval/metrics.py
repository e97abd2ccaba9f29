"""Per-item metric functions and their aggregation into flat `{stage}/{split}/{modality}/{metric}` keys."""

from __future__ import annotations

from collections import defaultdict

from torchmetrics.functional.text import rouge_score

TASK_METRIC = {"mc": "mc_acc", "gen": "rougeL", "cloze": "cloze_acc"}


def normalize(text: str) -> list[str]:
    return text.lower().replace(".", " ").replace(",", " ").split()


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure (torchmetrics); 0 when either side is empty."""
    if not normalize(prediction) or not normalize(reference):
        return 0.0
    return float(rouge_score(prediction, reference, rouge_keys="rougeL")["rougeL_fmeasure"])


def mc_choice(option_scores: list[float]) -> int:
    """Index of the best-scoring option; ties go to the first, so the decision is deterministic."""
    best = 0
    for i, s in enumerate(option_scores):
        if s > option_scores[best]:
            best = i
    return best


def parse_letter(text: str, letters: tuple[str, ...] = ("A", "B", "C", "D")) -> int:
    """MLLMU-Bench's reading of a generated MC answer: the first character of the stripped reply, upper-cased,
    if it is an option letter (else -1, counted wrong). Source: `evaluate_classification` in its eval.py."""
    head = text.strip()[:1].upper()
    wanted = [x.upper() for x in letters]
    return wanted.index(head) if head and head in wanted else -1


def cloze_correct(prediction: str, reference: str) -> bool:
    """The generated text starts with the blank's words (case and punctuation ignored)."""
    ref = normalize(reference)
    return bool(ref) and normalize(prediction)[: len(ref)] == ref


def aggregate(records: list[dict], stage: str) -> dict[str, float]:
    """Mean score per (split, modality, task) as flat keys; counts go under `.../n_{task}`. A record may
    name its own metric (`mc_acc_generate`: the same MC item scored a second way, eval.mc_also)."""
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for r in records:
        key = f"{stage}/{r['split']}/{r['modality']}/{r.get('metric') or TASK_METRIC[r['task']]}"
        sums[key] += float(r["score"])
        counts[key] += 1
    out = {k: sums[k] / counts[k] for k in sorted(sums)}
    out.update({k.rsplit("/", 1)[0] + f"/n_{k.rsplit('/', 1)[1]}": counts[k] for k in sorted(counts)})
    return out
