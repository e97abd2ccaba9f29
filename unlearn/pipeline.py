"""The story every run tells: source model -> evaluate before -> method -> evaluate after -> artifacts.

Methods are plain callables `method(ctx) -> None` that change `ctx.model` (in place, or by rebinding it: a
merged LoRA model, a reloaded checkpoint); the pipeline owns
loading, evaluation, saving and logging so every method is measured the same way.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from unlearn.data.benchmark import Benchmark, first_people
from unlearn.data.choices import EVAL_SPLITS
from unlearn.data.hub import local_files_state
from unlearn.data.mini_spec import GENERATOR_VERSION
from unlearn.eval.evaluator import EvaluationModule
from unlearn.eval.items import flatten
from unlearn.eval.metrics import aggregate, derived_metrics
from unlearn.eval.protocol import check_shot_options, make_prompts
from unlearn.eval.scorers import get_scorer
from unlearn.eval.table import before_after_table
from unlearn import later_keys
from unlearn.agreed import agreed, join_outside_launch
from unlearn.before_run import check_launch_before_run, check_settings_before_run
from unlearn.io import atomic_dir, build_cached_dir, config_hash, json_ready, reuse_cached, write_json, write_text
from unlearn.models.checkpoint_files import CheckpointError, configured_model_types, looks_local, resolved_path
from unlearn.models.loading import load_model, recipe_processor, save_model
from unlearn.models.precision import cast_copy, dtype_named
from unlearn.provenance import TEACHING_FILE, differences, float_environment, machine_part, running_code
from unlearn.rng import resumed, rng_state, seeded
from unlearn.run_dir import check_fresh_run_dir, check_writable_dir, claimed_run_dir, global_zero, run_reads
from unlearn.run_names import hydra_overrides, name_logger
from unlearn.settings import check_input_paths, reference_items, refusing_before_run, relearn_splits
from unlearn.trainer_keys import keyed_trainer, teaching_processes

log = logging.getLogger(__name__)


class _LastLoggedStep(L.Callback):
    """Records where a logging Trainer's rows end (RunContext.logged_step) as it tears down, without keeping it."""

    def __init__(self, steps: list):
        self.steps = steps

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.steps.append(getattr(trainer.fit_loop.epoch_loop, "_batches_that_stepped", trainer.global_step))


@dataclass
class RunContext:
    cfg: DictConfig
    benchmark: Benchmark
    model: torch.nn.Module
    processor: object
    out_dir: Path
    logger: object | None = None
    artifacts: dict = field(default_factory=dict)  # what a method wants recorded in metrics.json
    # the last logged step of each Trainer that logged to this run's logger, whose steps the run's own rows
    # follow (logged_step): the steps, not the Trainers, which hold their module (a KL/NPO reference copy, the
    # Fisher pass's sums) and optimiser state through the evaluations otherwise
    logged_steps: list = field(default_factory=list, repr=False)

    def logged_step(self) -> int:
        """The step of a row the run logs itself (the evaluations): the logging Trainers' last step, 0 before any.
        Why: Lightning's CSVLogger numbers a row logged without a step by the rows it holds unsaved, none once a
        Trainer saved them, so until the 42nd session metrics.csv put the after-evaluation at step 0, before the
        training losses; W&B drew it at the last step only through its step_sync."""
        return max(self.logged_steps, default=0)

    def trainer(self, **overrides) -> L.Trainer:
        """A Trainer from `cfg.trainer`, with this run's logger unless overridden."""
        warn_unread_trainer_keys(self.cfg.trainer, overrides)
        overrides.setdefault("logger", self.logger if self.logger is not None else False)
        from lightning.pytorch.callbacks import Callback

        from callbacks.finite_steps import FiniteSteps  # a method of one's own too: no NaN reaches the weights
        from callbacks.interrupt_notice import InterruptNotice
        from callbacks.lost_updates import LostUpdateCheck  # every Trainer that trains says when its steps are lost
        from callbacks.random_state import KeepRandomState
        from callbacks.self_sharding import SelfShardingCheck
        from callbacks.trained_batches import TrainedBatches  # what each fit trained, for metrics.json

        given = overrides.get("callbacks")
        if given is None and self.cfg.trainer.get("callbacks"):  # `+trainer.callbacks=[...]`: kept, as before
            given = instantiate(self.cfg.trainer.callbacks)
        given = [given] if isinstance(given, Callback) else list(given or ())
        overrides["callbacks"] = [*given, LostUpdateCheck(self.artifacts.setdefault("lost_steps", [])),
                                  KeepRandomState(), InterruptNotice(), FiniteSteps(),
                                  SelfShardingCheck(), TrainedBatches(self.artifacts.setdefault("trained", []))]
        if self.logger is not None and overrides["logger"] is self.logger:
            overrides["callbacks"].append(_LastLoggedStep(self.logged_steps))
        return instantiate(self.cfg.trainer, **overrides)

    @property
    def is_global_zero(self) -> bool:
        """Rank 0, also before any process group exists (run_dir.global_zero)."""
        return global_zero()


# what configs/trainer/cpu.yaml (every trainer preset's base) sets a stage's own value over without a word
TRAINER_STAGE_SET = {"gradient_clip_val": 1.0, "enable_checkpointing": False}
_warned_trainer_keys: set[str] = set()


def warn_unread_trainer_keys(trainer: DictConfig, overrides: dict) -> list[str]:
    """Warn (once per key) where a stage sets a Trainer argument the config also sets, to another value: the
    stage's wins (teaching's finetune.epochs over `+trainer.max_epochs=3`, MMUnlearner's own clipping over
    `trainer.gradient_clip_val`), and until 2026-12-05 the config's was dropped silently. The values every
    trainer preset sets and the stages replace (TRAINER_STAGE_SET) are not warned. Returns the keys warned."""
    out = []
    for key, value in overrides.items():
        if key in ("logger", "callbacks") or key not in trainer:
            continue
        mine = OmegaConf.to_container(trainer[key], resolve=True) if OmegaConf.is_config(trainer[key]) \
            else trainer[key]
        if mine == value or (key in TRAINER_STAGE_SET and mine == TRAINER_STAGE_SET[key]):
            continue
        out.append(key)
        if key not in _warned_trainer_keys:
            _warned_trainer_keys.add(key)
            log.warning("trainer.%s=%r is not what this stage runs: it sets %s=%r itself (from its own settings, "
                        "under finetune.*, method.* or mmunlearner.*)", key, mine, key, value)
    return out


# the config sections whose `image_processor` overrides the model's for that recipe's training or statistics data
RECIPE_SECTIONS = ("finetune", "method", "mmunlearner", "manu")


def _require_build(cfg: DictConfig) -> None:
    if not cfg.model.get("build"):
        raise ValueError(f"model={cfg.model.name} is loaded, not built: set model.path to a checkpoint")


def build_fresh_model(cfg: DictConfig):
    _require_build(cfg)
    return instantiate(cfg.model.build)


def initial_model(cfg: DictConfig):
    """Where teaching the benchmark starts: the pretrained base when `model.base` is set (the model organism,
    docs/organism.md), random weights otherwise."""
    if not cfg.model.get("base"):
        return build_fresh_model(cfg)
    _require_build(cfg)
    from unlearn.models.base import ensure_base

    return load_configured(cfg, ensure_base(cfg), "the base model (model.base; delete a corrupt cached one to "
                                                  "pretrain it again)")


PEOPLE_NAMED_BY = "source"  # whose forget / retain people a group teaching holds (vanilla_key), since 2026-12-05


