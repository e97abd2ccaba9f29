"""Run settings checked from the config alone, before any data is read or any model loaded: a value that a
recipe would silently ignore, misread or turn against itself (a negative clip norm flips gradients, zero
epochs reports an untouched model as unlearned) is refused, naming its key."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import math
import string
from pathlib import Path

log = logging.getLogger(__name__)

LORA_KEYS = ("enabled", "r", "alpha", "dropout", "init", "target_modules")
LORA_INITS = ("gaussian", "eva", "olora", "pissa", "loftq", "corda", "mica", "orthogonal", "lora_ga")  # peft 0.21
# finetune keys read with a default (absent from configs/finetune/default.yaml, so that the default recipe's
# cached vanilla models keep their keys; documented there)
FINETUNE_OPTIONAL = ("lora", "dtype", "precision", "gradient_clip_val", "label_prefix", "sequences",
                     "anneal_epochs", "accumulate_grad_batches", "answer_ids", "resize_embeddings", "start_precision",
                     "family", "train_pairs", "image_labels", "token_mean", "ckpt_path")
# optional finetune keys that check a run rather than decide its weights: left out of the vanilla cache key
FINETUNE_GUARDS = ("family", "train_pairs")
# where an interrupted teaching resumes from (unlearn/teaching_resume.py): a resumed teaching's weights are the
# uninterrupted one's, so it is left out of the vanilla cache key too
FINETUNE_RESUME = ("ckpt_path",)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_list(value) -> bool:
    """A list as the config gives it (ListConfig) or as Python code does; a string is not one (read character by
    character where a list was meant)."""
    from omegaconf import ListConfig

    return isinstance(value, (list, tuple, ListConfig))


def _is_strings(value) -> bool:
    """A non-empty list of strings."""
    return _is_list(value) and len(value) > 0 and all(isinstance(v, str) for v in value)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _text_hint(value) -> str:
    """Why a number written as text was refused: an environment variable (`${oc.env:SEED}`) reads as a string (until
    2026-12-06 the refusal of seed='1' gave no hint); "" for any other value."""
    if not isinstance(value, str):
        return ""
    try:
        float(value)
    except ValueError:
        return ""
    return " (a number written as text, as ${oc.env:VAR} reads one: write ${oc.decode:${oc.env:VAR}}, quoted)"


def positive_int(value, key: str) -> None:
    if not _is_int(value) or value < 1:
        raise ValueError(f"{key}={value!r}: expected an integer >= 1{_text_hint(value)}")


def nonnegative_int(value, key: str, zero_means: str | None = None) -> None:
    if not _is_int(value) or value < 0:
        raise ValueError(f"{key}={value!r}: expected an integer >= 0{f' (0: {zero_means})' if zero_means else ''}")


def warmup_count(value, key: str) -> None:
    """A warm-up in epochs: 0 (none, the default) or more; the message says 0 is one (until the forty-eighth session
    `warmup_epochs=-1` read "expected an integer >= 1", the default itself outside it)."""
    if not _is_int(value) or value < 0:
        raise ValueError(f"{key}={value!r}: expected 0 (no warm-up) or an integer >= 1{_text_hint(value)}")


def optional_positive_int(value, key: str, null_means: str) -> None:
    if value is not None and (not _is_int(value) or value < 1):
        raise ValueError(f"{key}={value!r}: expected null ({null_means}) or an integer >= 1")


def number(value, key: str, low: float, high: float = math.inf, low_open: bool = False) -> None:
    """A finite number in [low, high] (`low_open`: (low, high])."""
    if not _is_number(value) or value > high or value < low or (low_open and value == low):
        span = f"{'(' if low_open else '['}{low}, {high}{')' if high == math.inf else ']'}"
        raise ValueError(f"{key}={value!r}: expected a finite number in {span}{_text_hint(value)}")


def known_keys(node, known, key: str) -> None:
    unknown = sorted(set(node) - set(known))
    if unknown:
        raise ValueError(f"{key} has no setting {unknown}; known: {sorted(known)}")


def check_lora(lora, key: str) -> None:
    """A LoRA section (`key`: finetune.lora, method.lora, mmunlearner.lora) peft would refuse late, without
    the key, or read partly: its keys, and when enabled its rank, alpha, dropout and init."""
    if lora is None:
        return
    known_keys(lora, LORA_KEYS, key)
    boolean(lora.get("enabled", False), f"{key}.enabled")  # "no", a string, trained LoRA adapters
    if not lora.enabled:
        return
    r, alpha, dropout = lora.get("r"), lora.get("alpha"), lora.get("dropout", 0.0)
    positive_int(r, f"{key}.r")
    number(alpha, f"{key}.alpha", 0, low_open=True)
    if not _is_number(dropout) or not 0 <= dropout < 1:
        raise ValueError(f"{key}.dropout={dropout!r}: expected a number in [0, 1)")
    targets = lora.get("target_modules")
    if targets is not None:
        lora_target_names(targets, f"{key}.target_modules")
    if not isinstance(targets, (str, type(None))):
        from unlearn.mmunlearner.lora import RULES

        rule = next((r for r in RULES if r in list(targets)), None)
        if rule:
            raise ValueError(f"{key}.target_modules={list(targets)}: {rule} stands alone (target_modules: {rule}); "
                             "in a list peft reads it as a module name and finds none")
    init = lora.get("init", True)
    if not (isinstance(init, bool) or init in LORA_INITS or str(init).startswith("pissa_niter_")):
        raise ValueError(f"{key}.init={init!r}: expected true (B = 0), false, or one of peft's init_lora_weights "
                         f"{list(LORA_INITS)} (or pissa_niter_<n>)")


def lora_target_names(value, key: str) -> None:
    """A LoRA section's modules (its target_modules, or the model's model.lora_target_modules): one regex or rule
    (all_linear), or a list of module names. A number stopped the checks themselves with a TypeError (until
    2026-12-08)."""
    if not (isinstance(value, str) or _is_list(value) and all(isinstance(t, str) for t in value)):
        raise ValueError(f"{key}={value!r}: expected a list of module names, one regular expression, or a rule "
                         "(all_linear, all_linear_and_head)")


def check_template(template) -> None:
    """model.template: its keys are ChatTemplate's, and each text keeps the placeholders it is formatted with
    (a question template without {question} would drop the question from every prompt)."""
    if not template:
        return
    from dataclasses import fields

    from unlearn.models.chat_template import ChatTemplate

    known_keys(template, [f.name for f in fields(ChatTemplate)], "model.template")
    for f in fields(ChatTemplate):  # a text as a number, or a flag as "false" (true), read as given at the prompts
        if f.name not in template:
            continue
        if isinstance(f.default, bool):
            boolean(template[f.name], f"model.template.{f.name}")
        elif not isinstance(template[f.name], str) and not (template[f.name] is None and "None" in str(f.type)):
            raise ValueError(f"model.template.{f.name}={template[f.name]!r}: expected a string"
                             f"{' or null' if 'None' in str(f.type) else ''}")
    needs = {"question": {"question"}, "answer": {"answer"}, "letter_question": {"question", "A", "B", "C", "D"}}
    for name, wanted in needs.items():
        if name in template:
            found = {f for _, f, _, _ in string.Formatter().parse(str(template[name])) if f}
            if not wanted <= found:
                raise ValueError(f"model.template.{name}={template[name]!r} lacks {sorted(wanted - found)}")


def check_attn_implementation(value) -> None:
    """model.attn_implementation: one transformers knows, or a kernel on the hub (`org/repo`); a misspelt one
    (`flash`) stopped in transformers' loader with its own message, without the key (until 2026-12-06)."""
    if value is None or "/" in str(value) or value in ("eager", "sdpa"):  # every transformers 5 knows these two:
        return  # the real models' configs set sdpa, and transformers' import takes 2-4 s (unlearn/before_run.py)
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    known = ["eager", *ALL_ATTENTION_FUNCTIONS.valid_keys()]
    if value not in known and not (str(value).startswith("paged|") and value[len("paged|"):] in known):
        raise ValueError(f"model.attn_implementation={value!r}: expected null (transformers' default), one of "
                         f"{known}, paged|<one of those>, or a hub kernel (org/repo)")


def one_of(value, choices, key: str) -> None:
    if value not in choices:
        raise ValueError(f"{key}={value!r}: expected one of {list(choices)}")


def optional_one_of(value, choices, key: str, null_means: str = "") -> None:
    """null, or one of `choices` (`null_means`: what null stands for, in the message)."""
    if value is not None and value not in choices:
        null = f"null ({null_means})" if null_means else "null"
        raise ValueError(f"{key}={value!r}: expected {null} or one of {list(choices)}")


SEED_RANGE = (0, 2**32 - 1)  # what Lightning's seed_everything (numpy's seed) takes


def integer(value, key: str) -> None:
    """A seed: a float would seed torch with its integer part and key caches by the float; one outside numpy's
    range stopped in Lightning's seed_everything without the key's name."""
    if not _is_int(value) or not SEED_RANGE[0] <= value <= SEED_RANGE[1]:
        raise ValueError(f"{key}={value!r}: expected an integer in [{SEED_RANGE[0]}, {SEED_RANGE[1]}]{_text_hint(value)}")


def booleans(node, keys_and_defaults: dict, section: str) -> None:
    for k, default in keys_and_defaults.items():
        boolean(node.get(k, default), f"{section}.{k}")


def boolean(value, key: str) -> None:
    """A flag: a string such as "false" would read as true."""
    if not isinstance(value, bool):
        raise ValueError(f"{key}={value!r}: expected true or false")


def names(value, choices, key: str) -> None:
    """A non-empty list of distinct names from `choices` (an empty one evaluates nothing and reports no metric)."""
    if not _is_list(value) or not value:
        raise ValueError(f"{key}={value!r}: expected a non-empty list from {list(choices)}")
    unknown = [v for v in value if v not in choices]
    if unknown:
        raise ValueError(f"{key} has unknown {unknown}; choose from {list(choices)}")
    if len(set(value)) < len(value):
        raise ValueError(f"{key}={list(value)}: a name given twice would be evaluated twice")


def pattern(value, key: str, null_means: str | None = None) -> None:
    """A regular expression matched against module or parameter names (`null_means`: null allowed, and what it
    stands for): a number or a list was read as one only where the model loaded, and a pattern that does not compile
    failed in `re` there, without the key."""
    if value is None and null_means is not None:
        return
    if not isinstance(value, str):
        null = f"null ({null_means}) or " if null_means is not None else ""
        raise ValueError(f"{key}={value!r}: expected {null}a regular expression (a string)")
    import re

    try:
        re.compile(value)
    except re.error as e:
        raise ValueError(f"{key}={value!r}: not a regular expression ({e})") from e


def patterns(value, key: str) -> None:
    """A list of regular expressions: a string was read character by character (finetune.frozen='abc' froze every
    parameter whose name holds an a, b or c: every one, and teaching stopped in torch's optimiser)."""
    if not _is_list(value):
        raise ValueError(f"{key}={value!r}: expected a list of regular expressions ([] for none)")
    for i, v in enumerate(value):
        pattern(v, f"{key}[{i}]")


def forms(value, key: str) -> None:
    """The forms a person's questions are taught in, a form given twice taught twice as often (the default teaches
    image+text twice per text-only): a string was read character by character, refused in the sequence builder
    with a traceback naming neither the key nor the forms (until 2026-12-08)."""
    from unlearn.data.choices import FORMS

    if not _is_list(value) or not value or any(v not in FORMS for v in value):
        raise ValueError(f"{key}={value!r}: expected a non-empty list from {list(FORMS)} (a form given twice is "
                         "taught twice as often)")


