"""From gathered moments to one score per neuron: MANU's two scoring variants and an untargeted control."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from unlearn.manu.choices import VARIANTS
from unlearn.manu.importance import PAPER_WEIGHTS, REFERENCE_WEIGHTS, paper_score, reference_score
from unlearn.manu.moments import Moments

KEYS = ("forget/multimodal", "forget/text", "retain/multimodal", "retain/text")


def neuron_scores(moments: Mapping[str, Mapping[str, Moments]], towers: Mapping[str, str],
                  variant: str = "paper", weights: Mapping[str, float] | None = None,
                  seed: int = 0) -> dict[str, torch.Tensor]:
    """paper: S = I(forget) / I(retain), I mixing multimodal and text-only moments (the paper's formulas).

    reference: the authors' code, which scores vision-tower neurons from the multimodal passes and
    language-model neurons from the text-only passes (each tower with its own modality), per module here.

    random: the untargeted control, scores uniform in [0, 1) drawn from `seed` whatever the statistics say,
    so that the top alpha% is as many neurons per tower (or layer) as MANU prunes, chosen at random; what
    MANU forgets beyond it is what its scores add. The same on every rank (one seeded CPU generator).
    """
    missing = [k for k in KEYS if k not in moments]
    if missing:
        raise ValueError(f"statistics lack {missing}; the pass needs forget and retain in both forms")
    modules = list(moments[KEYS[0]])
    fm, ft, rm, rt = (moments[k] for k in KEYS)
    if variant == "paper":
        w = {**PAPER_WEIGHTS, **weights} if weights else dict(PAPER_WEIGHTS)  # a partial manu.weights: over these
        return {n: paper_score(fm[n], ft[n], rm[n], rt[n], w) for n in modules}
    if variant == "reference":
        w = {**REFERENCE_WEIGHTS, **weights} if weights else dict(REFERENCE_WEIGHTS)
        own = {n: "multimodal" if towers[n] == "vision" else "text" for n in modules}
        return {n: reference_score(moments[f"forget/{own[n]}"][n], moments[f"retain/{own[n]}"][n], w)
                for n in modules}
    if variant == "random":
        generator = torch.Generator().manual_seed(int(seed))
        return {n: torch.rand(fm[n].sum.shape, generator=generator, dtype=torch.float64).to(fm[n].sum.device)
                for n in modules}
    raise ValueError(f"manu.score={variant!r}: expected one of {', '.join(VARIANTS)}")