def load_configured(cfg: DictConfig, path, key: str = "model.path"):
    """Load `path` with what the model config says about dtype, attention and the prompt template; an error names
    `key` (the cache's own models are not model.path)."""
    m = cfg.model
    template = OmegaConf.to_container(m.template, resolve=True) if m.get("template") else None
    images = OmegaConf.to_container(m.image_processor, resolve=True) if m.get("image_processor") else None
    tokenizer = OmegaConf.to_container(m.tokenizer, resolve=True) if m.get("tokenizer") else None
    model, processor = load_model(path, m.dtype, key=key, template=template,
                                  attn_implementation=m.get("attn_implementation"), image_processor=images,
                                  tokenizer=tokenizer, model_types=configured_model_types(m),
                                  processor_path=m.get("processor_path"))
    if m.get("gradient_checkpointing"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    from unlearn.models.positions import apply_forward_positions

    return apply_forward_positions(model, m.get("forward_positions", "mrope")), processor


def keyed_processor(path) -> dict | str:
    """`model.processor_path` as the keys read it: a local directory by its resolved path and its files (a
    processor edited or copied over in place reads anew), a hub id as it is."""
    if not looks_local(path):
        return str(path)
    return {"path": resolved_path(path), "files": local_files_state(Path(str(path)).expanduser())}


def keyed_loading(model) -> dict:
    """How a saved model is loaded (later_keys.loading), `model.processor_path` as keyed_processor reads it."""
    out = later_keys.loading(model)
    if out.get("processor_path") is not None:
        out["processor_path"] = keyed_processor(out["processor_path"])
    return out


def keyed_spec(spec) -> dict:
    """`data.spec` as the cache keys read it: the keys added later (unlearn/later_keys.py) dropped at their
    defaults."""
    spec = OmegaConf.to_container(spec, resolve=True) if isinstance(spec, DictConfig) else dict(spec)
    return later_keys.without_defaults(spec, later_keys.SPEC)


def keyed_data(data: DictConfig) -> dict:
    """The whole `data` config as the before-evaluation key reads it: the later keys dropped at their defaults,
    from it, its spec and its benchmark's arguments (which read them)."""
    out = later_keys.without_defaults(OmegaConf.to_container(data, resolve=True), later_keys.DATA)
    if "forget_modality" in out:  # what a gradient method trains on, not what is evaluated (as keyed before)
        out["forget_modality"] = "multimodal"
    if files := local_files_state(data.get("path")):  # a local snapshot's files, not its path alone
        out["files"] = files
    if isinstance(out.get("spec"), dict):
        out["spec"] = keyed_spec(out["spec"])
    if isinstance(out.get("benchmark"), dict):
        out["benchmark"] = later_keys.without_defaults(out["benchmark"], {**later_keys.SPEC, **later_keys.DATA})
        # where the cache lies is not what it holds: a moved or copied .cache kept its vanilla models but
        # evaluated them again until 2026-12-03
        out["benchmark"].pop("cache_dir", None)
    return out


# the loaders the shipped data configs name: another `data.benchmark._target_` (a user's own) enters the vanilla key
SHIPPED_LOADERS = ("unlearn.data.benchmark.load_mllmu_mini", "unlearn.data.benchmark.load_mllmu_bench",
                   "unlearn.data.benchmark.load_clear")


def benchmark_deviations(data: DictConfig) -> dict:
    """The `data.benchmark` arguments that say other than what the vanilla key reads: each is an interpolation of
    `data.spec` or of a top-level data key in the shipped configs, so a direct `data.benchmark.text_rule=clean`
    (or `data.benchmark.spec.num_people=50`) loads other rows than the spec names. Until 2026-12-05 the model
    taught on them was cached under the spec's key. Empty where every argument agrees (the keys stay as they were)."""
    if not data.get("benchmark"):
        return {}
    top = OmegaConf.to_container(data, resolve=True)
    spec = top["spec"] if isinstance(top.get("spec"), dict) else {}
    named = {**{k: v for k, v in top.items() if k != "benchmark"}, **spec}  # what each argument interpolates
    absent = object()  # an argument no other key names (a user's loader's): keyed as it is
    return {name: value for name, value in top["benchmark"].items()
            if not (name == "cache_dir" or (name == "_target_" and value in SHIPPED_LOADERS))
            and value != (spec if name == "spec" else named.get(name, absent))}


def vanilla_key(cfg: DictConfig) -> str:
    """The cache key of the vanilla model `cfg` teaches: the hash of `vanilla_parts`."""
    return config_hash(vanilla_parts(cfg))


def vanilla_parts(cfg: DictConfig) -> dict:
    """What determines the vanilla weights: architecture, data, teaching recipe and teaching seed (not
    adapters, not the method's seed). Stored as "seed", the name it had when the run's seed taught, so the
    models cached before `teach_seed` existed keep their keys. The forget split, where it decides who is
    taught (finetune.people=without_forget) or who is probed for the stop (finetune.target_mc_acc); until
    2026-12-02 it was missing, so a forget_5 reference model could be reused as forget_10's. The trainer's
    settings where they are not trainer=cpu's, and on CPU a torch thread count other than 1: until the
    thirteenth session (also 2026-12-02) they were missing, so a model taught by two DDP processes, or on two
    threads, was reused as one taught by one process on one thread (`teaching_trainer`, `teaches_on_cpu`)."""
    from unlearn.settings import FINETUNE_GUARDS, FINETUNE_RESUME

    finetune = OmegaConf.to_container(cfg.finetune, resolve=True)
    for guard in FINETUNE_GUARDS + FINETUNE_RESUME:  # they check the run or say where it resumes: the same weights
        finetune.pop(guard, None)
    if not finetune.get("image_processor"):  # no training-only image settings: the key models had before it
        finetune.pop("image_processor", None)
    if finetune.get("image_labels") is None:  # as loaded: the key models had before it (2026-12-03)
        finetune.pop("image_labels", None)
    if not later_keys.split_floor_read(finetune):  # the key before it (2026-12-04)
        finetune.pop("target_split_mc_acc", None)
    lora = finetune.get("lora") or {}
    if lora.get("enabled") and not lora.get("target_modules"):  # the model's targets, where not the shipped ones
        targets = OmegaConf.to_container(cfg.model.lora_target_modules, resolve=True) \
            if OmegaConf.is_config(cfg.model.get("lora_target_modules")) else cfg.model.get("lora_target_modules")
        if targets != later_keys.LORA_TARGETS:
            lora["target_modules"] = targets
    build = cfg.model.get("build")  # null for a loaded model (method=finetune model.path=..., teaching_resume)
    parts = {"model": cfg.model.name, "build": OmegaConf.to_container(build, resolve=True)
             if OmegaConf.is_config(build) else build,
             "finetune": finetune,
             "data": keyed_spec(cfg.data.spec), "seed": cfg.teach_seed}
    if parts["data"].get("on_bad_row") == "score":  # it keeps evaluation questions only, which teaching never
        parts["data"]["on_bad_row"] = "skip"  # reads (its probe reads skip's): skip's model, not a re-teaching
    if files := local_files_state(cfg.data.get("path")):  # a local snapshot's files (keyed_data)
        parts["data_files"] = files
    if deviations := benchmark_deviations(cfg.data):
        parts["benchmark"] = deviations
    if cfg.finetune.get("people", "all") != "all" or cfg.finetune.get("target_mc_acc") is not None:
        parts["forget_split"] = cfg.data.forget_split
    if cfg.finetune.get("people", "all") != "all" and (cfg.data.get("eval_rows") is not None
                                                        or cfg.data.get("on_bad_row", "error") != "error"):
        # since 2026-12-05 the forget and retain people are those the source names, not those of the evaluated
        # rows (Benchmark `people`): a group taught under data.eval_rows, or with rows dropped under skip, before
        # then could hold other people
        parts["people_named_by"] = PEOPLE_NAMED_BY
    if cfg.finetune.get("target_mc_acc") is not None:  # the probe reads evaluation rows these shape (CLEAR)
        rows = later_keys.without_defaults({k: cfg.data.get(k) for k in later_keys.PROBE_ROWS if k in cfg.data},
                                           later_keys.PROBE_ROWS)
        if rows:
            parts["probe_rows"] = rows
    if GENERATOR_VERSION != later_keys.GENERATOR_VERSION:  # the rows taught may have changed
        parts["generator"] = GENERATOR_VERSION
    if cfg.model.get("base"):  # stage 1 (unlearn/models/base.py): the weights teaching starts from, as loaded
        from unlearn.models.base import base_identity

        parts["base"] = base_identity(cfg)
        if loading := keyed_loading(cfg.model):
            parts["loading"] = loading
    trainer = teaching_trainer(cfg)
    if trainer != PLAIN_CPU_TRAINER:
        parts["trainer"] = trainer
    # finetune.token_mean moves the weights only on several processes; there it is always keyed, so the models
    # taught on several before it (each process's own mean, Lightning's DistributedSampler order) are not reused
    finetune.pop("token_mean", None)
    if teaching_processes(cfg) > 1:
        finetune["token_mean"] = cfg.finetune.get("token_mean") or "global"
        # since the thirty-first session the ranks keep the random state the one process has as fit starts
        # (callbacks/random_state.py): the models taught on several before it read another batch order
        parts["random_state"] = "kept"
    if keyed_threads(cfg) not in (None, 1):
        parts["threads"] = keyed_threads(cfg)
    return parts


# What of the trainer moves the taught weights: the device, the processes and how their gradients meet, the
# precision, the clipping. trainer=cpu's values are left out of the vanilla key (which held no trainer setting
# before), so the models cached until then keep their keys; any other value enters it.
TEACH_TRAINER_KEYS = ("accelerator", "devices", "num_nodes", "strategy", "precision", "gradient_clip_val",
                      "gradient_clip_algorithm", "accumulate_grad_batches")
PLAIN_CPU_TRAINER = {"accelerator": "cpu", "devices": 1, "precision": "32-true", "gradient_clip_val": 1.0}


def say_batches_per_process(cfg: DictConfig, here: bool = True) -> int:
    """On several processes, say that every batch size is per process: the same command on W processes takes
    global batches W times one process's, so W times fewer steps, another experiment than the one-process run
    (and, where it teaches, another vanilla model under its own key). Documented, and recorded as
    environment.world_size, but until 2026-12-06 nothing in the run's log said it (a DDP audit's finding: GA's
    forget MC 0.8 on one process, 0.6 on two, from one vanilla model). Returns the process count."""
    processes = teaching_processes(cfg)
    if processes > 1 and here:
        sizes = {k: OmegaConf.select(cfg, k) for k in PER_PROCESS_BATCHES}
        sizes = {k: v for k, v in sizes.items() if isinstance(v, int)}
        if not OmegaConf.select(cfg, "eval.relearn.enabled", default=False):
            sizes.pop("eval.relearn.batch_size", None)  # no relearning attack in this run
        # the values in force, and the one-process run whose steps they take (until the forty-fifth session the
        # warning said "divide them by W" whatever they were, also to a user who had: a walk-through's finding)
        now = f" ({', '.join(f'{k}={v}' for k, v in sizes.items())})" if sizes else ""
        one = ", ".join(f"{k}={v * processes}" for k, v in sizes.items()) or "W times the sizes"
        log.warning("%d processes: every training batch size is per process%s, so each step reads %d times one "
                    "process's batch and an epoch takes %d times fewer steps: these take the steps of one process "
                    "at %s (the passes that only read, MANU's statistics and MMUnlearner's Fisher, are alike on "
                    "any number)", processes, now, processes, processes, one)
    return processes


PER_PROCESS_BATCHES = ("method.batch_size", "finetune.batch_size", "mmunlearner.batch_size", "eval.relearn.batch_size")


# what the teaching's and the base pretraining's Trainers set themselves, whatever the config says (warned)
TEACHING_SETS = ("max_epochs", "use_distributed_sampler", "callbacks")


def teaching_trainer(cfg: DictConfig) -> dict:
    """The trainer settings the vanilla and base keys read: TEACH_TRAINER_KEYS, and any key a config added that
    is not known to leave the weights alone (later_keys.TRAINER_NEUTRAL) nor replaced by the teaching
    (TEACHING_SETS: until 2026-12-05 `+trainer.max_epochs=3`, warned as replaced, keyed another model, taught
    again)."""
    trainer = keyed_trainer(cfg)
    return {**{k: trainer[k] for k in TEACH_TRAINER_KEYS if k in trainer},
            **later_keys.trainer_extras(trainer, TEACH_TRAINER_KEYS + TEACHING_SETS)}


def teaching_departures(cfg: DictConfig) -> list[str]:
    """The trainer settings and model dtype under which a teaching departs from trainer=cpu's float32 one, as
    `key=value`. Why: a preset made for unlearning a given checkpoint (experiment=open_unlearning: bf16-true,
    gradient accumulation, bfloat16 weights) that finds no vanilla model teaches the embedded one under its own
    settings, and the log said only "vanilla model missing" (a walk-through's finding, forty-fifth session)."""
    if not cfg.model.get("build"):  # a checkpoint's teaching (a real model) has no default recipe to depart from
        return []
    out = [f"trainer.{k}={'null' if v is None else v}" for k, v in teaching_trainer(cfg).items()
           if PLAIN_CPU_TRAINER.get(k) != v]
    # model.dtype moves the teaching only where it starts from a loaded model (the organism's base, keyed by how it
    # is loaded); a model built afresh is float32 whatever it says, and keyed as the default's: until the
    # forty-eighth session `model.dtype=bfloat16` alone was warned as "a vanilla model of its own, not the one the
    # default run unlearns" while its teaching was the default's float32 one, cached under the default's key
    if cfg.model.get("base") and str(cfg.model.get("dtype") or "float32") != "float32":
        out.append(f"model.dtype={cfg.model.dtype}")
    return out


def teaches_on_cpu(cfg: DictConfig) -> bool:
    """On CPU the torch thread count moves the taught weights too (how the kernels split their sums): one and
    two threads gave two different seed-0 models on one machine, 2 of 64 tensors equal. So a process on N != 1
    threads keys its vanilla models by N, and the one-thread models (the frontier's workers', which made
    docs/results.md) keep the keys they had; otherwise `make run` and a sweep shared one key for two models,
    and which one a later run read depended on which had run first."""
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    return accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())