def check_model(model) -> None:
    """The model section's settings the run reads as it builds, loads and hooks the model, by key."""
    check_template(model.get("template"))
    check_attn_implementation(model.get("attn_implementation"))
    boolean(model.get("gradient_checkpointing", False), "model.gradient_checkpointing")  # "abc" turned it on
    from unlearn.models.dtype_names import DTYPE_NAMES

    one_of(model.get("dtype", "float32"), DTYPE_NAMES, "model.dtype")  # read at the load, which let nn through
    from unlearn.models.positions import check_forward_positions

    check_forward_positions(model.get("forward_positions", "mrope"))
    types = model.get("model_types")  # a number stopped the checks themselves with a TypeError (until 2026-12-08)
    if types is not None and not _is_strings(types):
        raise ValueError(f"model.model_types={types!r}: expected null or a non-empty list of the config.json "
                         "model_type values this model config is written for")
    for section in ("mlp_modules", "manu_official_modules", "param_groups"):  # MANU's hooks, MMUnlearner's groups
        node = model.get(section)
        if node is None:
            continue
        if not hasattr(node, "items"):
            raise ValueError(f"model.{section}={node!r}: expected {{<tower or group>: <regular expression>}}")
        for name, value in node.items():
            pattern(value, f"model.{section}.{name}")
    if model.get("portrait_size") is not None:
        positive_int(model.portrait_size, "model.portrait_size")
    build = model.get("build")
    if build is not None and not hasattr(build, "get"):  # a string stopped the checks with an AttributeError
        raise ValueError(f"model.build={build!r}: expected null (a checkpoint at model.path) or the embedded model's "
                         "builder ({_target_: ..., spec: {...}})")
    check_spec((build or {}).get("spec"), "model.build.spec")


# the embedded specs' classes, as their `_target_` names them, and the modules that hold them without torch,
# transformers or `datasets`: each refuses a bad value by its key as it is built
SPEC_CLASSES = {"unlearn.models.tiny_llava.TinyLlavaSpec": "unlearn.models.tiny_llava_spec",
                "unlearn.data.mllmu_mini.MiniSpec": "unlearn.data.mini_spec",
                "unlearn.data.world.WorldSpec": "unlearn.data.world_spec"}


def check_spec(spec, key: str) -> None:
    """An embedded spec (`model.build.spec`, `data.spec`, `model.base.world`) built as the run will build it, before
    it does: its keys, and the values its class refuses (until 2026-12-08 as the model, the benchmark or the world
    was built, 6-8 s in, or with transformers' message)."""
    if spec is None or not hasattr(spec, "items") or spec.get("_target_") not in SPEC_CLASSES:
        return  # a spec of one's own, or a loader's (MLLMU-Bench, CLEAR), is read where it loads
    import dataclasses
    import importlib

    target = str(spec["_target_"])
    cls = getattr(importlib.import_module(SPEC_CLASSES[target]), target.rsplit(".", 1)[1])
    values = {k: v for k, v in spec.items() if k != "_target_"}
    known_keys(values, [f.name for f in dataclasses.fields(cls)], key)
    cls(**values)


def check_eval_lists(e) -> None:
    """eval.tasks, eval.splits and the attack's splits, read after the before-evaluation started: refused here
    instead."""
    from unlearn.data.choices import EVAL_SPLITS
    from unlearn.eval.reading import TASKS

    names(e.tasks, TASKS, "eval.tasks")
    names(e.splits, EVAL_SPLITS, "eval.splits")
    if (e.get("relearn") or {}).get("enabled") is True:  # else refused after the unlearning and the attack ran
        names(e.relearn.splits, EVAL_SPLITS, "eval.relearn.splits")


def check_eval(e) -> None:
    from unlearn.eval.protocol import PROTOCOLS
    from unlearn.eval.scorers import SCORERS

    one_of(e.protocol, PROTOCOLS, "eval.protocol")  # read at the first evaluation: refused here instead
    one_of(e.scorer, tuple(SCORERS), "eval.scorer")
    from unlearn.eval.protocol import SHOT_ORDERS

    one_of(e.get("shot_order", "lookup"), SHOT_ORDERS, "eval.shot_order")  # read at the first evaluation
    shots = e.get("shot_people")
    if shots is not None:
        if not hasattr(shots, "items") or not shots or set(shots) - {"mc", "cloze"}:
            raise ValueError(f"eval.shot_people={shots!r}: expected null or {{mc: N, cloze: N}} (either or both)")
        for task, n in shots.items():
            nonnegative_int(n, f"eval.shot_people.{task}", "zero-shot")
        # elsewhere it would change nothing but the cache key and the seed group
        if e.protocol not in ("mllmu_bench", "mmunlearner"):
            raise ValueError(f"eval.shot_people sets the shots of eval.protocol=mllmu_bench or mmunlearner (got "
                             f"eval.protocol={e.protocol}); drop it")
    check_mc_modes(e)
    from unlearn.eval.truth_ratio import PERTURBED_MODES  # read in the aggregate, after the evaluation ran

    one_of(e.get("truth_ratio_perturbed", "item"), PERTURBED_MODES, "eval.truth_ratio_perturbed")
    check_eval_lists(e)
    positive_int(e.batch_size, "eval.batch_size")
    optional_positive_int(e.get("max_people"), "eval.max_people", "every person")
    optional_positive_int(e.get("max_new_tokens"), "eval.max_new_tokens", "the protocol's limits")
    boolean(e.get("share_prompt", True), "eval.share_prompt")
    booleans(e, {"before": True, "cache_before": False, "few_shot": True}, "eval")
    if e.get("shared_cache_gb") is not None:  # null: no bound
        number(e.shared_cache_gb, "eval.shared_cache_gb", 0, low_open=True)
    r = e.get("relearn")
    if r is not None:
        boolean(r.get("enabled", False), "eval.relearn.enabled")  # "false", a string, ran the attack
    if r is not None:  # its data named wrongly is refused whether or not the attack is on
        one_of(r.get("data", "forget"), ("forget", "retain"), "eval.relearn.data")
    if r is not None and r.get("enabled"):
        positive_int(r.steps, "eval.relearn.steps")
        positive_int(r.batch_size, "eval.relearn.batch_size")
        number(r.fraction, "eval.relearn.fraction", 0, 1, low_open=True)
        number(r.lr, "eval.relearn.lr", 0, low_open=True)
    check_reference_scored(e)


def relearn_splits(e) -> list:
    """The splits the relearning attack evaluates (`eval.relearn.splits`), none where it is off."""
    attack = e.get("relearn") or {}
    return list(attack.get("splits") or []) if attack.get("enabled") else []


def check_reference_scored(e) -> None:
    """`eval.reference_run` gives forget quality, a KS test of this run's forget-split truth ratios (task `prob`)
    against the reference's: a run that scores none gave no forget quality and no word why (until the forty-eighth
    session `eval.tasks=[mc] eval.reference_run=...` ran whole and reported none)."""
    if not e.get("reference_run"):
        return
    splits = set(e.splits) | set(relearn_splits(e))
    lacking = [f"{what} has no {name}" for what, name, given in (("eval.tasks", "prob", e.tasks),
                                                                  ("eval.splits", "forget", splits))
               if name not in given]
    if lacking:
        raise ValueError(f"eval.reference_run={e.reference_run} gives forget quality from the forget split's truth "
                         f"ratios (task prob), which this run does not score ({'; '.join(lacking)}): add them, or "
                         "set eval.reference_run=null")


def generated_mc_protocols() -> tuple[str, ...]:
    """The protocols that read MC from a generated letter, as their benchmark does: those whose prompts are their
    own for MC too (EvaluationModule: `getattr(prompts, "mc_prompts", prompts).name != "embedded"`)."""
    from unlearn.eval import protocol

    classes = [c for c in vars(protocol).values() if isinstance(c, type) and c.__module__ == protocol.__name__
               and getattr(c, "name", None) in protocol.PROTOCOLS]
    return tuple(sorted({c.name for c in classes if c.name != "embedded" and not hasattr(c, "mc_prompts")}))


def check_mc_modes(e) -> None:
    """eval.mc_mode and eval.mc_also, as the evaluator reads them: until 2026-12-05 a misspelt mode was refused at
    the first MC batch (unlearn/eval/scoring.py), a bad mc_also when the evaluator was built, both after the
    unlearning ran when eval.before=false."""
    from unlearn.eval.reading import MC_MODES, check_mc_reading

    one_of(e.mc_mode, MC_MODES, "eval.mc_mode")
    check_mc_reading(e.protocol, e.protocol in generated_mc_protocols(), e.mc_mode, e.get("mc_also"))


def check_finetune(f) -> None:
    from unlearn.config import shipped_config

    # the recipe's keys, read once (parsing the file with OmegaConf took 16 ms of every check)
    known_keys(f, [*shipped_config("finetune", "default"), *FINETUNE_OPTIONAL], "finetune")
    boolean(f.answer_only, "finetune.answer_only")  # "false", a string, labelled the answers alone
    check_teaching_steps(f, "finetune")
    # torch's DataLoader refused -1 as teaching began, with a traceback; "abc" the same (until 2026-12-07)
    nonnegative_int(f.get("num_workers", 0), "finetune.num_workers", "the main process")
    positive_int(f.probe_people, "finetune.probe_people")
    if f.get("image_processor") is not None and not hasattr(f.image_processor, "items"):
        raise ValueError(f"finetune.image_processor={f.image_processor!r}: expected {{}} or the image processor's "
                         "settings for the teaching data ({do_image_splitting: false})")
    forms(f.forms, "finetune.forms")
    patterns(f.frozen, "finetune.frozen")
    if f.get("target_split_mc_acc") is not None:
        number(f.target_split_mc_acc, "finetune.target_split_mc_acc", 0)
    from unlearn.methods.finetune_settings import check_settings  # its optional keys and LoRA, before anything is read

    check_settings(f)
    from unlearn.data.writings import check_image_labels

    check_image_labels(f.get("image_labels"), f.get("sequences", "template"), not f.answer_only, "finetune")
    warmup = (f.get("scheduler") or {}).get("warmup_epochs") or 0
    if warmup != 0:
        warmup_count(warmup, "finetune.scheduler.warmup_epochs")
        warmup_below_epochs(warmup, f.epochs, "finetune.scheduler.warmup_epochs", "finetune.epochs")


def check_teaching_steps(node, section: str) -> None:
    """What a teaching stage (`finetune`, the organism's stage 1 `model.base`) runs for and steps with: epochs,
    batch size, the probe's interval and target, the optimiser (its lr > 0: 0 cached an untaught "vanilla" model under
    its key until 2026-12-05) and a one-cycle schedule's values."""
    for name in ("epochs", "batch_size", "check_every"):
        if name in node:
            positive_int(node[name], f"{section}.{name}")
    if node.get("target_mc_acc") is not None:  # 0: stop at the first check; above 1: never (every epoch runs)
        number(node.target_mc_acc, f"{section}.target_mc_acc", 0)
    optimizer = node.get("optimizer")
    if optimizer is not None and optimizer.get("lr") is not None:
        number(optimizer.lr, f"{section}.optimizer.lr", 0, low_open=True)
    check_optimizer(optimizer, f"{section}.optimizer")
    check_one_cycle(node.get("scheduler"), f"{section}.scheduler")


def check_one_cycle(node, key: str) -> None:
    """A one-cycle schedule's (OneCycleLR's) rates and share, which torch takes whatever their sign: until 2026-12-07
    `finetune.scheduler.max_lr=-1` taught 1,500 steps up the loss until a gradient overflowed, and a nan
    pct_start made every lr nan."""
    if node is None or not hasattr(node, "get"):
        return
    for name in ("max_lr", "div_factor", "final_div_factor"):
        if node.get(name) is not None:
            number(node.get(name), f"{key}.{name}", 0, low_open=True)
    if node.get("pct_start") is not None:
        number(node.get("pct_start"), f"{key}.pct_start", 0, 1)


