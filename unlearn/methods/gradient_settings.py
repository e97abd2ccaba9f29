"""The gradient baselines' setting values, apart from their Lightning module: the checks before a run read them
without importing Lightning (unlearn/before_run.py)."""

LOSSES = ("ga", "grad_diff", "kl", "npo")
NEEDS_REFERENCE = {"kl", "npo"}
SCHEDULES = ("paired", "sequential", "interleaved")
LR_DECAYS = (None, "linear")
FORGET_FORMS = {"multimodal": ("multimodal",), "text": ("text",), "both": ("multimodal", "text")}
RETAIN_DRAWS = ("epoch", "with_replacement")
