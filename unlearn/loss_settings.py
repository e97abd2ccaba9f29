"""The losses' settings (`*.token_mean`, `method.kl_reduction`, `method.npo_log_ratio`, `method.npo_empty_rows`),
apart from the losses (unlearn/losses.py): the checks before a run read them without torch (unlearn/before_run.py).
"""

from __future__ import annotations

# what each process's means average over under DDP (finetune.token_mean, method.token_mean, mmunlearner.token_mean):
# global, the whole global batch's items (`global_mean`: one process's step); process, its own batch's, as a
# per-device `outputs.loss` is (the official scripts'), which DDP then averages. One process: the same
TOKEN_MEANS = ("global", "process")
KL_REDUCTIONS = ("answer_mean", "position_mean", "batch_sum")
NPO_LOG_RATIOS = ("sequence_sum", "token_mean")
# NPO's rows with no label token (an answer cut away, an empty answer) under log_ratio=sequence_sum: skip, left out of
# the mean (this project's default); count, each a row of r = 0, adding (2/beta) ln 2 to the sum and one to the
# count, as open-unlearning's compute_dpo_loss takes `.mean()` over every row (src/trainer/utils.py:66)
NPO_EMPTY_ROWS = ("skip", "count")