_BUILDS_LAST: contextvars.ContextVar[list | None] = contextvars.ContextVar("builds_last", default=None)


@contextlib.contextmanager
def builds_collected():
    """The optimiser and scheduler builds asked for inside, unrun, in the list this yields: the caller runs them
    (a sweep's check, each job's after every job's other checks)."""
    builds = []
    token = _BUILDS_LAST.set(builds)
    try:
        yield builds
    finally:
        _BUILDS_LAST.reset(token)


@contextlib.contextmanager
def builds_last():
    """The optimiser and scheduler builds (check_optimizer, check_scheduler) asked for inside run after every other
    check there, once those passed: a build imports torch and torch._dynamo (3 s here), the other checks nothing
    as heavy, so a bad value elsewhere is refused in under a second. Nested, the outermost runs them (or, inside
    builds_collected, its caller)."""
    if _BUILDS_LAST.get() is not None:
        yield
        return
    with builds_collected() as builds:
        yield
    for build in builds:
        build()


def _build(build) -> None:
    """`build` now, or at the end of the builds_last block it is asked for in."""
    builds = _BUILDS_LAST.get()
    if builds is None:
        build()
    else:
        builds.append(build)


def check_optimizer(node, key: str) -> None:
    """The optimizer built once on a one-element tensor: a bad argument (a negative weight decay, a misspelt
    keyword, an unresolved interpolation) was refused by torch or Hydra, without the key, only when training
    started after the before-evaluation (until 2026-12-05). Inside builds_last, built at its end."""
    if node is not None:
        _build(functools.partial(_build_optimizer, node, key))


def _build_optimizer(node, key: str) -> None:
    import torch
    from hydra.utils import instantiate

    try:
        instantiate(node)([torch.nn.Parameter(torch.zeros(1))])
    except Exception as e:  # noqa: BLE001 - whatever torch or Hydra raises, named by its key
        raise ValueError(f"{key}: {type(e).__name__}: {e}") from e


PROBE_STEPS = 10**6  # the run's steps a scheduler is built with here: more than any run takes, so a run's own
# count decides whether a warm-up fits (FinetuneModule.configure_optimizers, linear_schedule), not this check


def check_scheduler(node, optimizer, key: str, **kwargs) -> None:
    """A scheduler built once, as check_optimizer builds the optimizer, on the run's optimizer over a one-element
    tensor (with `kwargs`, as the run calls it): a key it does not take (debug=fast's finetune.scheduler.pct_start
    under finetune=mllmu_bench's linear_schedule) was refused only when teaching started (until 2026-12-05). Inside
    builds_last, built at its end."""
    if node is not None:
        _build(functools.partial(_build_scheduler, node, optimizer, key, **kwargs))


def _build_scheduler(node, optimizer, key: str, **kwargs) -> None:
    import torch
    from hydra.utils import instantiate

    param = torch.nn.Parameter(torch.zeros(1))
    try:
        opt = instantiate(optimizer)([param]) if optimizer is not None else torch.optim.SGD([param], lr=1.0)
        instantiate(node)(opt, **kwargs)
    except Exception as e:  # noqa: BLE001 - whatever torch or Hydra raises, named by its key
        raise ValueError(str(e) if str(e).startswith(key) else f"{key}: {type(e).__name__}: {e}") from e


def check_gradient_method(m) -> None:
    positive_int(m.epochs, "method.epochs")
    positive_int(m.batch_size, "method.batch_size")
    from unlearn.methods.gradient_settings import LOSSES, RETAIN_DRAWS, SCHEDULES

    one_of(m.loss, LOSSES, "method.loss")
    number(m.alpha, "method.alpha", 0)  # the retain term's weight: a negative one ascends on retain
    if m.loss == "ga":  # GA's loss has no weight to give (open-unlearning's GradAscent): the lr is its scale
        if m.gamma != 1:
            raise ValueError(f"method.gamma={m.gamma} is not read by method=ga (its loss is -NLL(forget) alone; "
                             "scale method.optimizer.lr instead)")
        if m.alpha != 1:  # the retain term's weight, and GA has none: accepted and ignored until 2026-12-05
            raise ValueError(f"method.alpha={m.alpha} is not read by method=ga (its loss is -NLL(forget) alone, no "
                             "retain term; method=grad_diff adds alpha * NLL(retain))")
    else:  # grad_diff, kl, npo: the forget term's weight; a negative one descends on forget
        number(m.gamma, "method.gamma", 0, low_open=True)
    if m.loss == "npo":  # NPO's temperature divides its loss: refused here, not at the first step after loading
        number(m.beta, "method.beta", 0, low_open=True)
    if m.get("reference_required") and m.loss in ("kl", "npo") and not m.get("reference_path"):
        # neutral: every *_baselines preset sets it (MLLMU-Bench's NPO.py, MMUnlearner's MLLMU_NPO.py and
        # CLEAR_NPO.py), and the composed config does not say which preset it came from
        raise ValueError(f"method.reference_path is null, and method.reference_required is true for method={m.name} "
                         "(the experiment preset follows an official script whose oracle is a model finetuned on the "
                         "retain data: its header names the finetune=*_reference recipe that makes it); give "
                         "method.reference_path=DIR, or method.reference_required=false for a frozen copy of the "
                         "starting model")
    try:
        lr = m.optimizer.get("lr")
    except Exception as e:  # noqa: BLE001 - an unresolvable interpolation, named by its key
        raise ValueError(f"method.optimizer.lr: {type(e).__name__}: {e}") from e
    if lr is None:
        raise ValueError(f"method.optimizer.lr is null (model.unlearn_lr has no entry {m.name!r}?); give one")
    number(lr, "method.optimizer.lr", 0, low_open=True)  # 0 would report the vanilla model as unlearned
    check_optimizer(m.optimizer, "method.optimizer")
    if m.get("lr_decay") is None:  # GradientUnlearning calls method.scheduler(optimizer)
        check_one_cycle(m.get("scheduler"), "method.scheduler")
        check_scheduler(m.get("scheduler"), m.optimizer, "method.scheduler")
    schedule = m.get("schedule", "paired")
    one_of(schedule, SCHEDULES, "method.schedule")
    if schedule == "interleaved" and (m.loss == "ga" or (m.loss == "npo" and m.alpha == 0)):
        raise ValueError(f"method.schedule=interleaved spreads forget steps through a retain pass, and method="
                         f"{m.name} has no retain term (alpha {m.alpha}): use method.schedule=sequential")
    from unlearn.models.dtype_names import START_PRECISIONS

    optional_one_of(m.get("start_precision"), START_PRECISIONS, "method.start_precision")
    draw = m.get("retain_draw", "epoch")
    one_of(draw, RETAIN_DRAWS, "method.retain_draw")
    if draw != "epoch" and schedule != "paired":
        raise ValueError(f"method.retain_draw={draw} pairs retain rows with forget batches: it needs "
                         f"method.schedule=paired (got {m.get('schedule')!r})")
    warmup = m.get("warmup_epochs", 0)
    if warmup != 0:
        warmup_count(warmup, "method.warmup_epochs")
        if m.get("lr_decay") != "linear":
            raise ValueError(f"method.warmup_epochs={warmup} warms up the linear decay: it needs "
                             f"method.lr_decay=linear (got {m.get('lr_decay')!r})")
        warmup_below_epochs(warmup, m.epochs, "method.warmup_epochs", "method.epochs")
    check_lora(m.get("lora"), "method.lora")
    booleans(m, {"answer_only": True, "label_prefix": False, "kl_retain_nll": False, "reference_required": False},
             "method")
    if m.get("label_prefix", False) and m.get("answer_only", True):  # else refused when the data is built
        raise ValueError("method.label_prefix=true labels the prompt's prefix, which needs method.answer_only=false "
                         "(the question labelled too)")
    from unlearn.models.vocab import check_resize

    check_resize(m.get("resize_embeddings"), "method.resize_embeddings")  # else refused after the before-evaluation
    from unlearn.data.writings import check_image_labels

    check_image_labels(m.get("image_labels"), m.get("sequences", "template"), not m.get("answer_only", True), "method")
    from unlearn import loss_settings

    one_of(m.get("kl_reduction", "answer_mean"), loss_settings.KL_REDUCTIONS, "method.kl_reduction")
    one_of(m.get("npo_log_ratio", "sequence_sum"), loss_settings.NPO_LOG_RATIOS, "method.npo_log_ratio")
    one_of(m.get("npo_empty_rows", "skip"), loss_settings.NPO_EMPTY_ROWS, "method.npo_empty_rows")
    if m.get("npo_empty_rows", "skip") != "skip" and m.get("npo_log_ratio", "sequence_sum") != "sequence_sum":
        raise ValueError(f"method.npo_empty_rows={m.npo_empty_rows}: read with method.npo_log_ratio=sequence_sum only "
                         f"(token_mean takes one ratio per batch, not per row); got {m.npo_log_ratio}")
    one_of(m.get("token_mean", "global"), loss_settings.TOKEN_MEANS, "method.token_mean")
    optional_one_of(m.get("lr_decay"), ("linear",), "method.lr_decay", "a constant lr, or method.scheduler")
    if m.get("lr_decay") is not None and m.get("scheduler") is not None:
        raise ValueError("method.lr_decay and method.scheduler both set: choose one (set the other to null)")


def check_teaching_resume_path(cfg) -> None:
    """`+finetune.ckpt_path` (unlearn/teaching_resume.py): the file is read and compared now, before the
    before-evaluation, where the run will teach: method=finetune, or another method whose vanilla model is not yet
    cached (the run teaches it into the cache, checkpointing into <run dir>/checkpoints/teaching). Another method
    given model.path teaches nothing, so the key is refused; one whose vanilla model is cached already (another run
    published it meanwhile) starts from it, and the run says the checkpoint was not read (pipeline.ensure_vanilla)."""
    resume = cfg.finetune.get("ckpt_path") if "finetune" in cfg else None
    if not resume:
        return
    if cfg.method.name != "finetune":
        if cfg.model.get("path"):
            raise ValueError(f"finetune.ckpt_path={resume}: resumes the teaching of the cache's vanilla model, and "
                             f"method={cfg.method.name} with model.path={cfg.model.path} starts from that model, "
                             "teaching nothing; drop +finetune.ckpt_path, or model.path to teach (and resume) the "
                             "cache's vanilla model")
        if cfg.model.get("build"):
            from unlearn.pipeline import vanilla_path

            if vanilla_path(cfg).exists():  # nothing to resume: the run starts from the cached model, and says so
                return
    from unlearn.teaching_resume import WHERE, check_teaching_resume_file

    check_teaching_resume_file(checkpoint_file(resume, "finetune.ckpt_path", f"an interrupted teaching's {WHERE}"),
                               cfg)


def checkpoint_file(value, key: str, what: str) -> Path:
    """`key`'s checkpoint file, refused by name where it is a directory or missing (`what`: where one comes from)."""
    path = Path(str(value)).expanduser()
    if not path.is_file():
        found = "a directory, not a checkpoint file" if path.is_dir() else "no such file"
        raise FileNotFoundError(f"{key}={value}: {found} ({what})")
    return path


def reference_items(run_dir) -> Path:
    """eval.reference_run's items.json, refused by name where it is not there (until 2026-12-08 only once the
    benchmark had loaded, 7.4 s in here)."""
    path = Path(str(run_dir)).expanduser() / "items.json"
    if not path.is_file():
        raise FileNotFoundError(f"eval.reference_run={run_dir!r}: no {path}; give the directory of a finished "
                                "run (python train.py method=finetune finetune.people=without_forget)")
    return path