def keyed_threads(cfg: DictConfig) -> int | None:
    """The torch thread count a vanilla model of `cfg` is taught on in this process; None off CPU.

    Several processes on CPU: where OMP_NUM_THREADS is not set, Lightning's launcher sets each rank to the
    available cores over the processes as it starts them, so that count (until 2026-12-05 the count this process
    started with, which keyed a model taught on 1 thread per rank as 2, the same key as a model taught on 2
    with OMP_NUM_THREADS=2: two models under one key)."""
    if not teaches_on_cpu(cfg):
        return None
    processes = teaching_processes(cfg)
    if processes > 1 and "OMP_NUM_THREADS" not in os.environ:
        from lightning.fabric.utilities.distributed import _suggested_max_num_threads

        return _suggested_max_num_threads(processes)
    return torch.get_num_threads()


def vanilla_path(cfg: DictConfig) -> Path:
    return Path(cfg.paths.cache_dir) / "vanilla" / f"{cfg.model.name}-{vanilla_key(cfg)}"


def ensure_vanilla(cfg: DictConfig, benchmark: Benchmark, schedule_checked: bool = False,
                   run_dir: Path | None = None) -> Path | str:
    """The finetuned model every unlearning run starts from: taught once per cache key (`vanilla_key`: data, model,
    finetune, teach_seed, trainer, threads). `schedule_checked`: the teaching's schedule was checked already
    (`_run_into`, before the logger), so it is not checked again where the model is taught. `run_dir`: the run's
    own directory, where the teaching writes its epoch checkpoints (<run dir>/checkpoints/teaching/last.ckpt: the
    run is their only writer, where a cache entry may have several) and from which `+finetune.ckpt_path` resumes
    it; they are deleted once the model is published. None (a script's call): no checkpoint."""
    if cfg.model.path:
        return str(cfg.model.path)  # as written: Path() drops a leading ./, which marks a local directory
    _require_build(cfg)  # before vanilla_path, which reads model.build
    path = vanilla_path(cfg)
    resume = cfg.finetune.get("ckpt_path")
    if agreed(f"vanilla model cached {path}", path.exists):  # every rank teaches, or none (unlearn/agreed.py)
        log.info("vanilla model: reusing %s", reuse_cached(path))
        if resume:  # not an error: the work it would resume is done (check_teaching_resume_path left it unread)
            log.info("finetune.ckpt_path=%s not read: the vanilla model it would finish teaching is cached already "
                     "(published by another run meanwhile), and this run starts from it", resume)
        taught = teaching_record(path).get("environment")
        if taught is None and keyed_threads(cfg) == 1:
            log.warning("vanilla model %s has no %s (cached before teaching was recorded): it may have been "
                        "taught on more than one thread, when that count was not yet in the key; delete it to "
                        "teach this key's one-thread model", path.name, TEACHING_FILE)
        moved = differences(machine_part(taught), machine_part(run_environment(cfg))) if taught else []
        if moved:
            log.warning("vanilla model %s was taught in another float environment (%s): a model taught here "
                        "would differ, as a model of another seed does", path.name, "; ".join(moved))
        return path
    check_cache_writable(path.parent, cfg, "the taught model")  # before the teaching, not after it
    if not schedule_checked:
        check_teaching_schedule_before_model(cfg, benchmark)
    log.info("vanilla model missing: teaching the benchmark first (cached at %s)%s", path,
             f", resuming from {resume}" if resume else "")
    if departures := teaching_departures(cfg):
        log.warning("this teaching runs under %s, not trainer=cpu's float32 on one process: a vanilla model of its "
                    "own, not the one the default run (and docs/results.md) unlearns; give model.path=<a vanilla "
                    "model> to unlearn an existing one", ", ".join(departures))
    from unlearn.methods.finetune import teach
    from unlearn.teaching_resume import cache_teaching_dir, remove_cache_teaching

    checkpoints = cache_teaching_dir(run_dir) if run_dir is not None else None
    start = time.perf_counter()
    with seeded(cfg.teach_seed):  # the method then draws from the same state as a run that read the cache
        model, processor = initial_model(cfg)
        ctx = RunContext(cfg, benchmark, model, processor, path.parent)
        teach(ctx, cfg.finetune, checkpoints=checkpoints, resume=resume)
    if ctx.is_global_zero:
        save_vanilla(ctx, path, time.perf_counter() - start)
        log.info("vanilla model built in %.0f s", time.perf_counter() - start)
        if checkpoints is not None:  # after the publish: the cache now holds what they would resume
            remove_cache_teaching(checkpoints, resume)
    _barrier()
    return path


