"""MMUnlearner's choices by name, apart from its method module (Lightning): the checks before a run read them
without it (unlearn/before_run.py)."""

GROUPS = {"vision": ("vision",), "language": ("language",), "both": ("vision", "language")}
PRESERVE_BATCHES = ("separate", "mixed")
CLIP_SCOPES = ("unlearned", "all")
OPTIMIZERS = ("one", "two")  # one: shared (built from retain_optimizer); two: a forget and a retain optimiser
PRESERVE_TEXT = ("train_qa", "eval_mc")
# the LoRA inits (peft's `init_lora_weights`) that start a factor at zero, so the Fisher pass sees no gradient in it
LORA_INITS_WITH_ZERO_FACTOR = (True, "gaussian")