def check_input_paths(cfg) -> None:
    """The files a method reads after the before-evaluation, checked before it (on a user's 7B checkpoint that
    evaluation takes hours, and the first run of a checkpoint or of new evaluation settings has no cached one):
    the KL / NPO reference, a reused MMUnlearner mask, the checkpoint a gradient method resumes from, the
    layers MANU's official selection names, and eval.reference_run's records."""
    if cfg.method.get("ckpt_path") and "loss" not in cfg.method:
        # method.ckpt_path is defined (configs/method/ga.yaml), so `+method.ckpt_path=` passes the unknown-key check
        # under every method, yet only the gradient methods read it: under method=finetune it taught from scratch
        # without a word (until 2026-12-07), the checkpoint named by a refused rerun's advice left unread
        other = ("; a teaching resumes with +finetune.ckpt_path=<its run dir>/checkpoints/last.ckpt"
                 if cfg.method.name == "finetune" else "")
        raise ValueError(f"method.ckpt_path={cfg.method.ckpt_path}: read by the gradient methods (ga, grad_diff, kl, "
                         f"npo) only; method={cfg.method.name} would ignore it{other}")
    resume = cfg.method.get("ckpt_path")  # a gradient method's, the others refused above
    if resume:
        from unlearn.methods.gradient import check_resume_file

        check_resume_file(checkpoint_file(resume, "method.ckpt_path",
                                          "an interrupted run's <run dir>/checkpoints/last.ckpt"), cfg)
    check_teaching_resume_path(cfg)
    check_official_layers(cfg)
    if cfg.eval.get("reference_run"):
        reference_items(cfg.eval.reference_run)
    if cfg.model.get("path"):  # the starting checkpoint, before the benchmark loads (until 2026-12-06 after it)
        from unlearn.models.checkpoint_files import check_local_checkpoint

        # with model.processor_path the checkpoint's own processor files are not read (the official scripts
        # save the weights alone)
        if check_local_checkpoint(cfg.model.path, "model.path", with_processor=not cfg.model.get("processor_path")):
            check_checkpoint_family(cfg)
    if cfg.model.get("processor_path") is not None:
        from unlearn.models.checkpoint_files import PROCESSOR_KEY, check_processor_source

        if cfg.model.get("build"):  # the embedded model and its cached vanilla models keep their own processor
            raise ValueError(f"{PROCESSOR_KEY}={cfg.model.processor_path}: model={cfg.model.name} is the embedded "
                             "model, whose processor is saved with it; leave it null")
        if check_processor_source(cfg.model.processor_path) and cfg.model.get("path"):
            from unlearn.models.checkpoint_files import check_processor_files_family, checkpoint_config

            check_processor_files_family(cfg.model.processor_path,
                                         (checkpoint_config(cfg.model.path) or {}).get("model_type"), PROCESSOR_KEY)
    if "loss" in cfg.method and cfg.method.get("reference_path"):
        from unlearn.models.checkpoint_files import check_local_checkpoint

        if check_local_checkpoint(cfg.method.reference_path, "method.reference_path"):
            check_reference_people(cfg)
            check_reference_model(cfg)
    mask = cfg.mmunlearner.get("mask_path") if cfg.method.name == "mmunlearner" else None
    if mask and not Path(str(mask)).expanduser().is_file():
        raise FileNotFoundError(f"mmunlearner.mask_path={mask}: no such file (a mask.safetensors an earlier run "
                                "wrote under its mmunlearner/)")
    if mask:  # its header read now (until 2026-12-05 a damaged file failed in safetensors after the evaluation)
        from safetensors import safe_open

        try:
            with safe_open(str(Path(str(mask)).expanduser()), framework="pt") as f:
                if not list(f.keys()):
                    raise ValueError("it holds no tensor")
        except Exception as e:  # noqa: BLE001 - safetensors' own errors carry no key
            raise ValueError(f"mmunlearner.mask_path={mask}: not a readable mask.safetensors ({e})") from e


def warmup_below_epochs(warmup: int, epochs: int, key: str, epochs_key: str) -> None:
    """A warm-up as long as the run never decays (unlearn.optim.linear_schedule refuses it at the first step)."""
    if warmup >= epochs:
        raise ValueError(f"{key}={warmup} is not below {epochs_key}={epochs}: the lr would never decay")


def check_mmunlearner(m) -> None:
    from unlearn.loss_settings import TOKEN_MEANS

    one_of(m.get("token_mean", "global"), TOKEN_MEANS, "mmunlearner.token_mean")  # before the mask pass
    positive_int(m.epochs, "mmunlearner.epochs")
    positive_int(m.batch_size, "mmunlearner.batch_size")
    positive_int(m.fisher_batch_size, "mmunlearner.fisher_batch_size")
    if m.clip != math.inf:  # inf: no clipping
        number(m.clip, "mmunlearner.clip", 0, low_open=True)  # a norm: <= 0 zeroes or flips every gradient
    number(m.forget_optimizer.get("lr"), "mmunlearner.forget_optimizer.lr", 0, low_open=True)
    check_optimizer(m.forget_optimizer, "mmunlearner.forget_optimizer")
    boolean(m.get("clip_retain", True), "mmunlearner.clip_retain")
    one_of(m.get("fisher_dtype", "float32"), ("float32", "float16", "bfloat16"), "mmunlearner.fisher_dtype")
    from unlearn.models.dtype_names import START_PRECISIONS

    optional_one_of(m.get("start_precision"), START_PRECISIONS, "mmunlearner.start_precision")
    check_lora(m.get("lora"), "mmunlearner.lora")
    number(m.get("gamma", 1.0), "mmunlearner.gamma", 0, low_open=True)  # 0 would select every weight
    if m.get("mask_fraction") is not None:
        number(m.mask_fraction, "mmunlearner.mask_fraction", 0, 1, low_open=True)
    if m.get("retain_optimizer") is not None:
        number(m.retain_optimizer.get("lr"), "mmunlearner.retain_optimizer.lr", 0, low_open=True)
        check_optimizer(m.retain_optimizer, "mmunlearner.retain_optimizer")
    booleans(m, {"apply_mask": True, "restore_masked": True, "fisher_shuffle": False, "retain_text": True},
             "mmunlearner")
    check_mmunlearner_choices(m)
    from unlearn.data.writings import check_image_labels

    computes_mask = m.get("apply_mask", True) and not m.get("mask_path")  # else the Fisher pass does not run
    check_image_labels(m.get("image_labels"), m.get("sequences", "template"),
                       m.get("update_labels") == "all" or (computes_mask and m.get("fisher_labels") == "all"),
                       "mmunlearner")


def check_mmunlearner_loss_scale(cfg) -> None:
    """Under a loss scaler (trainer.precision=16-mixed) Lightning unscales the gradients of the optimiser it steps
    only: with two optimisers, the forget step's clip over every parameter (clip_scope=all) would read the retain
    parameters' gradients still multiplied by the scale (up to 65536), shrinking the forget step to nothing, and
    their overflows would not skip it. Refused, naming the settings that work (since 2026-12-05; it ran before)."""
    m, precision = cfg.mmunlearner, str((cfg.get("trainer") or {}).get("precision", "32-true"))
    if (precision in ("16", "16-mixed") and m.get("optimizers", "two") == "two"
            and m.get("clip_scope", "unlearned") == "all"):
        raise ValueError(f"mmunlearner.clip_scope=all with mmunlearner.optimizers=two under trainer.precision="
                         f"{precision}: the loss scaler unscales only the forget optimiser's gradients, and the clip "
                         "would read the others scaled; use mmunlearner.optimizers=one (the authors' one AdamW), "
                         "clip_scope=unlearned, or trainer.precision=bf16-mixed or 32-true")


def check_mmunlearner_choices(m) -> None:
    """The choices MMUnlearner's run refused only at its start (after the before-evaluation), at the Fisher pass or
    at the update (after the Fisher pass), from the constants unlearn/methods/mmunlearner.py reads them by."""
    from unlearn.mmunlearner import choices as mm
    from unlearn.models.vocab import check_resize

    one_of(m.groups, tuple(mm.GROUPS), "mmunlearner.groups")
    pattern(m.get("eligible"), "mmunlearner.eligible", "every parameter of the groups")
    check_resize(m.get("resize_embeddings"), "mmunlearner.resize_embeddings")
    one_of(m.get("optimizers", "two"), mm.OPTIMIZERS, "mmunlearner.optimizers")
    one_of(m.get("clip_scope", "unlearned"), mm.CLIP_SCOPES, "mmunlearner.clip_scope")
    steps = m.get("retain_steps")
    if not (steps is None or steps == "official" or (_is_int(steps) and steps >= 1)):
        raise ValueError(f"mmunlearner.retain_steps={steps!r}: expected null, a positive int or 'official'")
    if m.get("mask_path") and m.get("mask_fraction") is not None:
        raise ValueError(f"mmunlearner.mask_path={m.mask_path} reuses a saved mask, so "
                         f"mmunlearner.mask_fraction={m.mask_fraction} cannot size it: set one of them")
    if m.get("mask_path") and not m.get("apply_mask", True):
        raise ValueError(f"mmunlearner.mask_path={m.mask_path} is a mask, and mmunlearner.apply_mask=false applies "
                         "none: set one of them")
    one_of(m.get("preserve_text", "train_qa"), mm.PRESERVE_TEXT, "mmunlearner.preserve_text")
    one_of(m.get("preserve_batches", "separate"), mm.PRESERVE_BATCHES, "mmunlearner.preserve_batches")
    if m.get("apply_mask", True) and not m.get("mask_path"):  # the Fisher pass runs
        fisher_dtype = m.get("fisher_dtype", "float32")
        if fisher_dtype != "float32" and m.get("mask_fraction") is not None:
            raise ValueError(f"mmunlearner.mask_fraction={m.mask_fraction} sizes a mask by the float32 rule; it "
                             f"cannot be used with mmunlearner.fisher_dtype={fisher_dtype}")
    if m.get("optimizers", "two") == "one":
        check_one_optimizer(m)
    lora = m.get("lora")
    if lora is not None and lora.enabled and m.get("apply_mask", True) \
            and lora.get("init", True) in mm.LORA_INITS_WITH_ZERO_FACTOR:
        raise ValueError(f"mmunlearner.lora.init={lora.get('init', True)!r} starts lora_B at 0, so no lora_A element "
                         "ever gets gradient or saliency; use pissa, pissa_niter_4 or olora (or "
                         "mmunlearner.apply_mask=false, which applies no mask)")


def check_one_optimizer(m) -> None:
    """mmunlearner.optimizers=one builds its one optimiser from retain_optimizer (MaskedUnlearning.configure_optimizers),
    so a forget_optimizer set apart (another lr, say) was ignored without a word: refused. The official presets set
    the two alike."""
    from omegaconf import OmegaConf

    def resolved(key):
        node = m.get(key)
        return OmegaConf.to_container(node, resolve=True) if node is not None else None

    forget, retain = resolved("forget_optimizer"), resolved("retain_optimizer")
    if forget != retain:
        if isinstance(forget, dict) and isinstance(retain, dict):
            differ = {k: (forget.get(k), retain.get(k)) for k in sorted(set(forget) | set(retain))
                      if forget.get(k) != retain.get(k)}
            shown = "; ".join(f"{k}: {f!r} against {r!r}" for k, (f, r) in differ.items())
        else:
            shown = f"{forget!r} against {retain!r}"
        raise ValueError(f"mmunlearner.optimizers=one builds its one optimiser from mmunlearner.retain_optimizer, and "
                         f"mmunlearner.forget_optimizer differs from it ({shown}), which would be ignored: set the "
                         f"two alike, or mmunlearner.optimizers=two")