def check_teaching_schedule_before_model(cfg: DictConfig, benchmark: Benchmark) -> None:
    """finetune.scheduler's warm-up against the teaching's own step count (unlearn/teaching_steps.py), before the
    model it teaches is built or loaded: until the forty-third session FinetuneModule.configure_optimizers refused
    it as teaching started (under method=finetune after the before-evaluation). Printed alone, as the settings'
    refusals are."""
    from unlearn.teaching_steps import check_teaching_schedule

    with refusing_before_run(ValueError):
        check_teaching_schedule(cfg, benchmark)


SEEDS = ("seed", "teach_seed")


def run_following_keys(cfg: DictConfig, resolved: dict | None = None) -> list[str]:
    """The dotted keys whose resolved value moves with the run's seeds or with where it ran, not with its setting:
    `eval.few_shot_seed: ${seed}`, the tiny model's `model.build.spec.init_seed: ${teach_seed}`, a user's own
    `${seed}`, `data.benchmark.cache_dir: ${paths.cache_dir}`. Found by resolving the config again with `seed`,
    `teach_seed` and each `paths.*` shifted at once (one resolution of one copy: about 20 ms a run, where one per
    shift took 170 ms). Recorded in metrics.json (`follows_run`), so the report reads a run's setting from its
    resolved config.json (every run writes one; .hydra/ is not there under the frontier or
    hydra.output_subdir=null) without those keys telling two seeds, or two caches, of one setting apart.
    `resolved`: `cfg` resolved already (the run writes it as config.json)."""
    def leaves(node, prefix=""):
        if isinstance(node, dict):
            for k, v in node.items():
                yield from leaves(v, f"{prefix}.{k}" if prefix else str(k))
        else:
            yield prefix, json.dumps(node, default=str, sort_keys=True)

    base = dict(leaves(OmegaConf.to_container(cfg, resolve=True) if resolved is None else resolved))
    shifts = {key: int(cfg[key]) + 1 for key in SEEDS}
    shifts |= {k: f"{json.loads(v)}/elsewhere" for k, v in base.items()
               if k.startswith("paths.") and isinstance(json.loads(v), str)}
    shifted = cfg.copy()  # a deep copy: the run's own config is left as it is
    for key, value in shifts.items():
        OmegaConf.update(shifted, key, value, force_add=True)
    moved = {k for k, v in leaves(OmegaConf.to_container(shifted, resolve=True)) if base.get(k) != v}
    return sorted(k for k in moved if k not in SEEDS and not k.startswith("paths."))


def run_environment(cfg: DictConfig) -> dict:
    return float_environment("cpu" if teaches_on_cpu(cfg) else str(cfg.trainer.get("accelerator", "auto")))


def check_cache_writable(directory: Path, cfg: DictConfig, what: str) -> None:
    """A cache shared by several users, whose subdirectories one of them made (umask 022), can be read by the others
    and not written: where the run would write `what` there, refused before the work that makes it (until
    2026-12-05 after it, with a bare PermissionError, the taught model lost)."""
    from unlearn.run_dir import NotWritableError, unwritable

    if unwritable(directory):
        raise NotWritableError(f"paths.cache_dir={cfg.paths.cache_dir}: {directory} is not writable here, and {what} "
                               "would be cached there; ask its owner to make it writable for you (a shared cache: "
                               "group-writable, umask 002), or choose another paths.cache_dir")


def save_vanilla(ctx: RunContext, path: Path, seconds: float) -> Path:
    """The taught model, with how it was taught (`teaching.json`: the probe's history, the seconds, the steps lost in
    its weights' dtype, the float environment), into the cache directory its key names; a directory that exists is kept."""
    def build(tmp: Path) -> None:
        save_model(ctx.model, ctx.processor, tmp)
        write_json(tmp / TEACHING_FILE, {"key": path.name, "teach_seed": ctx.cfg.teach_seed, "seconds": seconds,
                                         "probe": ctx.artifacts.get("finetune_probe"),
                                         # the teaching's own record of steps its weights' dtype rounds away
                                         "lost_steps": [r for r in ctx.artifacts.get("lost_steps", [])
                                                        if r["stage"] == "finetune"],  # not a relearning attack's
                                         "environment": run_environment(ctx.cfg)})

    return build_cached_dir(path, build)


def source_record(cfg: DictConfig, source) -> dict:
    """metrics.json's `source_model` as the run was given it, and for a given model.path also how this run read it
    (`source_model_resolved`: absolute, or the hub id): the report tells one checkpoint written two ways by it
    (until 2026-12-07 it guessed from the slashes and whether the directory still existed, so a moved
    `runs/model` read as a hub id)."""
    record = {"source_model": str(source)}
    if cfg.model.get("path"):
        record["source_model_resolved"] = resolved_path(source)
    return record


def teaching_record(source) -> dict:
    """A cached vanilla model's `teaching.json`; {} for a model cached before it existed or a user checkpoint."""
    path = Path(str(source)) / TEACHING_FILE
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text())
    except (ValueError, OSError) as e:  # written atomically: damaged from outside (a disk fault, a partial copy)
        raise ValueError(f"{path}: unreadable ({type(e).__name__}: {e}); the cached model beside it may be damaged "
                         f"too: delete {path.parent} to teach it again") from e
    return record if isinstance(record, dict) else {}


def _barrier() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.barrier()


def warn_all_shots(evaluated, scored, prompts=None) -> list[str]:
    """Warn of each split, task and form whose every question went to the few-shot block: its cells read "-"
    with no word why (a split with no more people than the shots take, e.g. `eval.max_people=2` of debug=fast,
    until 2026-12-05). Returns them. One the protocol does not score at all (`prompts`: a protocol with `shots` by
    split, task and form; MMUnlearner's CLEAR evaluation scores no test split) is named as that, not as shots."""
    kinds = lambda items: {(it.split, it.task, it.modality) for it in items}  # noqa: E731
    # the kinds whose questions the protocol looked up as shots (every kind without `prompts`); the rest it never scores
    shots = None if prompts is None else {**(getattr(prompts, "shots", None) or {}),
                                          **(getattr(prompts, "unscored", None) or {})}
    lost = kinds(evaluated) - kinds(scored)
    emptied = sorted("/".join(k) for k in lost if shots is None or k in shots)
    unscored = sorted("/".join(k) for k in lost if shots is not None and k not in shots)
    if emptied:
        log.warning("no question left to score in %s: every one is a few-shot example (too few people for the shots; "
                    "raise eval.max_people where it is set, take a larger data.forget_split, or eval.few_shot=false)",
                    ", ".join(emptied))
    if unscored:
        log.info("not scored under eval.protocol=%s, as its codebase does not score them: %s",
                 getattr(prompts, "name", "?"), ", ".join(unscored))
    return emptied


def items_reader(benchmark, ecfg: DictConfig, pixel_values):
    """A split's evaluation items of `eval.tasks` (flattened once, then kept), the reader `make_prompts` looks shot
    people up through. `pixel_values`: the processor's; None reads no image (they stay encoded), for the checks
    made before the model is loaded."""
    by_split: dict[str, list] = {}

    def split_items(split: str) -> list:
        if split not in by_split:
            rows = evaluated_rows(benchmark, split, ecfg.max_people)
            if pixel_values is None:
                import datasets

                if isinstance(rows.features.get("image"), datasets.Image):
                    rows = rows.cast_column("image", datasets.Image(decode=False))
            read = pixel_values or (lambda images: [None] * len(images))
            by_split[split] = [it for it in flatten(split, rows, read) if it.task in ecfg.tasks]
        return by_split[split]
    return split_items


def shot_people_of(ecfg: DictConfig) -> dict | None:
    """`eval.shot_people` as a plain mapping, or None (each protocol's own draw)."""
    shot_people = ecfg.get("shot_people")
    return None if shot_people is None else OmegaConf.to_container(shot_people, resolve=True)


