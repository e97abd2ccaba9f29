"""The teaching recipe's optional settings checked, apart from its Lightning module: the checks before a run read
them without Lightning (unlearn/before_run.py)."""

from __future__ import annotations

from unlearn.models.dtype_names import DTYPE_NAMES, START_PRECISIONS

# finetune.precision: the Lightning precisions a teaching run may override the trainer's with
PRECISIONS = ("32-true", "bf16-mixed", "bf16-true", "16-mixed", "16-true", "64-true")


def check_settings(fcfg) -> None:
    """The optional keys of the finetune config (absent from configs/finetune/default.yaml so that the cached
    vanilla models of the default recipe keep their keys): a bad value names its key."""
    people = fcfg.get("people", "all")
    if people not in ("all", "without_forget"):
        raise ValueError(f"finetune.people={people!r}: expected all or without_forget")
    from unlearn.settings import boolean, check_lora, optional_one_of, optional_positive_int

    from unlearn.loss_settings import TOKEN_MEANS

    optional_one_of(fcfg.get("token_mean"), TOKEN_MEANS, "finetune.token_mean", "global")

    optional_one_of(fcfg.get("dtype"), DTYPE_NAMES, "finetune.dtype", "the model's own")
    optional_one_of(fcfg.get("start_precision"), START_PRECISIONS, "finetune.start_precision")
    precision = fcfg.get("precision")
    if precision is not None and str(precision) not in PRECISIONS:
        raise ValueError(f"finetune.precision={precision!r}: expected null (the trainer's) or one of {list(PRECISIONS)}")
    clip = fcfg.get("gradient_clip_val")
    if clip is not None and (isinstance(clip, bool) or not isinstance(clip, (int, float)) or clip < 0):
        raise ValueError(f"finetune.gradient_clip_val={clip!r}: expected null (no clipping) or a number >= 0")
    optional_positive_int(fcfg.get("accumulate_grad_batches"), "finetune.accumulate_grad_batches", "the trainer's")
    label_prefix = fcfg.get("label_prefix", False)
    boolean(label_prefix, "finetune.label_prefix")
    if label_prefix and fcfg.answer_only:
        raise ValueError("finetune.label_prefix=true labels the prompt's prefix, which needs finetune.answer_only=false "
                         "(the question labelled too)")
    from unlearn.data.writings import check_answer_ids, check_sequences
    from unlearn.models.vocab import check_resize

    sequences = fcfg.get("sequences", "template")
    check_sequences(sequences, fcfg.answer_only, label_prefix, "finetune.sequences")
    check_answer_ids(fcfg.get("answer_ids", "without_specials"), sequences, fcfg.answer_only, label_prefix,
                     "finetune.sequences")
    check_resize(fcfg.get("resize_embeddings"), "finetune.resize_embeddings")
    from unlearn.data.choices import TRAIN_PAIRS
    from unlearn.models.chat_template import FAMILIES

    optional_one_of(fcfg.get("family"), FAMILIES, "finetune.family")
    optional_one_of(fcfg.get("train_pairs"), TRAIN_PAIRS, "finetune.train_pairs")
    check_lora(fcfg.get("lora"), "finetune.lora")
