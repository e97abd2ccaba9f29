"""A relearning attack: does forgetting survive a few steps of fine-tuning on a little forget data?

After unlearning, a copy of the model is fine-tuned for `steps` steps on all the QA pairs of `fraction` of the
forget people (whole people, drawn by the run's seed: at forget_10 and 0.2, two people; `data: forget`) or of the
retain people (`data: retain`), on their clean portraits (the forget split's own evaluation items, for those
people), then re-evaluated on the held-out test questions (paraphrases, unseen portraits) and the forget set, as
stage `relearn`. `relearn/forget` mixes the attacked people, re-taught verbatim, with the others. The unlearned model
itself is what the run saves; the attacked copy is discarded.

MANU's pruned neurons stay pruned under this attack with the default unit (manu.neuron=input,
manu.prune.mode=zero): a zeroed intermediate neuron has zero input rows and a zero output column, so every
gradient reaching those weights is zero (a saddle), and weight decay keeps zeros at zero. Where one side alone
is zeroed (manu.selection=official, manu.neuron=output, manu.prune.mode=scale) they take gradient and regrow.
"""

from __future__ import annotations

import copy
import functools

import torch

from unlearn.data.collate import collate
from unlearn.data.sequences import QASequences
from unlearn.methods.finetune import FinetuneModule, shuffled_loader


def attack_rows(benchmark, data: str, fraction: float, seed: int):
    if data not in ("forget", "retain"):
        raise ValueError(f"eval.relearn.data={data!r}: expected 'forget' or 'retain'")
    if not 0 < fraction <= 1:
        raise ValueError(f"eval.relearn.fraction={fraction}: expected a fraction in (0, 1]")
    rows = benchmark.train_rows(data).shuffle(seed=seed)
    # whole people, in the order the shuffle first meets them: on a benchmark with one row per person (MLLMU-Bench,
    # the embedded one) the first rows of the shuffle, as before 2026-12-05; on CLEAR (a row per image and one per
    # person's text QA) every row of each drawn person, where the rows alone drew images scattered over everyone
    ids = rows["ID"]
    people = list(dict.fromkeys(ids))
    drawn = set(people[:max(1, round(len(people) * fraction))])
    return rows.select([i for i, pid in enumerate(ids) if pid in drawn])


def relearn(ctx, evaluate) -> tuple[dict, list[dict]]:
    rcfg = ctx.cfg.eval.relearn
    rows = attack_rows(ctx.benchmark, rcfg.data, rcfg.fraction, ctx.cfg.seed)
    data = QASequences(rows, ctx.processor, ("multimodal", "text"), augment=False)
    pad = ctx.processor.tokenizer.pad_token_id
    loader = shuffled_loader(data, rcfg.batch_size, lambda b: collate(b, pad))
    attacked = copy.deepcopy(ctx.model)
    module = FinetuneModule(attacked, functools.partial(torch.optim.AdamW, lr=rcfg.lr, weight_decay=0.0),
                            config_key="eval.relearn")
    ctx.trainer(max_steps=rcfg.steps, max_epochs=-1, enable_checkpointing=False, logger=False,
                enable_model_summary=False, use_distributed_sampler=False).fit(module, loader)
    attacked.eval()
    original, ctx.model = ctx.model, attacked
    try:
        return evaluate(ctx, "relearn", splits=list(rcfg.splits))
    finally:
        ctx.model = original
