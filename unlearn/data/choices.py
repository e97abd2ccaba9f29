"""The values data settings choose from, apart from the loaders (which import `datasets`, 0.5 s): the settings check
reads them before a run imports anything heavy (unlearn/before_run.py)."""

# the forms a person's questions are asked in (finetune.forms, unlearn/data/sequences.py)
FORMS = ("multimodal", "text")
EVAL_SPLITS = ("forget", "retain", "test", "untouched")  # eval.splits, eval.relearn.splits
# CLEAR's data.spec.train_pairs (and finetune.train_pairs) and data.spec.caption_prompt (unlearn/data/clear.py)
TRAIN_PAIRS = ("both_forms", "clear", "captions")
CAPTION_PROMPTS = ("cycle", "random_once")
