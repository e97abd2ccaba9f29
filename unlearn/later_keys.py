"""Settings added after models, evaluations and runs were saved without them, with the defaults at which they
read as absent: so a vanilla model or a cached before-evaluation keeps its cache key (unlearn/pipeline.py), and
runs made before and after a key existed keep one seed group (unlearn/report.py `setting_of`)."""

# data.spec: CLEAR's training pairs (2026-12-03); the benchmark's arguments read them too
SPEC = {"train_pairs": "both_forms", "caption_prompt": "cycle"}
# top-level data keys that shape the evaluation only (CLEAR's eval_rows, 2026-12-03); read by the benchmark too
DATA = {"eval_rows": None}
# the rest of a run's config, dotted (2026-12-03)
RUN = {"method.warmup_epochs": 0, "mmunlearner.clip_retain": True, "method.retain_draw": "epoch",
       "method.start_precision": None, "method.answer_ids": "without_specials", "mmunlearner.start_precision": None,
       "model.forward_positions": "mrope", "method.image_labels": None, "mmunlearner.image_labels": None,
       "finetune.token_mean": "global", "method.token_mean": "global",
       "mmunlearner.token_mean": "global",  # 2026-12-04, thirtieth session
       "method.npo_empty_rows": "skip"}  # 2026-12-06
# eval keys that shape the evaluation (MMUnlearner's shots, 2026-12-03); read by the before-evaluation's key too
# eval.shot_order (the forty-third session): absent, shots were laid out in the looked-up rows' order, `lookup`
EVAL = {"shot_people": None, "shot_order": "lookup"}
# the protocols whose prompts carry few-shot examples (unlearn/eval/protocol.py make_prompts)
SHOT_PROTOCOLS = ("mllmu_bench", "mmunlearner")


def shot_order_read(ev, model=None) -> bool:
    """Whether `eval.shot_order` can move a record: under a protocol with shots, with shots on, where a task may
    draw two people or more (one person's blocks have no order: MMUnlearner's protocol draws one per task unless
    `eval.shot_people` says more; mllmu_bench's LLaVA cloze draws two, its Idefics2 one). `model`: the model
    config, whose `model_types` (the families its checkpoint may be; another is refused as it loads) tell the
    mllmu_bench draws apart where each draws one per task; without them a draw of two is assumed. Elsewhere it
    reads as absent (the before-evaluation key, the report's seed groups), so its default moves no embedded run
    and no MMUnlearner one."""
    if ev.get("protocol") not in SHOT_PROTOCOLS or ev.get("few_shot", True) is False:
        return False
    people = dict(ev.get("shot_people") or {})
    from unlearn.eval.protocol import MMUNLEARNER_SHOT_PEOPLE, SHOT_PEOPLE, people_per_task

    if ev.get("protocol") == "mmunlearner":
        return any(int(k) > 1 for k in {**MMUNLEARNER_SHOT_PEOPLE, **people}.values())
    families = (model or {}).get("model_types") or ()
    one_each = bool(families) and all(people_per_task(task, f) <= 1 for task in SHOT_PEOPLE for f in families)
    return (not one_each and set(people) != {"mc", "cloze"}) or any(int(k) > 1 for k in people.values())


# How a saved model is loaded (pipeline.load_configured): the precision and attention its weights compute in and
# the processor it prompts with, besides the weights on disk. Keyed since the thirty-first session (2026-12-04):
# until then `model.dtype=bfloat16` reused the float32 run's before-evaluation, and an organism's vanilla model
# taught from a bfloat16 load of the base was reused as the float32 one
LOADING = {"dtype": "float32", "attn_implementation": None, "template": None, "image_processor": None,
           "tokenizer": None, "forward_positions": "mrope",
           # where the tokenizer and image processor are read (2026-12-06; null: the checkpoint's own files)
           "processor_path": None}
# The LoRA targets every shipped model config names (model.lora_target_modules), absent from the vanilla key
# there: a teaching with finetune.lora and other targets is keyed by them (2026-12-04, thirty-first session)
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# the trainer keys that cannot move what a stage computes; any other trainer key a config adds
# (`+trainer.limit_val_batches=1`, `+trainer.max_steps=5`, `+trainer.callbacks=[...]`) enters the vanilla and
# before-evaluation keys (2026-12-04, thirty-first session: until then a before-evaluation cut to one batch was
# cached under the full one's key)
TRAINER_NEUTRAL = ("_target_", "log_every_n_steps", "enable_checkpointing", "default_root_dir", "logger",
                   "enable_progress_bar", "enable_model_summary")
# data keys that shape the evaluation rows a teaching probe reads (finetune.target_mc_acc), at their defaults
PROBE_ROWS = {"eval_rows": None, "retain_images": "perturbed"}
# the generators' versions the keys were made at: a later version enters the vanilla key (the embedded
# benchmark, 2026-12-04) and the base key (the background world), so a changed generator re-teaches
GENERATOR_VERSION = 4
WORLD_VERSION = 1


def _dotted() -> dict[str, object]:
    out = dict(RUN)
    out.update({f"data.{k}": v for k, v in DATA.items()})
    out.update({f"eval.{k}": v for k, v in EVAL.items()})
    for part in ("spec", "benchmark"):
        out.update({f"data.{part}.{k}": v for k, v in SPEC.items()})
    out.update({f"data.benchmark.{k}": v for k, v in DATA.items()})
    return out


DOTTED = _dotted()  # every later key as a dotted path of a saved config, with its default


def split_floor_read(finetune) -> bool:
    """Whether `finetune.target_split_mc_acc` (2026-12-04) is read: set, with a probe (`target_mc_acc`) for it to
    follow. Where it is not, it reads as absent: the vanilla key and the report's seed groups are those of the
    recipe before it."""
    return finetune.get("target_split_mc_acc") is not None and finetune.get("target_mc_acc") is not None


# the token means (2026-12-04, thirtieth session): global and process are the same on one process, where the
# official presets' `process` must not part their runs from the runs made before the keys existed
TOKEN_MEANS = ("finetune.token_mean", "method.token_mean", "mmunlearner.token_mean")


def one_process(trainer: dict) -> bool:
    """Whether a run's trainer config runs one process as written (devices 1 on one node; `auto` may be several)."""
    return str(trainer.get("devices", 1)) == "1" and str(trainer.get("num_nodes", 1) or 1) == "1"


def loading(model) -> dict:
    """`model`'s loading settings (LOADING) as the keys read them: resolved, without those at their defaults."""
    from omegaconf import OmegaConf

    node = {k: model.get(k, default) for k, default in LOADING.items()}
    node = {k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v for k, v in node.items()}
    return without_defaults(node, LOADING)


def trainer_extras(trainer: dict, listed: tuple) -> dict:
    """The trainer keys a config added beyond `listed` (those a key already reads) and TRAINER_NEUTRAL."""
    return {k: v for k, v in trainer.items() if k not in listed and k not in TRAINER_NEUTRAL}


def without_defaults(node: dict, defaults: dict) -> dict:
    """`node` without the keys of `defaults` that hold their default there."""
    return {k: v for k, v in node.items() if not (k in defaults and v == defaults[k])}