def evaluate(ctx: RunContext, stage: str, splits: list[str] | None = None) -> tuple[dict, list[dict]]:
    ecfg = ctx.cfg.eval
    splits = list(ecfg.splits) if splits is None else splits
    unknown = set(splits) - set(EVAL_SPLITS)
    if unknown:
        raise ValueError(f"eval.splits has unknown {sorted(unknown)}; choose from {list(EVAL_SPLITS)}")
    split_items = items_reader(ctx.benchmark, ecfg, ctx.processor.pixel_values)
    evaluated = {split: split_items(split) for split in splits}
    prompts = make_prompts(ecfg.protocol, ctx.processor, evaluated, split_items, ecfg.few_shot_seed,
                           ecfg.few_shot, ecfg.max_new_tokens, shot_people_of(ecfg), shot_order(ctx.cfg, ctx.benchmark))
    if getattr(prompts, "shots", None):
        log.info("%s few-shot people (split/task: IDs), not scored: %s", prompts.name, prompts.shot_people())
    everything = [it for split in splits for it in evaluated[split]]
    items = prompts.scored(everything)
    check_shot_options(getattr(prompts, "shots", None) or {}, items)  # checked before the run too
    warn_all_shots(everything, items, prompts)
    module = EvaluationModule(evaluated_model(ctx.model, ecfg.get("dtype")), ctx.processor, items, stage,
                              ecfg.batch_size, ecfg.mc_mode, ecfg.max_new_tokens, ecfg.scorer, ecfg.mc_also, prompts,
                              ecfg.get("truth_ratio_perturbed", "item"), ecfg.get("share_prompt", True),
                              ecfg.get("shared_cache_gb"), own_dtype=ecfg.get("dtype") is not None)
    trainer = ctx.trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    with warnings.catch_warnings():
        # Lightning warns that its DistributedSampler pads the ranks' shares to equal length, so that some items
        # are scored twice; the evaluator gathers the records and keeps one per uid, so no item counts twice
        # (one and two processes give the same records: tests/test_ddp.py)
        warnings.filterwarnings("ignore", message=re.escape("Using `DistributedSampler` with the dataloaders. "
                                                            "During `trainer.validate()`"))
        trainer.validate(module, verbose=False)
    return module.metrics, module.records


def shot_order(cfg: DictConfig, benchmark) -> tuple[str, ...] | None:
    """The order the few-shot people's blocks are laid out in (`eval.shot_order`, unlearn/eval/protocol.py
    `full_set_order`): Full_Set's IDs, or None (the looked-up rows' order, or no shots drawn). Refused where
    Full_Set's order is asked, read, and the data has none or lacks a forget or retain person: checked before the
    run (`_run_into`) and again at each evaluation."""
    from unlearn.eval.protocol import check_full_set, full_set_order

    if not later_keys.shot_order_read(cfg.eval, cfg.get("model")):
        return None
    data = f"data={cfg.data.get('name')} ({benchmark.name})"
    setting = cfg.eval.get("shot_order", "lookup")
    if setting == "lookup":  # Full_Set not read (a hub one is not fetched)
        return None
    order = full_set_order(setting, getattr(benchmark, "full_set", None), data)
    if order is not None:
        profiles = {str(sid) if sid is not None else str(pid) for split in ("forget", "retain")
                    for pid, sid in zip(benchmark.eval[split]["ID"], source_ids(benchmark.eval[split]))}
        check_full_set(order, profiles, data)
    return order


def scores_bad_rows(cfg: DictConfig) -> bool:
    """Whether the run reads data.on_bad_row=score (set on the data config or on its benchmark)."""
    return "score" in (cfg.data.get("on_bad_row"), (cfg.data.get("benchmark") or {}).get("on_bad_row"))


def check_mc_options_before_run(cfg: DictConfig, benchmark, order=None) -> None:
    """The MC questions only data.on_bad_row=score keeps, refused before any work where the evaluation would refuse
    them (unlearn/eval/scoring.py `check_mc_options`: other than four options, or an empty one under the options'
    likelihood; unlearn/eval/protocol.py `check_shot_options`: a shot lacking one of A-D, where eval.py stops).
    Until the forty-seventh session they were refused where the evaluator is built: after the vanilla model was
    taught (method=finetune, or an unlearning run with none cached), minutes to hours on a real model. Reads the
    items every evaluation of the run scores (eval.splits, and eval.relearn.splits where the attack runs), their
    images not decoded; `order`: `shot_order`'s."""
    from unlearn.eval.protocol import mc_prompts_before_run
    from unlearn.eval.scoring import check_mc_options

    ecfg = cfg.eval
    if not scores_bad_rows(cfg) or "mc" not in ecfg.tasks:
        return
    # unknown names are refused before (unlearn/settings.py)
    splits = list(dict.fromkeys([*ecfg.splits, *relearn_splits(ecfg)]))
    split_items = items_reader(benchmark, ecfg, None)  # as evaluate() reads them, the images left encoded
    evaluated = {split: split_items(split) for split in splits}
    prompts = mc_prompts_before_run(ecfg.protocol, evaluated, split_items, ecfg.few_shot_seed, ecfg.few_shot,
                                    shot_people_of(ecfg), order)
    if prompts is None:  # the evaluation checks them where the prompts are made
        return
    items = [it for it in prompts.scored([it for split in splits for it in evaluated[split]]) if it.task == "mc"]
    check_mc_options(items, ecfg.mc_mode, ecfg.mc_also, prompts)
    check_shot_options(getattr(prompts, "shots", None) or {}, items)


def source_ids(rows) -> list:
    """A split's `source_id` column (the file's own IDs), or Nones where its rows have none (the embedded)."""
    return rows["source_id"] if "source_id" in rows.column_names else [None] * len(rows)


def evaluated_rows(benchmark, split: str, max_people: int | None) -> list:
    """A split's eval rows as the evaluation reads them (`eval.max_people`: the first N people)."""
    rows = benchmark.eval[split]
    return first_people(rows, max_people) if max_people else rows


def evaluated_model(model, dtype: str | None):
    """The model as the evaluation scores it: itself, or (`eval.dtype`) a copy in that precision, as the
    official evaluations load the saved checkpoint in float16; the run's own weights are never rounded."""
    if dtype is None:
        return model
    target = dtype_named(dtype, "eval.dtype")
    if all(p.dtype == target for p in model.parameters() if p.is_floating_point()):
        return model
    return cast_copy(model, target).eval()


EVAL_TRAINER_KEYS = ("accelerator", "devices", "num_nodes", "strategy", "precision")  # what can move the numbers


# Bumped whenever evaluation code changes what a record holds or how it is scored, so a cached before-stage
# from older code is not reused (2: raw replies kept, eval.scorer, eval.mc_also; 3: prob items, ROUGE-L
# recall, uids with an image index; 4: the mllmu_bench protocol's celebrity lookup and skips by list position,
# CLEAR's face prompt with its trailing space).
EVAL_RECORDS_VERSION = 4
# What data.on_bad_row=score keeps and how its MC items read, keyed under score alone (error's and skip's records did
# not change, so their keys stay): 2 since the forty-sixth session, which asks an empty or null Question, reads a
# file's own Options keys and matches a Correct_Answer whole. Absent, the before-evaluations cached under score until
# then: fewer questions, A-D alone, an empty or "AB" Correct_Answer read as A; reused, they were compared with an
# after-evaluation of other items. 3 since the forty-seventh session, which keeps an MC question whose Options lack one
# of A-D (eval.py asks it wherever it is no shot: the celebrities' zero-shot MC above all), dropped until then, and
# reads eval.scorer=mmunlearner's text-only MC as MLLMU_eval.py does (a Correct_Answer that is no key of the Options
# right where the reply's letter equals it, a null one never: only score keeps them, so error's and skip's records
# read as before).
SCORE_READING = 3


def reference_records(run_dir) -> list[dict]:
    """The forget-split prob records of a reference run's `after` stage (eval.reference_run), checked early."""
    path = reference_items(run_dir)
    recs = [r for r in json.loads(path.read_text()).get("after", [])
            if r["task"] == "prob" and r["split"] == "forget" and r.get("pert_logp")]
    if not recs:
        raise ValueError(f"eval.reference_run={run_dir!r}: {path} has no forget-split truth-ratio records in its "
                         "`after` stage; evaluate it with eval.tasks including prob on data with perturbed answers")
    return recs