def check_manu(m) -> None:
    number(m.alpha, "manu.alpha", 0, 100)  # 0 prunes nothing (bench/manu_sweep.py's before-run)
    number(m.tau, "manu.tau", 0)  # the frequency statistic's |activation| threshold: below 0 every token counts
    prune = m.get("prune")
    if prune is None:
        raise ValueError("manu.prune is null: give {mode: zero} (or {mode: scale, factor: <0-1>})")
    one_of(prune.get("mode"), ("zero", "scale"), "manu.prune.mode")
    if prune.mode == "scale":  # the share of a pruned neuron's output kept: above 1 amplifies it, below 0 flips it
        number(prune.get("factor"), "manu.prune.factor", 0, 1)
    positive_int(m.batch_size, "manu.batch_size")
    optional_positive_int(m.get("max_retain_people"), "manu.max_retain_people", "every retain person")
    boolean(m.get("mask_padding", True), "manu.mask_padding")  # "false", a string, masked the padding
    o = m.get("official")
    if o is not None:  # refused whatever manu.selection, as eval.relearn.data whether or not the attack runs
        booleans(o, {"retain_subset": True, "pooled_layers": True}, "manu.official")
    check_manu_choices(m)
    if m.get("selection") == "official" and o is not None and o.get("pooled_layers"):
        layers = o.get("layers")
        if layers is not None and (not hasattr(layers, "items") or set(layers) != {"vision", "language"}):
            raise ValueError(f"manu.official.layers={layers!r}: give both towers, vision and language "
                             "(null for a tower: its last manu.official.apply_last layers)")
        for tower, wanted in (layers or {}).items():  # "abc" or -1 stopped in int() or iter() after the statistics
            if wanted is not None and (not _is_list(wanted) or not wanted
                                       or not all(_is_int(i) and i >= 0 for i in wanted)):
                raise ValueError(f"manu.official.layers.{tower}={wanted!r}: expected null (its last "
                                 "manu.official.apply_last layers) or a non-empty list of layer numbers, from 0")
        nonnegative_int(o.get("apply_last"), "manu.official.apply_last")  # 0 prunes nothing, as manu.alpha=0


def check_manu_choices(m) -> None:
    """The choices MANU's run refused only at its start (after the before-evaluation) and manu.weights, refused
    after the statistics pass, from the constants the method and its callbacks read them by."""
    from unlearn.manu.choices import (IMPORTANCE_KEYS, NEURONS, OFFICIAL_UNITS, SCOPES, SELECTIONS, VARIANTS,
                                      check_weights)

    selection = m.get("selection", "project")
    one_of(selection, SELECTIONS, "manu.selection")
    one_of(m.score, VARIANTS, "manu.score")
    one_of(m.scope, SCOPES, "manu.scope")
    one_of(m.get("neuron", "input"), NEURONS, "manu.neuron")
    o = m.get("official")
    if o is not None:
        one_of(o.get("unit", "output"), OFFICIAL_UNITS, "manu.official.unit")
        positive_int(o.get("chunk_size"), "manu.official.chunk_size")
        # read by the official selection's statistics pass, after the before-evaluation (until 2026-12-07 not
        # checked: a negative clamp made every activation -clamp, a nan one every statistic nan, without a word)
        number(o.get("clamp", 1000.0), "manu.official.clamp", 0, low_open=True)
        integer(o.get("seed", 0), "manu.official.seed")
    if selection == "official" and (m.score != "reference" or m.scope != "tower"):
        raise ValueError(f"manu.selection=official uses the authors' score and one top-alpha per tower; "
                         f"manu.score={m.score!r} / manu.scope={m.scope!r} must be 'reference' / 'tower'")
    weights = m.get("weights")
    if weights is None:
        return
    if not hasattr(weights, "items"):
        raise ValueError(f"manu.weights={weights!r}: expected null or {{{': N, '.join(IMPORTANCE_KEYS)}: N}} "
                         "(a partial one overrides the score's own)")
    check_weights(weights, IMPORTANCE_KEYS, nonnegative=m.score == "paper")


# the sections whose keys are defined where their defaults live (experiment presets only set them), and the
# nested sub-sections of fixed shape checked the same way
DEFINED_IN = {"method": "method", "mmunlearner": "method", "manu": "method", "eval": ".", "data": "data",
              "model": "model"}
REFUSED_UNKNOWN = ("method", "mmunlearner", "manu", "eval")  # data: warned (a user's preset may hold free keys)
NESTED = {"eval": ("relearn",), "manu": ("official", "prune"), "data": ("spec",)}


@functools.lru_cache(maxsize=None)
def defined_keys(section: str) -> dict[str, frozenset]:
    """The keys some config in the section's own directory sets (configs/method/*.yaml for method, manu and
    mmunlearner, configs/config.yaml for eval), top level ("") and per nested sub-section. Why: Hydra refuses an
    unknown key on the command line, but a preset merges any key it writes, so a misspelt
    `method: {shedule: sequential}` in a copied experiment would run the default schedule without a word."""
    import yaml

    from unlearn.config import CONFIG_DIR

    where = CONFIG_DIR / DEFINED_IN[section]
    files = [CONFIG_DIR / "config.yaml"] if DEFINED_IN[section] == "." else sorted(where.glob("*.yaml"))
    found: dict[str, set] = {"": set(), **{n: set() for n in NESTED.get(section, ())}}
    for f in files:
        text = f.read_text()
        tree = yaml.safe_load(text) or {}
        if "@package _global_" not in text and f.parent != CONFIG_DIR:
            tree = {f.parent.name: tree}
        node = tree.get(section)
        if isinstance(node, dict):
            found[""].update(k for k in node if k != "defaults")
            for nested in found.keys() - {""}:
                if isinstance(node.get(nested), dict):
                    found[nested].update(node[nested])
    return {k: frozenset(v) for k, v in found.items()}


def warn_unknown_data_keys(cfg) -> None:
    """Top-level `data` keys no shipped data config defines, and `data.spec` keys no data config's spec defines and
    nothing in the run's config reads (`${data.spec.<key>}`). Not refused: a user's data preset may keep free keys
    for its own interpolations (CLEAR's `path`). Warned: the eval reads `data.mc_mode`, `data.eval_protocol` and
    the like with a default (configs/config.yaml), so a misspelt one leaves the default in force without a word;
    a misspelt spec key of a spec without `_target_` (CLEAR, MLLMU-Bench) is read by nothing, yet enters the vanilla
    model's cache key. A spec with `_target_` is built by its class before the run (check_spec), which refuses an
    unknown key."""
    import re

    from omegaconf import OmegaConf

    data = cfg.data
    known = defined_keys("data")[""] | data_keys_read_by_eval()
    unknown = sorted(set(data) - known)
    if unknown:
        log.warning("data has keys that no config in configs/data/ defines and the eval does not read: %s (read only "
                    "through your own interpolations; a misspelt one leaves its default in force; known: %s)",
                    unknown, sorted(known))
    spec = data.get("spec")
    if spec is None or "_target_" in spec:
        return
    defined = own_spec_keys(str(data.get("name"))) or defined_keys("data")["spec"]
    # interpolations stay unresolved here; read inside `${...}` alone: a W&B run named by its overrides holds
    # `data.spec.<key>=` as text (unlearn/run_names.py), which read the misspelt key as read
    read = set(re.findall(r"\$\{[^}]*?data\.spec\.(\w+)", OmegaConf.to_yaml(cfg)))
    unread = sorted(set(spec) - defined - read)
    fast = debug_fast_spec_keys()
    if fast and fast <= set(unread):
        # all of debug=fast's own keys (one typed alone is the user's): the warning below read as though the user
        # had misspelt them (until the forty-sixth session, on every debug=fast run of a benchmark snapshot)
        log.warning("data.spec keys %s are debug=fast's, which shrink the embedded benchmark only: data=%s reads "
                    "every row of its snapshot (debug=fast still shortens teaching and the evaluation); they enter "
                    "the vanilla model's cache key and nothing else", sorted(fast), data.get("name"))
        unread = sorted(set(unread) - fast)
    if unread:
        log.warning("data.spec has keys that no data config defines and nothing reads: %s (a misspelt one is ignored, "
                    "but enters the vanilla model's cache key; known: %s)", unread, sorted(defined))


@functools.lru_cache(maxsize=None)
def debug_fast_spec_keys() -> frozenset:
    """The `data.spec` keys configs/debug/fast.yaml writes (the embedded benchmark's)."""
    from unlearn.config import shipped_config

    return frozenset(((shipped_config("debug", "fast").get("data") or {}).get("spec") or {}))


def own_spec_keys(name: str) -> frozenset:
    """The `spec` keys of the shipped data config `name` (configs/data/<name>.yaml), empty where there is none. Why:
    the union over every data config let `debug=fast`'s embedded-benchmark keys (num_people, ...) pass under
    data=clear or mllmu_bench, where nothing reads them, until 2026-12-05: the whole benchmark ran."""
    from unlearn.config import shipped_config

    spec = shipped_config("data", name).get("spec")
    return frozenset(spec) if isinstance(spec, dict) else frozenset()


@functools.lru_cache(maxsize=None)
def data_keys_read_by_eval() -> frozenset:
    """The data keys configs/config.yaml reads with a default (`${oc.select:data.<key>,...}`)."""
    import re

    from unlearn.config import CONFIG_DIR

    return frozenset(re.findall(r"oc\.select:data\.(\w+)", (CONFIG_DIR / "config.yaml").read_text()))


STUB_SECTIONS = {"manu": "manu", "mmunlearner": "mmunlearner", "finetune": "finetune"}  # where their settings live


@functools.lru_cache(maxsize=None)
def top_level_keys() -> frozenset:
    """The top-level keys some config writes: configs/config.yaml's own and its groups', and those of every
    `@package _global_` preset (an experiment's own section, MANU's and MMUnlearner's)."""
    import yaml

    from unlearn.config import CONFIG_DIR

    root = yaml.safe_load((CONFIG_DIR / "config.yaml").read_text())
    keys = set(root) | {next(iter(d)) for d in root["defaults"] if isinstance(d, dict)}
    for f in CONFIG_DIR.glob("*/*.yaml"):
        text = f.read_text()
        if "@package _global_" in text:
            keys |= set(yaml.safe_load(text) or {})
    return frozenset(keys - {"defaults"})


def warn_unknown_model_and_top_keys(cfg) -> None:
    """`+model.dtyp=float16` or `+save_modle=false` ran with the default in force, without a word (until
    2026-12-05). Warned, not refused, as data's: a user's own model config or preset may keep free keys for its
    interpolations."""
    # a method's own section, named after it (MANU's manu.*): also that of a method of your own, whose config
    # is not among configs/ (docs/guide/adding_a_method.md)
    method = cfg.get("method")  # a gradient baseline's settings are method.*: its name is no section of its own
    own = method.get("name") if hasattr(method, "get") and "loss" not in method else None
    unknown = sorted(set(cfg) - top_level_keys() - {"hydra", own})
    if unknown:
        log.warning("top-level keys that no config defines and nothing reads: %s (a misspelt one leaves its default "
                    "in force; known: %s)", unknown, sorted(top_level_keys()))
    model = cfg.get("model")
    if model is not None:
        defined = defined_keys("model")[""]
        unknown = sorted(set(model) - defined)
        if unknown:
            log.warning("model has keys that no config in configs/model/ defines: %s (read only through your own "
                        "interpolations; a misspelt one leaves its default in force; known: %s)", unknown,
                        sorted(defined))


def shipped_methods() -> set[str]:
    """The methods configs/method/ defines (their files' names)."""
    from unlearn.config import CONFIG_DIR

    return {f.stem for f in (CONFIG_DIR / "method").glob("*.yaml")}


