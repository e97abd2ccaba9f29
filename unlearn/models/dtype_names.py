"""The weight precisions a setting may name: `eval.dtype`, `method.reference_dtype`, `finetune.dtype` and the
`*.start_precision` keys.

Why apart from unlearn/models/precision.py, which casts weights to them: the checks before a run read the names
(unlearn/before_run.py), and the casts need torch (1-3 s to import).
"""

from __future__ import annotations

DTYPE_NAMES = ("float32", "bfloat16", "float16")
START_PRECISIONS = ("float16", "bfloat16")  # *.start_precision: the half precisions a script may load in


def check_dtype_name(name: str, key: str) -> str:
    if name not in DTYPE_NAMES:
        raise ValueError(f"{key}={name!r}: expected null (the model's own) or one of {list(DTYPE_NAMES)}")
    return name