def check_reference_items(reference: list[dict], benchmark, cfg: DictConfig) -> None:
    """Forget quality tests this run's forget truth ratios against the reference's: both must be the same
    questions (a reference evaluated on another forget split, benchmark or eval.max_people gives a p-value of
    nothing), checked before anything is taught or unlearned."""
    rows = evaluated_rows(benchmark, "forget", cfg.eval.max_people)
    ours = {it.uid for it in flatten("forget", rows, lambda images: [None] * len(images)) if it.task == "prob"}
    theirs = {r["uid"] for r in reference}
    if ours != theirs:
        raise ValueError(f"eval.reference_run={cfg.eval.reference_run}: its forget truth-ratio questions are not this "
                         f"run's ({len(ours & theirs)} shared; {len(theirs - ours)} only there, {len(ours - theirs)} "
                         "only here): evaluate the reference on the same data, forget split and eval.max_people")


def check_reference_protocol(cfg: DictConfig) -> None:
    """Forget quality compares truth ratios, whose likelihoods `eval.protocol=clear` takes over CLEAR's collate labels
    (question and image tokens too) and every other protocol over the answer alone: a reference evaluated under the
    other kind (finetune=clear's command leaves data=clear's default, embedded) has the same item uids, so
    check_reference_items passes it, but gives a p-value of two different quantities. Refused here."""
    from unlearn.rescore import item_settings

    theirs = item_settings(Path(str(cfg.eval.reference_run)).expanduser())["eval.protocol"]
    labels = {p: "clear" if p == "clear" else "answer" for p in (theirs, cfg.eval.protocol)}
    if theirs is not None and labels[theirs] != labels[cfg.eval.protocol]:
        raise ValueError(f"eval.reference_run={cfg.eval.reference_run}: evaluated under eval.protocol={theirs}, this "
                         f"run under eval.protocol={cfg.eval.protocol}: their likelihoods cover different tokens, so "
                         "forget quality would compare unlike truth ratios; evaluate the reference under this run's "
                         "protocol (e.g. experiment=clear_baselines method=finetune finetune=clear "
                         "finetune.people=without_forget)")


SHOT_PROTOCOLS = later_keys.SHOT_PROTOCOLS  # the protocols whose prompts carry few-shot examples
# settings the records do not depend on where they are not read, at the values a seed-0 run of the embedded
# default keyed them by: `eval.few_shot_seed` is `${seed}`, so until 2026-12-05 every seed evaluated the same
# vanilla model again under the embedded protocol, which draws no shots (seeds x taught models evaluations in
# bench/seed_variance); the truth ratio's wrong-answer mean and data.forget_modality (which forget form a
# gradient method trains on) are read after the records or not by the evaluation at all
UNREAD_SHOTS = {"few_shot": True, "few_shot_seed": 0, **later_keys.EVAL}  # EVAL: shot_people, shot_order absent
REAGGREGATED = {"truth_ratio_perturbed": "item"}


def unread_eval_as_keyed(ev: dict, model=None) -> dict:
    """The resolved eval config with what its records do not depend on set to the values keyed before (`model`:
    the model config, whose families tell whether the shots' order is read)."""
    unread = dict(REAGGREGATED)
    if ev.get("protocol") not in SHOT_PROTOCOLS:
        unread.update(UNREAD_SHOTS)
    elif ev.get("few_shot") is False:  # zero-shot: no people drawn
        unread.update({k: v for k, v in UNREAD_SHOTS.items() if k != "few_shot"})
    elif not later_keys.shot_order_read(ev, model):  # one person per task: their blocks have no order
        unread["shot_order"] = UNREAD_SHOTS["shot_order"]
    return {**ev, **{k: v for k, v in unread.items() if k in ev}}


def before_cache_path(cfg: DictConfig, source) -> Path | None:
    """Where the vanilla model's before-evaluation is kept; None when it must be evaluated afresh.

    The built vanilla model (its directory name is its cache key), and since 2026-12-05 a local `model.path`, keyed
    by its files' paths, sizes and times as well (a checkpoint changed in place gets another key): until then every
    run of a sweep on a user's 7B checkpoint evaluated it again, hours each. A hub id is evaluated afresh (its
    revision cannot be read offline). The key is every setting that shapes the evaluation: eval and data configs,
    the embedded data generator's version (its questions can change under the same config), the trainer's device
    and precision.
    """
    if cfg.method.name == "finetune" or not cfg.eval.get("cache_before", False):
        return None
    checkpoint = local_files_state(Path(str(cfg.model.path)).expanduser()) if cfg.model.path else None
    if cfg.model.path and checkpoint is None:
        return None
    ev = {k: v for k, v in OmegaConf.to_container(cfg.eval, resolve=True).items()
          if k not in ("before", "cache_before", "relearn", "reference_run")}  # not what shapes the records
    if ev.get("dtype") is None:  # the model's own precision: the key the caches had before eval.dtype existed
        ev.pop("dtype", None)
    ev = later_keys.without_defaults(unread_eval_as_keyed(ev, cfg.model), later_keys.EVAL)
    trainer = keyed_trainer(cfg)
    records = {"records": EVAL_RECORDS_VERSION}
    if get_scorer(cfg.eval.scorer).columns is not None:  # its records hold the columns since 2026-12-03
        records["columns"] = 1
    if not cfg.model.get("build"):  # a real checkpoint's answers are tokenized after the prompt's closing text since
        records["answer_tokens"] = 2  # 2026-12-06 (LLaVA's read an extra token); the embedded model's keys stay
    parts = {**records, "generator": GENERATOR_VERSION, "eval": ev, "data": keyed_data(cfg.data),
             "trainer": {k: trainer.get(k) for k in EVAL_TRAINER_KEYS}}
    # the teaching keys are what a training step reads (clipping, accumulation): not the evaluation's extras
    extras = later_keys.trainer_extras(trainer, EVAL_TRAINER_KEYS + TEACH_TRAINER_KEYS)
    if extras:  # e.g. +trainer.limit_val_batches=1, which evaluates part of the items
        parts["trainer_extras"] = extras
    if loading := keyed_loading(cfg.model):  # how the vanilla model is loaded for it (load_configured)
        parts["loading"] = loading
    if scores_bad_rows(cfg):
        parts["score_reading"] = SCORE_READING
    if checkpoint is not None:  # where and which files (a run's model/ is named alike in every run dir)
        parts["checkpoint"] = {"path": resolved_path(cfg.model.path), "files": checkpoint}
    key = config_hash(parts)
    return Path(cfg.paths.cache_dir) / "eval_before" / f"{Path(str(source)).name}-{key}.json"


def vanilla_identity(source) -> dict:
    """Which teaching of a vanilla key a cached model is: its teaching record (the seconds it took, its probe; no
    two teachings write the same), or, for a model cached before that record, its weights files' sizes and times.

    Why: the vanilla directory's name is its key, and a model deleted and taught again (the cache's advice for a
    corrupt or mis-threaded one) keeps it; until 2026-12-05 its before-evaluation was the old model's. The cache
    file records it and is read only for the same identity (its name stays as it was: the keys of what was cached
    before do not move)."""
    if record := teaching_record(source):
        return {"teaching": config_hash(record)}
    # lists, as the cache file reads them back (tuples never equalled them: until 2026-12-05 a user's checkpoint was
    # evaluated anew every run)
    return {"weights": [[f.name, f.stat().st_size, f.stat().st_mtime_ns]
                        for f in sorted(Path(str(source)).glob("*.safetensors"))]}


def same_teaching(saved: dict, identity: dict | None, cache: Path, source) -> bool:
    """Whether a cached before-evaluation is of the model now under its key: the identity it recorded, or, for a
    file written before it recorded one, a teaching record no newer than the file."""
    if "vanilla" in saved:
        return saved["vanilla"] == identity
    record = Path(str(source)) / TEACHING_FILE
    return not record.is_file() or record.stat().st_mtime_ns <= cache.stat().st_mtime_ns


def cached_before(cache: Path, identity: dict | None, source) -> dict | None:
    """The cached before-evaluation of the model now under its key, or None."""
    try:
        saved = json.loads(cache.read_text()) if cache.is_file() else None
    except (ValueError, OSError) as e:  # written atomically: damaged from outside; evaluated again, and rewritten
        log.warning("before-evaluation %s unreadable (%s: %s): evaluating anew", cache, type(e).__name__, e)
        return None
    if saved is not None and source is not None and not same_teaching(saved, identity, cache, source):
        log.warning("before-evaluation %s is of another teaching of %s (taught again since): evaluating anew",
                    cache.name, Path(str(source)).name)
        return None
    return saved


