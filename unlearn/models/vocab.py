"""`*.resize_embeddings`: the vocabulary cut to the tokenizer's length before unlearning, as some official scripts do.

MLLMU-Bench's baselines/GA.py and GA_Difference.py and MMUnlearner's baselines/MLLMU_manifold.py call
`model.resize_token_embeddings(len(processor.tokenizer))` whatever the sizes; llava-1.5-7b-hf's embeddings and
lm_head have 32064 rows (padded) against the tokenizer's 32002, so those runs drop 62 rows and take the softmax
over 32002 logits, and the model they save is 32002 wide. KL_Min.py, NPO.py and finetune.py resize only when the
tokenizer is larger, which it never is there (`null` here). MMUnlearner's mask scripts (MLLMU_gen_mask.py,
CLEAR_gen_mask.py) do not resize: `mmunlearner.resize_embeddings` cuts after the mask pass
(unlearn/methods/mmunlearner.py `resized_with_masks`).
"""

from __future__ import annotations

RESIZES = (None, "tokenizer")


def check_resize(setting: str | None, key: str) -> None:
    if setting not in RESIZES:
        raise ValueError(f"{key}={setting!r}: expected null or 'tokenizer'")


def resize_embeddings(model, tokenizer, setting: str | None, key: str) -> None:
    """`setting="tokenizer"`: input embeddings and lm_head to `len(tokenizer)` rows (transformers'
    resize_token_embeddings: the first rows kept, new ones initialised by it); None: untouched."""
    check_resize(setting, key)
    if setting == "tokenizer" and model.get_input_embeddings().weight.shape[0] != len(tokenizer):
        model.resize_token_embeddings(len(tokenizer))