def check_own_method_keys(node, name: str) -> None:
    """A method of the user's own (not a gradient baseline) reads its settings under `<name>.*`: a gradient
    baseline's key in `method` (`+method.epochs=50`, which the baselines' configs define) is read by nothing the
    pipeline runs. Refused when typed on the command line, warned when a config carries it (a baseline preset sets
    such keys for whichever method runs; a config copied from ga.yaml too). Until 2026-12-06 both ran silently."""
    extra = sorted(set(node) - {"name", "run"})
    typed = typed_override_keys() or set()
    if refused := [f"method.{k}" for k in extra if f"method.{k}" in typed]:
        raise ValueError(f"{', '.join(refused)}: method={name} is not a gradient baseline, whose settings these are; "
                         f"its run(ctx) reads its own under {name}.* (e.g. +{name}.{refused[0].split('.', 1)[1]}=...)")
    if extra:
        log.warning("method.%s: gradient baselines' settings, which method=%s reads only if its run(ctx) does; its "
                    "own settings belong under %s.*", ", method.".join(extra), name, name)


def check_required_keys(cfg) -> None:
    """Keys a config or a `~key` override can delete: `method.name` and `method.run`, and every key
    configs/config.yaml sets under `eval` (eval.relearn's too), the run reading each, some with a default where
    absent (`~eval.reference_run` meant null: write `eval.reference_run=null`). Until 2026-12-06 a deleted one
    failed where it was first read: `~eval.relearn` after the method had run (hours at 7B), a method config
    without `name` with OmegaConf's traceback."""
    method = cfg.get("method")
    if method is None:
        raise ValueError("method is missing: choose one (method=manu, ga, ...; docs/guide/adding_a_method.md for "
                         "one of your own)")
    for key in ("name", "run"):
        if method.get(key) is None:
            raise ValueError(f"method.{key} is missing: a method config sets method.name (its file's name) and "
                             f"method.run (the function the pipeline calls; docs/guide/adding_a_method.md)")
    hint = {"eval.relearn": "; eval.relearn.enabled=false turns the attack off"}
    for section, keys in (("eval", defined_keys("eval")[""]), ("eval.relearn", defined_keys("eval")["relearn"])):
        node = cfg.get("eval") if section == "eval" else cfg.eval.get("relearn")
        if node is None:
            raise ValueError(f"{section} is missing or null: every run reads it{hint.get(section, '')}")
        if missing := sorted(f"{section}.{k}" for k in keys if k not in node):
            raise ValueError(f"{missing[0]} is missing (deleted by `~{missing[0]}`?): every run reads "
                             f"{', '.join(missing)}{hint.get(missing[0], '; set a value instead')}")


def check_known_keys(cfg) -> None:
    warn_unknown_model_and_top_keys(cfg)
    if cfg.get("data") is not None:
        warn_unknown_data_keys(cfg)
    for section in REFUSED_UNKNOWN:
        node = cfg.get(section)
        if node is None:
            continue
        if section == "method" and "loss" not in node:  # manu / mmunlearner / finetune: `method` is a stub
            # whose gradient-method keys a baseline preset may carry (unread); a key no method config defines is
            # refused (until 2026-12-05 unchecked: `+method.lrr=1` under MANU ran without a word)
            name = node.get("name", "?")
            unknown = sorted(set(node) - defined_keys(section)[""])
            if unknown:
                raise ValueError(f"method has no setting {unknown}; method={name}'s own settings are under "
                                 f"{STUB_SECTIONS.get(name, name)}.*")
            if name not in shipped_methods():
                check_own_method_keys(node, name)
            continue
        keys = defined_keys(section)
        known_keys(node, keys[""], section)
        for nested in NESTED.get(section, ()):
            if node.get(nested) is not None:
                known_keys(node[nested], keys[nested], f"{section}.{nested}")


# the precisions (Lightning's names, old and new) that leave a cast copy as it is: 32-true, and the mixed ones,
# whose autocast the copy computes out of; the others (64, *-true, transformer-engine) cast every parameter
PRECISIONS_KEEPING_COPIES = ("32-true", "32", "16-mixed", "16", "bf16-mixed", "bf16")


def check_cast_copies(cfg) -> None:
    """`eval.dtype` and `method.reference_dtype` (read by KL and NPO): copies of the model in another precision,
    which compute in their own dtype with the trainer's autocast turned off for them (precision.own_precision),
    so 32-true and the *-mixed precisions leave them as they are. Any other precision casts the copy with the
    model; FSDP flattens each unit's parameters into one dtype (torch refuses float32 beside float16) and gathers
    them in its param_dtype: both refused."""
    from unlearn.fsdp_refusals import uses_fsdp
    from unlearn.methods.gradient_settings import NEEDS_REFERENCE
    from unlearn.models.dtype_names import check_dtype_name

    precision = str(cfg.trainer.get("precision", "32-true"))
    copies = {"eval.dtype": cfg.eval.get("dtype"), "method.reference_dtype": cfg.method.get("reference_dtype")}
    for key, value in copies.items():  # a misspelt dtype is refused for any method
        if value is not None:
            check_dtype_name(value, key)
    if cfg.method.get("loss") not in NEEDS_REFERENCE:  # GA and GradDiff never make a reference
        copies["method.reference_dtype"] = None
    for key, value in copies.items():
        if value is None:
            continue
        if uses_fsdp(cfg.trainer):
            raise ValueError(f"{key}={value} does not run under trainer=fsdp (FSDP flattens each unit's parameters "
                             f"into one dtype and gathers them in the trainer's precision): use trainer=ddp or gpu, "
                             f"or {key}=null")
        if precision not in PRECISIONS_KEEPING_COPIES:
            raise ValueError(f"{key}={value} needs trainer.precision=32-true or a *-mixed precision (it is "
                             f"{precision}, which casts the copy with the model)")


def check_base(cfg) -> None:
    """`model.base` (the organism's stage 1, unlearn/models/base.py), checked as the teaching recipe is where the run
    builds its vanilla model: until 2026-12-07 read only as pretraining began, so `model.base.optimizer.lr=-1`
    pretrained up the loss, and `model.base.epochs=0` or a batch size of "abc" stopped in Lightning or torch."""
    b = cfg.model.get("base")
    if b is None or not teaches(cfg) or cfg.method.name == "finetune" and cfg.model.get("path"):
        return
    integer(b.get("seed", 0), "model.base.seed")
    check_spec(b.get("world"), "model.base.world")
    check_teaching_steps(b, "model.base")
    check_scheduler(b.get("scheduler"), b.get("optimizer"), "model.base.scheduler", total_steps=PROBE_STEPS)


def teaches(cfg) -> bool:
    """Whether the run teaches a model: method=finetune, or a built model's vanilla teaching (no model.path)."""
    return cfg.method.name == "finetune" or bool(cfg.model.get("build") and not cfg.model.get("path"))


def check_teaching_load(cfg) -> None:
    """finetune.dtype=float32 on a float16 / bfloat16 load teaches weights the load already rounded: finetune=
    mllmu_bench on a bfloat16 load would teach llava-1.5-7b-hf's float16 weights rounded to bfloat16, which
    MLLMU-Bench (a float16 load, then the float32 upcast) never does. Refused where teaching runs (method=finetune,
    or a built model's vanilla teaching without model.path), unless the load is the rounding the recipe asks for
    (finetune.start_precision equal to model.dtype)."""
    f = cfg.get("finetune") or {}
    wanted, loaded, start = f.get("dtype"), cfg.model.get("dtype"), f.get("start_precision")
    if not teaches(cfg) or wanted != "float32" or loaded not in ("float16", "bfloat16") or start == loaded:
        return
    asked = f"finetune.start_precision={start} asks for" if start else "nothing asks for"
    raise ValueError(f"finetune.dtype={wanted} upcasts weights loaded in model.dtype={loaded}, so they are rounded to "
                     f"{loaded} first, which {asked}: set model.dtype={wanted} (finetune.start_precision then rounds "
                     f"the weights as a script's own load does)")


def check_teaching_data(cfg) -> None:
    """finetune.train_pairs: the rows a recipe assumes (MMUnlearner's CLEAR scripts: captions with their images and
    TOFU's questions text-only, data.spec.train_pairs=clear). Under another data.spec.train_pairs the same forms
    would teach other pairs (both_forms: name pairs and image-form TOFU questions too) without a word."""
    f = cfg.get("finetune") or {}
    wanted = f.get("train_pairs")
    if wanted is None or not teaches(cfg):
        return
    spec = cfg.data.get("spec") or {}
    if spec.get("train_pairs") != wanted:
        raise ValueError(f"finetune.train_pairs={wanted}: this recipe's rows are data.spec.train_pairs={wanted}'s, but "
                         f"the data (data={cfg.data.get('name')}) has data.spec.train_pairs={spec.get('train_pairs')}: "
                         f"set data.spec.train_pairs={wanted} (the preset's header gives the command)")


def check_mmunlearner_clear_eval(cfg) -> None:
    """eval.protocol=mmunlearner_clear scores CLEAR_eval.py's tasks alone (its `scored` drops the rest): a setting
    that asks for another would report nothing for it, so it is refused by name."""
    e = cfg.eval
    check_eval_lists(e)  # read as lists below (until 2026-12-08 `eval.splits=-1` stopped the check with a TypeError)
    if cfg.data.get("name") != "clear":
        raise ValueError(f"eval.protocol=mmunlearner_clear is MMUnlearner's CLEAR_eval.py, which scores CLEAR's tasks; "
                         f"data={cfg.data.get('name')} has other items: use data=clear, or eval.protocol=mmunlearner "
                         f"(their MLLMU_eval.py) on data=mllmu_bench")
    for key, splits in (("eval.splits", e.splits), ("eval.relearn.splits", relearn_splits(e))):
        if "test" in splits:
            raise ValueError(f"{key} has test, which eval.protocol=mmunlearner_clear (CLEAR_eval.py) does not score; "
                             f"drop it")
    extra = sorted(set(e.tasks) - {"mc", "gen"})
    if extra:
        raise ValueError(f"eval.tasks has {extra}, which eval.protocol=mmunlearner_clear (CLEAR_eval.py: MC and "
                         f"generation) does not score: set eval.tasks=[mc, gen]")
    if e.mc_mode != "generate" or e.get("mc_also") is not None:
        raise ValueError(f"eval.protocol=mmunlearner_clear reads MC from a generated letter, as CLEAR_eval.py does: "
                         f"set eval.mc_mode=generate and eval.mc_also=null (got eval.mc_mode={e.mc_mode!r}, "
                         f"eval.mc_also={e.get('mc_also')!r})")
    if e.get("scorer") != "mmunlearner":
        raise ValueError(f"eval.protocol=mmunlearner_clear reads replies as CLEAR_eval.py does (the MC letter after "
                         f"dropping every character but letters and digits): set eval.scorer=mmunlearner (got "
                         f"{e.get('scorer')!r}, data=clear's default); `python -m unlearn.rescore` reads a finished "
                         f"run another way")


# the loader that can honour data.on_bad_row=score (MLLMU-Bench's eval.py's reading of MLLMU-Bench's rows)
SCORING_LOADERS = ("unlearn.data.benchmark.load_mllmu_bench",)


def check_bad_rows(data) -> None:
    """data.on_bad_row: one of the loaders' policies, and score only where the data's loader can honour it (the
    embedded benchmark, CLEAR: their rows are not MLLMU-Bench's eval.py's to score), refused before anything loads,
    naming the key."""
    from unlearn.data.schema import ON_BAD_ROW

    bench = data.get("benchmark") or {}
    for key, value in (("data.on_bad_row", data.get("on_bad_row")), ("data.benchmark.on_bad_row",
                                                                     bench.get("on_bad_row"))):
        if value is not None:  # refused as the benchmark loaded, a few seconds in (until 2026-12-08)
            one_of(value, ON_BAD_ROW, key)
        if value == "score" and bench.get("_target_") not in SCORING_LOADERS:
            raise ValueError(f"{key}=score keeps the rows MLLMU-Bench's eval.py scores and scores them as it does: "
                             f"only data=mllmu_bench can (data={data.get('name')} reads its rows with "
                             f"{bench.get('_target_')}); use error or skip")