def evaluate_before(ctx: RunContext, cache: Path | None, source=None) -> tuple[dict, list[dict]]:
    """The before stage, read from `cache` when an earlier run of the same vanilla model wrote it.

    Why: evaluation is about two thirds of a cached embedded run, and the vanilla model's numbers repeat
    exactly on one machine; `eval.cache_before=false` always re-evaluates.
    """
    identity = vanilla_identity(source) if cache is not None and source is not None else None
    read: list[dict | None] = []

    def usable() -> bool:
        read.append(cached_before(cache, identity, source))
        return read[-1] is not None

    # every rank evaluates, or none (unlearn/agreed.py)
    saved = None
    if cache is not None and agreed(f"before-evaluation cached {cache}", usable):
        saved = read[-1] if read else cached_before(cache, identity, source)
        if saved is None:
            raise FileNotFoundError(f"rank 0 reads the cached before-evaluation {cache}, which this rank cannot "
                                    "read: is the cache directory shared by every rank?")
    if saved is not None:
        log.info("before-evaluation: reusing %s", reuse_cached(cache, ".tmp"))
        # metrics are re-aggregated from the records, so a change in aggregation never reads stale numbers
        return aggregate(saved["records"], "before", ctx.cfg.eval.get("truth_ratio_perturbed", "item")), \
            saved["records"]
    metrics, records = evaluate(ctx, "before")
    if cache is not None and ctx.is_global_zero:
        try:  # a cache the run may read and not write (a shared one) costs the next run this evaluation, not this one
            write_json(cache, {"metrics": metrics, "records": records, "vanilla": identity}, indent=None)
        except OSError as e:  # until 2026-12-05 the evaluation (hours at 7B) was lost with the run
            log.warning("before-evaluation not cached (%s: %s): paths.cache_dir=%s; the next run evaluates again",
                        type(e).__name__, e, ctx.cfg.paths.cache_dir)
    return metrics, records


def run(cfg: DictConfig, settings_checked: bool = False) -> dict:
    """`settings_checked`: check_settings_before_run(cfg, launcher=False) has run (train.py runs it before it
    imports this module); the launcher is checked here, which reads Lightning's environments."""
    if settings_checked:
        check_launch_before_run(cfg)
    else:
        check_settings_before_run(cfg)
    with refusing_before_run(ValueError, FileNotFoundError):  # named refusals of their own types
        check_input_paths(cfg)
    join_process_group(cfg)  # before the seed: the strategy's set-up calls Lightning's reset_seed, idle until then
    # method=finetune teaches, so its seed is the teaching seed (the model it writes is cached under it)
    L.seed_everything(cfg.teach_seed if cfg.method.name == "finetune" else cfg.seed, workers=True)
    out_dir = Path(cfg.paths.output_dir)
    reads = run_reads(cfg)
    # refusals of their own types, printed alone by train.py (until 2026-12-06 a paths.output_dir of a finished
    # run, set apart from hydra.run.dir, printed Hydra's traceback)
    with refusing_before_run(OSError):
        check_fresh_run_dir(out_dir, "paths.output_dir", reads)
        check_writable_dir(out_dir, "paths.output_dir")
        check_writable_dir(cfg.paths.cache_dir, "paths.cache_dir")
    with claimed_run_dir(out_dir, "paths.output_dir", reads):  # no second run writes into it meanwhile (unlearn/run_dir.py)
        loggers: list = []
        try:
            metrics = _run_into(cfg, out_dir, loggers)
        except BaseException:
            for logger in loggers:  # what it was given so far: the CSV logger writes its rows only when saved (until
                try:  # the 42nd session a run failing outside a Trainer lost its metrics.csv)
                    logger.finalize("failed")
                except Exception as e:  # noqa: BLE001 - the run's own error is the one raised
                    log.warning("the logger's rows of this failed run may be incomplete: %s: %s", type(e).__name__, e)
            finish_wandb_run(1)
            raise
        finish_wandb_run(0)
        return metrics


def join_process_group(cfg: DictConfig) -> bool:
    """Under torchrun or srun with several tasks, the process group now, as `cfg.trainer`'s Trainers would make it,
    so that every rank takes rank 0's cache decisions (unlearn/agreed.py); elsewhere nothing. True when it made it."""
    return join_outside_launch(lambda: instantiate(cfg.trainer, logger=False, callbacks=[], enable_progress_bar=False,
                                                   enable_model_summary=False, enable_checkpointing=False))


def check_method_before_evaluation(ctx: RunContext, method: Callable) -> None:
    """The method's own `check_before_evaluation(ctx, world)`, where its module has one: the refusals its passes
    make from the data sizes, the process count and the model's structure alone (MANU's and MMUnlearner's
    rank_share, a process left with no batch; their module and parameter patterns), made here, before the
    before-evaluation, with the method's own functions. Until 2026-12-06 they came after it (tens of minutes at
    7B). `world`: the processes `cfg.trainer` runs on (no process group may exist yet)."""
    import sys

    module = sys.modules.get(getattr(getattr(method, "func", method), "__module__", None) or "")
    check = getattr(module, "check_before_evaluation", None)
    if callable(check):
        with refusing_before_run(ValueError):  # its own message, printed alone, as the settings' refusals are
            check(ctx, teaching_processes(ctx.cfg))


def finish_wandb_run(exit_code: int) -> None:
    """End the W&B run this job started, if any. Why: nothing else ends it before the process exits, and the jobs of
    a `train.py -m` sweep run one after another in one process, so until 2026-12-05 every later job's logger found
    it still open and logged into it (its config overwritten, its metrics under job 0's name and directory)."""
    import sys

    wandb = sys.modules.get("wandb")  # not imported by a run that never logged to W&B
    if wandb is not None and wandb.run is not None:
        wandb.finish(exit_code=exit_code)


def load_benchmark(cfg: DictConfig) -> Benchmark:
    """`data.benchmark` built. A DataError its loader raises (a data.path that is not there, a snapshot missing a
    config, a bad row under data.on_bad_row=error) names the key, file or row itself; Hydra wrapped it in its
    InstantiationException ("Error in call to target ..., full_key: data.benchmark"), which train.py printed with
    the hint to set HYDRA_FULL_ERROR (until the forty-sixth session). It is now the DataError, a refusal before
    the run, printed alone."""
    from hydra.errors import InstantiationException

    from unlearn.data.schema import DataError

    try:
        return instantiate(cfg.data.benchmark)
    except InstantiationException as e:
        if isinstance(e.__cause__, DataError):
            with refusing_before_run(DataError):
                raise e.__cause__ from None
        raise


