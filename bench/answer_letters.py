"""Where the correct option sits, per split and modality, in a benchmark's MC questions.

Why: a letter-generation MC score (`mc_acc_generate`) and a model that collapses onto one letter read the letters'
balance; the embedded default's 50-question forget and test splits are not balanced (docs/guide/limitations.md).
Prints each split's share of A-D (and of `none`, answers that are no letter, where data.on_bad_row=score keeps
them) and what always answering its most common letter would score.

`python -m bench.answer_letters [hydra overrides, e.g. data.forget_split=forget_15]`
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections import Counter

from unlearn.eval.items import flatten


NO_LETTER = "none"  # an MC answer that is no option letter (kept only under data.on_bad_row=score)


def letter_shares(benchmark) -> dict[tuple[str, str], tuple[int, dict[str, float]]]:
    """{(split, modality): (questions, {letter: share})} over the benchmark's MC items."""
    out = {}
    for split in benchmark.eval:
        items = [it for it in flatten(split, benchmark.eval[split], lambda images: [None] * len(images))
                 if it.task == "mc"]
        for modality in sorted({it.modality for it in items}):
            # a negative answer_index is no letter (data.on_bad_row=score keeps a null or off-letter Correct_Answer:
            # unlearn/eval/items.py ANSWER_NULL, ANSWER_OFF_LETTER): counted apart, not as "ABCD"[-1] = D, [-2] = C;
            # a letter is the item's own key (score keeps a file's, which may add E)
            letters = Counter(it.letters[it.answer_index] if it.answer_index >= 0 else NO_LETTER
                              for it in items if it.modality == modality)
            n = sum(letters.values())
            others = sorted(k for k in letters if k not in ("A", "B", "C", "D", NO_LETTER))
            keys = ("A", "B", "C", "D", *others, *([NO_LETTER] if letters[NO_LETTER] else []))
            out[(split, modality)] = (n, {k: letters[k] / n for k in keys})
    return out


def main(argv=None) -> dict:
    from hydra.utils import instantiate

    from unlearn.config import compose_config

    overrides = list(sys.argv[1:] if argv is None else argv)
    cache = os.environ.get("UNLEARN_CACHE", ".cache")  # the embedded benchmark is generated into (or read from) it
    cfg = compose_config(overrides, tempfile.mkdtemp(), cache)
    shares = letter_shares(instantiate(cfg.data.benchmark))
    for (split, modality), (n, share) in shares.items():
        top = max("ABCD", key=share.get)  # a letter a model can always answer
        print(f"{split:10s} {modality:10s} {n:4d} questions  " + "  ".join(f"{k} {v:.2f}" for k, v in share.items())
              + f"  always {top}: {share[top]:.2f}")
    return shares


if __name__ == "__main__":
    main()