def check_teaching_family(cfg) -> None:
    """finetune.family against a local checkpoint's config.json, before its weights load (a 7B load otherwise
    reaches teaching, where `unlearn.methods.finetune.check_family` would stop it). A hub id or a built model is
    checked there, once loaded."""
    import json
    from pathlib import Path

    f = cfg.get("finetune") or {}
    wanted, path = f.get("family"), cfg.model.get("path")
    if wanted is None or cfg.method.name != "finetune" or not path:
        return
    config = Path(str(path)).expanduser() / "config.json"
    if not config.is_file():
        return
    model_type = json.loads(config.read_text()).get("model_type")
    if model_type is not None and model_type != wanted:
        from unlearn.methods.finetune import check_family

        check_family(wanted, model_type, cfg.model.name)


def check_accelerator(trainer) -> None:
    """trainer=gpu / ddp / fsdp on a machine without a GPU stopped in Lightning ("No supported gpu backend
    found!"), naming no way out; refused as a run starts (pipeline.run; check_run_settings validates GPU configs
    on any machine), with the CPU presets named."""
    if str(trainer.get("accelerator", "cpu")) in ("gpu", "cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError("trainer.accelerator=gpu (trainer=gpu, ddp or fsdp) and no GPU is visible here: on CPU use "
                             "trainer=cpu, or trainer=ddp_sim / fsdp_sim for several CPU processes")


def check_logger(logger) -> None:
    """A logger config names its class: without `_target_` Hydra hands Lightning the config itself, which failed
    at the Trainer's first log call as "Missing key log_hyperparams" (until 2026-12-06)."""
    if logger is not None and hasattr(logger, "keys") and "_target_" not in logger:
        raise ValueError(f"logger has no _target_ (its keys: {sorted(logger)}): a logger config names its class, "
                         f"e.g. `_target_: lightning.pytorch.loggers.CSVLogger` (configs/logger/csv.yaml), or "
                         f"logger=none for no logger")


FSDP_SHARDING = ("FULL_SHARD", "SHARD_GRAD_OP", "NO_SHARD", "HYBRID_SHARD", "_HYBRID_SHARD_ZERO2")  # torch's names


def check_fsdp_strategy(strategy) -> None:
    """trainer=fsdp's strategy (unlearn.strategies.fsdp_strategy), read as the first Trainer is built (on a 7B model
    after it loaded): `model.fsdp_layers='abc'` was imported letter by letter ("cannot import 'a'"), a misspelt
    sharding strategy refused by torch, and "abc" for a flag turned it on (until 2026-12-08)."""
    if not hasattr(strategy, "items") or strategy.get("_target_") != "unlearn.strategies.fsdp_strategy":
        return
    layers = strategy.get("layers")
    if not _is_strings(layers) or not all("." in c for c in layers):
        raise ValueError(f"model.fsdp_layers={layers!r}: expected a non-empty list of the transformer block classes "
                         "to shard, by their dotted paths (transformers.models.llama.modeling_llama.LlamaDecoderLayer)")
    one_of(strategy.get("sharding_strategy", "FULL_SHARD"), FSDP_SHARDING, "trainer.strategy.sharding_strategy")
    one_of(strategy.get("state_dict_type", "full"), ("full", "sharded"), "trainer.strategy.state_dict_type")
    booleans(strategy, {"activation_checkpointing": True, "cpu_offload": False}, "trainer.strategy")


# Lightning's Trainer flags (true or false): a string such as "false" read as true
TRAINER_FLAGS = ("enable_checkpointing", "enable_progress_bar", "enable_model_summary", "use_distributed_sampler",
                 "detect_anomaly", "barebones", "sync_batchnorm", "inference_mode")


def check_trainer(trainer) -> None:
    """The trainer settings Lightning reads late or misreads. It skips clipping at a clip value <= 0, so
    trainer.gradient_clip_val=-1 ran unclipped, silently; 0 and null are its own ways of saying no clipping."""
    clip = trainer.get("gradient_clip_val")
    if clip is not None:
        number(clip, "trainer.gradient_clip_val", 0)
    for key in ("log_every_n_steps", "accumulate_grad_batches"):  # read by Lightning inside its training loop, after
        if trainer.get(key) is not None:  # the before-evaluation: `abc` stopped there (until 2026-12-06)
            positive_int(trainer[key], f"trainer.{key}")
    # read as Lightning's Trainer is built (a wrong one refused there, 7 s in, or later on a 7B model's run; "abc" for a
    # flag turned it on): until 2026-12-08
    from unlearn.trainer_keys import ACCELERATORS, PRECISIONS, STRATEGIES

    for key, choices in (("accelerator", ACCELERATORS), ("strategy", STRATEGIES)):
        if not hasattr(trainer.get(key, "auto"), "items"):  # one built from its _target_ (WholeModelFSDP): its own
            one_of(trainer.get(key, "auto"), choices, f"trainer.{key}")
    check_fsdp_strategy(trainer.get("strategy"))
    if "precision" in trainer and (isinstance(trainer.precision, bool) or str(trainer.precision) not in PRECISIONS):
        raise ValueError(f"trainer.precision={trainer.precision!r}: expected one of {list(PRECISIONS)}")
    booleans(trainer, {k: True for k in TRAINER_FLAGS if k in trainer}, "trainer")
    devices = trainer.get("devices", 1)
    if isinstance(devices, (bool, float)) or (isinstance(devices, int) and devices < 1 and devices != -1):
        raise ValueError(f"trainer.devices={devices!r}: expected an integer >= 1, -1 or auto (every device), or a "
                         "list of device indices")
    strategy = str(trainer.get("strategy", "auto"))
    if isinstance(devices, int) and not isinstance(devices, bool) and devices > 1 and strategy == "auto":
        # Lightning's default DDP stops at the first step that leaves a parameter without a gradient (a frozen
        # tower's, a reference's), after the before-evaluation: until 2026-12-05 `trainer=cpu trainer.devices=2`
        raise ValueError(f"trainer.devices={devices} without trainer.strategy: Lightning's default DDP stops at "
                         "parameters a step leaves unused; use trainer=ddp_sim (CPU processes), trainer=ddp or "
                         "trainer=fsdp (GPUs)")


class SettingsError(ValueError):
    """A setting refused before anything ran (pipeline.run's checks): `python train.py` prints its message alone,
    without the traceback Hydra prints for a failure inside a run (until 2026-12-05 it printed one for a
    misspelt `+manu.alpah=5` too)."""


def interpolation_source(cfg, message: str) -> str:
    """`message` (a check's `key=value: ...`) naming the key the user sets when the checked key takes its value
    from another (`manu.alpha: ${model.manu_alpha}`): `model.manu_alpha=150` was refused as `manu.alpha=150`, a
    key the user never wrote."""
    import re

    from omegaconf import OmegaConf

    match = re.match(r"([\w.]+)=", message)
    if not match or "." not in match.group(1):
        return message
    parent_key, _, last = match.group(1).rpartition(".")
    parent = OmegaConf.select(cfg, parent_key, default=None, throw_on_resolution_failure=False)
    if not OmegaConf.is_dict(parent) or last not in parent or not OmegaConf.is_interpolation(parent, last):
        return message
    source = re.fullmatch(r"\$\{([\w.]+)\}", str(parent._get_node(last)._value()))
    return f"{message} ({match.group(1)} is set by {source.group(1)})" if source else message


@contextlib.contextmanager
def refusing_before_run(*types: type[BaseException]):
    """An error of `types` raised inside is marked a refusal before the run (refused_before_run): checks that raise
    their own types (an input file's, a method's check before the before-evaluation) print their message alone."""
    try:
        yield
    except types as e:
        e.refused_before_run = True
        raise


def refused_before_run(error: BaseException) -> bool:
    """Whether `error` is a refusal before anything ran: a SettingsError, or an input file's (the checkpoint a
    run resumes, the reference, a reused mask: their checks keep their own types, FileNotFoundError or
    CheckpointError, and are marked by pipeline.run), which `python train.py` prints alone too (until 2026-12-05
    after Hydra's traceback)."""
    return isinstance(error, SettingsError) or getattr(error, "refused_before_run", False)


# MMUnlearner's saliency-mask settings: what mmunlearner.apply_mask=false never reads
MASK_SETTINGS = ("gamma", "mask_fraction", "groups", "eligible", "fisher_labels", "fisher_batch_size",
                 "fisher_shuffle", "fisher_dtype", "preserve_text", "preserve_batches")


def unread_settings(cfg) -> dict[str, str]:
    """The keys this run's other settings leave unread, each with the reason (a run sets them without effect)."""
    out = {}
    name = cfg.method.name
    if name in ("manu", "mmunlearner"):
        out["data.forget_modality"] = (f"read by the gradient methods only; {name} reads the forget people in the "
                                       "forms its recipe names")
    if name in ("evaluate", "finetune"):  # until the fifty-first session not warned: it trains on no forget data
        out["data.forget_modality"] = ("read by the gradient methods only; " + (
            "evaluate trains nothing" if name == "evaluate" else "finetune teaches every person in finetune.forms"))
    # .get: the report reads this from recorded configs, and a run of older code may lack a method's node
    if name == "mmunlearner" and not (cfg.get("mmunlearner") or {}).get("apply_mask", True):
        out |= {f"mmunlearner.{k}": "mmunlearner.apply_mask=false computes no saliency mask" for k in MASK_SETTINGS}
    if name == "manu" and (cfg.get("manu") or {}).get("selection", "project") == "official":
        out |= {f"manu.{k}": "manu.selection=official gathers the authors' statistics"
                for k in ("neuron", "mask_padding")}
    return out


def warn_unread_overrides(cfg) -> list[str]:
    """Warn of each command-line override of `train.py` that the run never reads (unread_settings): until
    2026-12-05 `experiment=mmunlearner_official mmunlearner.gamma=2` wrote the default official run's very weights
    under a name that said gamma=2. Only what the user typed: a preset that sets such a key for the record is
    not warned. Returns the keys warned."""
    given = typed_override_keys()
    if given is None:
        return []
    unread = unread_settings(cfg)
    warned = sorted(k for k in given if k in unread)
    for k in warned:
        log.warning("%s is set and never read: %s", k, unread[k])
    return warned


def typed_override_keys() -> set[str] | None:
    """The keys `python train.py` was given on its command line (None outside a Hydra run: the frontier, tests)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return {o.split("=", 1)[0].lstrip("+~") for o in HydraConfig.get().overrides.task}


def warn_untaught_checkpoint(cfg) -> bool:
    """Warn when an unlearning run starts from the model config's own hub id (llava-hf/llava-1.5-7b-hf): the
    released base model, which was never taught the fictitious people, so there is nothing to unlearn. Every
    preset's header says model.path=<vanilla>; until 2026-12-05 forgetting it ran on the base without a word.
    A hub id typed on the command line (a published vanilla model) is the user's choice and is not warned."""
    from unlearn.models.checkpoint_files import looks_local

    path, given = cfg.model.get("path"), typed_override_keys()
    if (cfg.method.name == "finetune" or not path or cfg.model.get("build") or given is None or "model.path" in given
            or looks_local(path)):
        return False
    log.warning("model.path=%s is model=%s's default, the released checkpoint, which was never taught the benchmark's "
                "people: unlearning it forgets nothing it learnt. Teach it first (python train.py method=finetune "
                "model=%s ...) and give model.path=<that run>/model", path, cfg.model.name, cfg.model.name)
    return True