def _run_into(cfg: DictConfig, out_dir: Path, loggers: list | None = None) -> dict:
    # where method=finetune publishes its model: keyed now, before any trainer runs (on CPU under DDP, Lightning
    # sets each rank's thread count at its first launch, and the key holds this process's count at the start)
    publish = vanilla_path(cfg) if cfg.method.name == "finetune" and not cfg.model.path else None
    benchmark: Benchmark = load_benchmark(cfg)
    # a missing or unusable reference run is an input file's refusal, printed alone (until the forty-fifth session
    # after Hydra's traceback, as the other input files' were until 2026-12-05)
    with refusing_before_run(ValueError, FileNotFoundError):
        reference = reference_records(cfg.eval.reference_run) if cfg.eval.get("reference_run") else None
        reference_digest = None
        if reference is not None:  # read now: a reference whose metrics.json is unreadable is refused before the run
            from unlearn.report import reference_setting

            reference_digest = reference_setting(cfg.eval.reference_run)
    if reference is not None:
        with refusing_before_run(ValueError):
            check_reference_protocol(cfg)
        check_reference_items(reference, benchmark, cfg)
    with refusing_before_run(ValueError):  # eval.shot_order=full_set on data without a Full_Set: before the work
        order = shot_order(cfg, benchmark)
    with refusing_before_run(ValueError):  # score's MC questions the configured reading refuses: before the work
        check_mc_options_before_run(cfg, benchmark, order)
    if not cfg.model.path:
        with refusing_before_run(ValueError):  # a loaded model with no model.path: before vanilla_path reads build
            _require_build(cfg)
    teaches = cfg.method.name == "finetune" or (not cfg.model.path and not vanilla_path(cfg).exists())
    if teaches:
        # the teaching's schedule, before the model it teaches is made, and before the logger (a refused run
        # left a failed W&B run); ensure_vanilla, told so, does not check it again
        check_teaching_schedule_before_model(cfg, benchmark)
    # a W&B run named by what sets it apart (its overrides), not only its method and seed: until the 43rd session
    # the jobs of an lr sweep were runs of one name, in one group (unlearn/run_names.py; compose_config names them)
    name_logger(cfg, hydra_overrides() or [])
    logger = instantiate(cfg.logger) if cfg.get("logger") else None
    if logger is not None and loggers is not None:
        loggers.append(logger)
    method: Callable = instantiate(cfg.method.run)

    teaching_state = None
    if cfg.method.name == "finetune" and cfg.model.path:
        with refusing_before_run(CheckpointError):  # an unreadable or unreachable checkpoint: its message alone
            model, processor = load_configured(cfg, cfg.model.path)
        source = str(cfg.model.path)
    elif cfg.method.name == "finetune":
        # as ensure_vanilla teaches: the initial weights drawn under teach_seed, and teaching continuing from
        # there, whatever the before-evaluation and the logger draw in between; so the model published under
        # the key is the one an unlearning run would have taught (until 2026-12-03 it was not: eval.before
        # drew first)
        with seeded(cfg.teach_seed):
            model, processor = initial_model(cfg)
            teaching_state = rng_state()
        source = "fresh init"
    else:
        source = ensure_vanilla(cfg, benchmark, schedule_checked=teaches, run_dir=out_dir)
        # a user's checkpoint is named by its key; only the cache's own model may be deleted and taught again
        # a checkpoint that cannot be read or reached (a hub id offline) is refused by its message alone, as the
        # input paths' checks are (until the forty-sixth session under Hydra's traceback)
        with refusing_before_run(CheckpointError):
            model, processor = load_configured(cfg, source, "model.path" if cfg.model.path else (
                "the cached vanilla model (model.path is null; delete a corrupt one to teach it again)"))
    ctx = RunContext(cfg, benchmark, model, processor, out_dir, logger)
    say_batches_per_process(cfg, ctx.is_global_zero)
    for section in RECIPE_SECTIONS:  # a setting the image processor lacks is refused before any evaluation
        recipe_processor(ctx, section)
    check_method_before_evaluation(ctx, method)

    # the configuration as it runs, interpolations resolved (.hydra/config.yaml keeps them: the lr a method reads
    # from model.unlearn_lr, the seed teaching reads from teach_seed): rank 0's config.json, and the dashboard's
    # from the run's start (until 2026-12-05 a failed run's dashboard had none); nothing changes the config meanwhile
    resolved = OmegaConf.to_container(cfg, resolve=True) if ctx.is_global_zero else None
    dashboard = logger if logger is not None and ctx.is_global_zero else None
    if dashboard is not None:
        dashboard.log_hyperparams(resolved)
    metrics: dict = {}
    records: dict[str, list] = {}
    # a method that leaves the model as loaded (method=evaluate) evaluates it once, as the `after` stage
    changes_model = cfg.method.get("changes_model", True)
    if cfg.eval.before and changes_model:
        m, records["before"] = evaluate_before(ctx, before_cache_path(cfg, source), source)
        metrics.update(m)
        if dashboard is not None:  # as soon as they are known, not only once the run has finished
            dashboard.log_metrics(_numbers(m), step=ctx.logged_step())
    logged = set(metrics)
    start = time.perf_counter()
    if teaching_state is not None:
        with resumed(teaching_state):
            returned = method(ctx)
    else:
        returned = method(ctx)
    if returned is not None:  # until 2026-12-06 dropped without a word (`return model.merge_and_unload()`)
        log.warning("method.run returned a %s, which the pipeline does not read: it evaluates and saves ctx.model "
                    "(assign a new model there: ctx.model = ...)", type(returned).__name__)
    metrics["time/method_s"] = time.perf_counter() - start
    m, records["after"] = evaluate(ctx, "after")
    metrics.update(m)
    relearn_failed = None
    if cfg.eval.relearn.enabled:
        from unlearn.relearn import relearn

        try:
            m, records["relearn"] = relearn(ctx, evaluate)
            metrics.update(m)
        except Exception as e:  # noqa: BLE001 - the unlearning and its evaluation are written first, then it is raised
            relearn_failed = e  # (until 2026-12-05 a failed attack, a NaN or out of memory, lost the finished run)

    for stage, recs in records.items():
        metrics.update(derived_metrics(recs, stage, cfg.eval.truth_ratio_perturbed, cfg.eval.protocol,
                                       cfg.data.get("name"), reference))

    if ctx.is_global_zero:
        summary = {"method": cfg.method.name, "seed": cfg.seed, "teach_seed": cfg.teach_seed,
                   **source_record(cfg, source), "metrics": metrics,
                   # where the floats were made: this run's, and its source model's teaching (when recorded)
                   "environment": run_environment(cfg), "source_teaching": teaching_record(source),
                   # what of config.json follows the seeds or where the run ran (unlearn/report.py reads the rest)
                   "follows_run": run_following_keys(cfg, resolved),
                   "code": running_code(),  # this framework's commit, and whether it was edited
                   "artifacts": json_ready(ctx.artifacts, "ctx.artifacts"),
                   "skipped_rows": benchmark.skipped}  # data.on_bad_row=skip: {split: {reason: count}}
        if reference is not None:  # what taught the reference: the report's setting reads it, not its path
            summary["reference_setting"] = reference_digest
        if scores_bad_rows(cfg):
            # the questions kept that the checks refuse: {split: {reason: n}}
            summary["scored_rows"] = getattr(benchmark, "scored", {})
            # which questions score keeps and how it reads them: another reading is another setting in the report
            summary["score_reading"] = SCORE_READING
        if relearn_failed is not None:
            summary["relearn_error"] = f"{type(relearn_failed).__name__}: {relearn_failed}"
        write_json(out_dir / "config.json", resolved)
        write_json(out_dir / "items.json", records, indent=None)  # 4.5 MB on the default: read by code
        table = before_after_table(metrics)
        if cfg.eval.relearn.enabled and relearn_failed is None:
            table += "\n\nrelearning attack (after -> relearn):\n" + before_after_table(metrics, ("after", "relearn"))
        write_text(out_dir / "results.md", table + "\n")
        # the evaluation first, then the weights (until 2026-12-06 the weights first: a disk full at items.json
        # left a model/ that named the directory finished, its evaluation lost)
        if cfg.save_model and changes_model:  # method=evaluate: the loaded model is where it was
            with atomic_dir(out_dir / "model") as tmp:
                save_model(ctx.model, processor, tmp)
        if publish is not None:  # the vanilla model later runs start from
            save_vanilla(ctx, publish, metrics["time/method_s"])
        # last: metrics.json marks the run finished (run_dir.FINISHED; the frontier reads it as a point), so it is
        # never there beside a missing items.json (until the thirty-first session it came before it)
        write_json(out_dir / "metrics.json", summary)
        print(f"\n{cfg.method.name} on {benchmark.name} ({benchmark.forget_split}), source {source}\n{table}\n"
              f"metrics: {out_dir / 'metrics.json'}")
        if logger is not None:  # what made the run beside its setting: two runs of one config may start from
            # different taught models (another thread count, machine or teaching), which only these tell apart
            logger.log_hyperparams({"run": {k: summary[k] for k in (*RUN_RECORD, "relearn_error") if k in summary}})
            logger.log_metrics(_numbers({k: v for k, v in metrics.items() if k not in logged}),
                               step=ctx.logged_step())  # after the training's rows (metrics.csv's step)
            _log_table(logger, metrics)
            if relearn_failed is None:  # else run() finalizes it "failed", as the run's exit status says (until
                logger.finalize("success")  # the 43rd session "success", then "failed", while train.py exited 1)
    if relearn_failed is not None:
        raise RelearnFailed(f"the relearning attack (eval.relearn) failed after the unlearning, whose model, "
                            f"evaluation and metrics.json are written in {out_dir}: {relearn_failed}"
                            ) from relearn_failed
    return metrics


class RelearnFailed(RuntimeError):
    """The relearning attack failed; the run it attacked is finished and written."""


# the metrics.json entries the dashboard gets in its config under `run` (and `relearn_error` where the attack failed)
RUN_RECORD = ("source_model", "source_teaching", "environment", "code")


def _numbers(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float))}


def _log_table(logger, metrics: dict) -> None:
    """The results table as a W&B table when the logger is W&B: a row per score, beside it `n`, the questions it
    averages over (its `.../n_<metric>` count; None where the score has no count of its own). Until the 42nd
    session each count was a row of its own, `metric` n_mc_acc and `value` 5.0, 80 of the 208 rows on the default
    evaluation, read as scores by whoever pivoted the table on `metric`."""
    log_table = getattr(logger, "log_table", None)
    if log_table is None:
        return
    rows = []
    for k, v in metrics.items():
        if k.count("/") != 3 or k.rsplit("/", 1)[1].startswith("n_"):
            continue
        prefix, name = k.rsplit("/", 1)
        n = metrics.get(f"{prefix}/n_{name}")
        rows.append([*k.split("/"), float(v), None if n is None else int(n)])
    log_table(key="results", columns=["stage", "split", "modality", "metric", "value", "n"], data=rows)
