"""An MLLMU-Bench eval config with no question of one modality, said when the data is read.

Why: the evaluation scores the questions a split holds, so a config whose rows carry no text-only question (every
`Pure_Text_Questions` empty, no `Pure_Text` generation or cloze item), or no image+text one, loses that cell without
a word: it is absent from the run's table and metrics.json, and `unlearn.report` prints n/a (until the fifty-second
session nothing said which file or key left it empty). The embedded benchmark and CLEAR leave cells empty by design
(CLEAR has no text-only MC), so only the MLLMU-Bench loader asks.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

def questions_per_modality(rows: list[dict]) -> dict[str, int]:
    """How many MC, generation and cloze questions of each form `rows` (internal eval rows) hold, each read into its
    form as the evaluation reads it (unlearn/eval/items.py: MC_KEYS, FORM_OF_TYPE, text where the Type is neither)."""
    from unlearn.eval.items import FORM_OF_TYPE, MC_KEYS

    counts = dict.fromkeys(MC_KEYS.values(), 0)
    for row in rows:
        for key, form in MC_KEYS.items():
            counts[form] += len(row["Classification_Task"][key])
        for task in ("Generation_Task", "Mask_Task"):
            for item in row[task]:
                counts[FORM_OF_TYPE.get(item["Type"], "text")] += 1
    return counts


def warn_empty_modalities(rows: list[dict], label: str, split: str) -> list[str]:
    """Warn, naming the config (`label`, with its files) and the keys to fill, for each modality with no question
    in `rows`; `split` is the evaluated split (forget, retain, test, untouched). Returns those modalities, on every
    rank; only rank 0 warns (every DDP process loads the benchmark: under trainer=ddp the warning was printed once
    per process, until 2026-12-07)."""
    from unlearn.eval.items import FORM_OF_TYPE, MC_KEYS
    from unlearn.run_dir import global_zero

    empty = [m for m, n in questions_per_modality(rows).items() if n == 0]
    for modality in empty if global_zero() else ():
        mc_key = next(k for k, form in MC_KEYS.items() if form == modality)
        kind = next(t for t, form in FORM_OF_TYPE.items() if form == modality)
        log.warning(
            "%s: none of its %d rows holds %s question (Classification_Task.%s empty, no Generation_Task or "
            "Mask_Task item of Type '%s'): %s/%s is not scored, absent from the run's table and metrics.json and "
            "n/a in unlearn.report; add such questions to its rows to score it", label, len(rows),
            "an image+text" if modality == "multimodal" else "a text-only", mc_key, kind, split, modality)
    return empty