@builds_last()  # the optimisers and schedulers built after every other check
def check_run_settings(cfg, keys_checked: bool = False) -> None:
    """Every section the run reads, checked before the vanilla model is taught or the before-evaluation runs
    (`keys_checked`: check_known_keys has run, and said its warnings)."""
    if not keys_checked:
        check_known_keys(cfg)
    warn_unread_overrides(cfg)
    warn_untaught_checkpoint(cfg)
    boolean(cfg.get("save_model", True), "save_model")
    boolean(cfg.method.get("changes_model", True), "method.changes_model")  # "abc" read as true: evaluated twice
    check_trainer(cfg.get("trainer") or {})
    check_logger(cfg.get("logger"))
    integer(cfg.seed, "seed")
    integer(cfg.get("teach_seed", cfg.seed), "teach_seed")
    integer(cfg.eval.get("few_shot_seed", 0), "eval.few_shot_seed")
    spec = cfg.data.get("spec")
    if spec is not None and "seed" in spec:
        integer(spec.seed, "data.spec.seed")
    if "loss" in cfg.method:
        from unlearn.methods.gradient_settings import FORGET_FORMS

        one_of(cfg.data.get("forget_modality", "multimodal"), tuple(FORGET_FORMS), "data.forget_modality")
    check_bad_rows(cfg.data)
    check_spec(cfg.data.get("spec"), "data.spec")  # the embedded benchmark's (MiniSpec); a loader's where it loads
    check_model(cfg.model)
    if cfg.eval.protocol == "mmunlearner_clear":
        check_mmunlearner_clear_eval(cfg)
    check_eval(cfg.eval)
    check_cast_copies(cfg)
    check_base(cfg)
    if cfg.get("finetune") is not None:
        check_finetune(cfg.finetune)
        if teaches(cfg):  # built only where teaching runs (a run on a given checkpoint never calls it)
            check_scheduler(cfg.finetune.get("scheduler"), cfg.finetune.get("optimizer"), "finetune.scheduler",
                            total_steps=PROBE_STEPS)
        check_teaching_load(cfg)
        check_teaching_data(cfg)
        check_teaching_family(cfg)
    if "loss" in cfg.method:  # the gradient methods
        check_gradient_method(cfg.method)
    if cfg.method.name == "mmunlearner":
        check_mmunlearner(cfg.mmunlearner)
        check_mmunlearner_loss_scale(cfg)
    if cfg.method.name == "manu":
        check_manu(cfg.manu)
        check_official_statistics_family(cfg)
    check_lora_targets(cfg)


def check_lora_targets(cfg) -> None:
    """Each LoRA section the run reads, enabled, has targets (unlearn.mmunlearner.lora.lora_targets): its own or
    model.lora_target_modules. Before anything runs: the vanilla teaching's finetune.lora was read only as the
    adapters were made, after the model was built."""
    from unlearn.mmunlearner.lora import lora_targets

    sections = []
    if cfg.get("finetune") is not None and teaches(cfg):
        sections.append(("finetune.lora", cfg.finetune.get("lora")))
    if "loss" in cfg.method:
        sections.append(("method.lora", cfg.method.get("lora")))
    if cfg.method.name == "mmunlearner" and cfg.get("mmunlearner") is not None:
        sections.append(("mmunlearner.lora", cfg.mmunlearner.get("lora")))
    for key, lora in sections:
        if lora and lora.get("enabled"):
            targets = lora_targets(lora, cfg.model, key)
            if not lora.get("target_modules"):  # the model's
                lora_target_names(targets, "model.lora_target_modules")


FLAT_VISION_TYPES = ("qwen2_vl", "qwen2_5_vl")  # vision blocks see (patches, width): no batch axis


def check_official_statistics_family(cfg) -> None:
    """manu.selection=official on Qwen2-VL: its vision blocks see (patches, width) with no batch axis, which the
    authors' per-position statistics cannot read; the run stopped there after the before-evaluation, with a
    traceback (until 2026-12-06)."""
    if cfg.manu.get("selection", "project") != "official":
        return
    types = list(cfg.model.get("model_types") or ())
    if types and all(t in FLAT_VISION_TYPES for t in types):
        raise ValueError(f"manu.selection=official on model={cfg.model.name}: its vision blocks see (patches, "
                         "width) with no batch axis, which the authors' per-position statistics (rows, positions, "
                         "neurons) cannot read; use manu.selection=project (the MANU authors published no Qwen2-VL "
                         "hooks)")


def check_checkpoint_family(cfg) -> None:
    """A local real checkpoint under a model config of another family (model=llava_1_5_7b on a Qwen2-VL folder), or
    under the embedded model's config (model= left out: tiny_llava, which has no template), from its config.json.
    Why: both were refused only when the model loaded, after the benchmark, with Hydra's traceback (until the
    forty-sixth session); the first named no config to choose, the second only "its model config needs a
    `template`"."""
    from unlearn.models.checkpoint_files import (CONFIG_NAME, CheckpointError, check_family, checkpoint_config,
                                                 configured_model_types, family_advice)

    where = Path(str(cfg.model.path)).expanduser()
    if (where / CONFIG_NAME).is_file():  # the embedded model: its own processor and config
        return
    if cfg.model.get("build") or not cfg.model.get("template"):
        model_type = (checkpoint_config(where) or {}).get("model_type")
        raise CheckpointError(f"model.path={cfg.model.path} is a real checkpoint (its config.json says model_type "
                              f"{model_type!r}), but model={cfg.model.get('name')} is written for the embedded "
                              f"model (no template): {family_advice(str(model_type))}")
    check_family(where / "config.json", "model.path", configured_model_types(cfg.model))


def check_reference_model(cfg) -> None:
    """A local KL / NPO reference of another family, or a KL reference with another vocabulary than the model it
    is read beside (their distributions are compared token for token), from the two config.json files. Until
    2026-12-05 the family was refused at the method's start, after the before-evaluation, and another vocabulary
    stopped in an embedding lookup (`IndexError: index out of range in self`) naming no setting. A model whose config.json is not there
    yet (the vanilla model a run is about to teach) is not compared."""
    from unlearn.methods.gradient_settings import NEEDS_REFERENCE
    from unlearn.models.checkpoint_files import check_model_type, checkpoint_config, configured_model_types

    ref = checkpoint_config(cfg.method.reference_path)
    if ref is None or cfg.method.get("loss") not in NEEDS_REFERENCE:
        return
    key = f"method.reference_path={cfg.method.reference_path}"
    check_model_type(ref.get("model_type"), key, "its config.json", configured_model_types(cfg.model))
    # KL compares the two distributions token for token; NPO reads each model's own log-probabilities of the
    # answer's tokens (MMUnlearner's reference script cuts its oracle's vocabulary to the tokenizer's length)
    if cfg.method.loss != "kl" or cfg.method.get("resize_embeddings") is not None:  # resize: both cut alike
        return
    if cfg.model.get("path"):
        own, where = checkpoint_config(cfg.model.path), f"model.path={cfg.model.path}"
    else:
        from unlearn.pipeline import vanilla_path

        own, where = checkpoint_config(vanilla_path(cfg)), "the cached vanilla model"
    mine, theirs = vocabulary(own or {}), vocabulary(ref)
    if mine and theirs and mine != theirs:
        raise ValueError(f"{key}: a vocabulary of {theirs} tokens, and {where} has {mine}: KL compares the two "
                         "models' distributions token for token; give a reference of the same model")


def vocabulary(config: dict) -> int | None:
    """A checkpoint config's vocabulary size: its language model's (text_config), else its own."""
    text = config.get("text_config")
    return (text.get("vocab_size") if isinstance(text, dict) else None) or config.get("vocab_size")


def check_reference_people(cfg) -> None:
    """A reference model this framework taught without the forget people (`finetune.people=without_forget`, as
    MLLMU-Bench's NPO oracle) was taught without one forget split's people: its run directory's config.json (the
    model dir's parent) says which, and another split, or other data, is refused. Until 2026-12-05 a forget_5
    oracle was accepted for forget_15, though it was taught 2 of its 3 people. A checkpoint from elsewhere (no
    such config.json) is not checked."""
    import json

    from unlearn.models.checkpoint_files import resolved_path

    record = Path(str(cfg.method.reference_path)).expanduser().parent / "config.json"
    try:
        taught = json.loads(record.read_text())
    except (OSError, ValueError):
        return
    if not isinstance(taught, dict) or (taught.get("finetune") or {}).get("people") != "without_forget":
        return
    data = taught.get("data") or {}
    differ = {k: (data.get(k), cfg.data.get(k)) for k in ("forget_split", "name") if data.get(k) != cfg.data.get(k)}
    then, now = data.get("path"), cfg.data.get("path")
    if then != now and (then is None or now is None or resolved_path(then) != resolved_path(now)):  # a copy, or other
        log.warning("method.reference_path=%s was taught on data.path=%s, and this run reads %s: the same people "
                    "only if it is the same snapshot", cfg.method.reference_path, then, now)
    if differ:
        shown = "; ".join(f"data.{k}: taught {a!r}, now {b!r}" for k, (a, b) in differ.items())
        raise ValueError(f"method.reference_path={cfg.method.reference_path}: taught without the forget people of "
                         f"other data ({shown}, {record}); teach a reference for this split "
                         f"({taught_recipe(record.parent)} with data.forget_split={cfg.data.get('forget_split')})")


def taught_recipe(run_dir: Path) -> str:
    """The `finetune=` preset a run directory was taught with, from its .hydra/overrides.yaml; the advice named
    finetune=mllmu_bench_reference for every reference until the forty-ninth session, a CLEAR or MMUnlearner
    oracle's (finetune=mmunlearner_clear_reference, ...) included."""
    from unlearn.report import OVERRIDES_FILE, _override_value, _read_overrides

    try:
        preset = _override_value(_read_overrides(run_dir / OVERRIDES_FILE), "finetune")
    except (OSError, ValueError):  # unreadable: the advice stays general
        preset = None
    return f"finetune={preset}" if preset else "the finetune=*_reference recipe that taught it"


def tower_depths(config: dict) -> dict[str, int]:
    """The language and vision towers' layer counts a checkpoint's config.json gives (LLaVA and Idefics2:
    text_config / vision_config num_hidden_layers; Qwen2-VL: num_hidden_layers and vision_config depth); a tower
    it does not give is left out."""
    text, vision = config.get("text_config") or {}, config.get("vision_config") or {}
    depths = {"language": text.get("num_hidden_layers", config.get("num_hidden_layers")),
              "vision": vision.get("num_hidden_layers", vision.get("depth"))}
    return {tower: n for tower, n in depths.items() if isinstance(n, int)}


def check_official_layers(cfg) -> None:
    """`manu.official.layers` against a local checkpoint's layer counts: the preset's LLaVA-1.5 numbers (language
    29-31) on a model with fewer layers were refused only after the before-evaluation and the statistics pass
    (until 2026-12-05; hours at 7B)."""
    from unlearn.models.checkpoint_files import checkpoint_config

    if cfg.method.name != "manu" or cfg.manu.get("selection", "project") != "official" or not cfg.model.get("path"):
        return
    layers = (cfg.manu.get("official") or {}).get("layers") or {}
    config = checkpoint_config(cfg.model.path)
    if config is None:
        return  # a hub id, or a file the load names
    for tower, depth in tower_depths(config).items():
        wanted = layers.get(tower)
        if wanted and (past := sorted(i for i in wanted if not 0 <= int(i) < depth)):
            # "give this model's, or null for its last manu.official.apply_last" until the forty-sixth session:
            # neither the key to set to null nor what apply_last holds
            raise ValueError(f"manu.official.layers.{tower}={list(wanted)}: layers {past} are past the "
                             f"{depth} layers of {cfg.model.path}'s {tower} tower (the preset's numbers are "
                             f"LLaVA-1.5-7B's); give this model's (manu.official.layers.{tower}=[...], numbered from "
                             f"0), or manu.official.layers=null for each tower's last manu.official.apply_last "
                             f"({cfg.manu.official.get('apply_last')}) layers")
