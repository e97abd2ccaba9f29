"""Log-probabilities of several answers after one prompt, the prompt run once.

Why: MC scores each option, and the truth ratio the truth, a paraphrase and the perturbed answers, after the
same image and question. Scored as whole rows, every answer recomputes that prompt, which is most of a row:
three quarters of the likelihood tokens on the embedded benchmark, nearly all of them behind a real LLaVA's
576 image tokens. Here the prompts run once (left-padded, positions counted from each row's first token),
their key/value cache is copied to each of their answers, and the answers run after it: the same
log-probabilities up to float rounding (tests/test_shared_prompt.py holds them to whole rows per family).

Memory: each answer row holds its own copy of its prompt's cache, about 0.3 GB in bf16 on LLaVA-1.5-7B (32
layers x 2 x 4096 x 2 bytes per token, behind 576 image tokens), so the 256 option rows of one MC batch of 64
would hold about 80 GB. The answers therefore run in as many passes as keep the copies of one pass, grown by
their answers, within about `cache_gb` (`eval.shared_cache_gb`), measured on the prompt cache itself, so the
bound holds for any model, image size and prompt length; the prompts' own cache (one batch of them) is outside
it. Whole rows keep no cache (`answer_logprobs`).
"""

from __future__ import annotations

import copy
import inspect
import math

import torch
from transformers import PreTrainedModel, cache_utils

from unlearn.data.collate import IGNORE, Example, collate

# model_type of the models this was checked on. Qwen2-VL places text after an image by 3-D rotary positions
# it derives from the whole row, so its answers are scored as whole rows (and its passes here would give position
# ids, which model.forward_positions=sequential, unlearn/models/positions.py, then leaves alone).
SHARED_PROMPT_MODELS = ("llava", "idefics2")


def hf_model(model: torch.nn.Module) -> PreTrainedModel | None:
    """The outermost transformers model inside `model` (a peft or FSDP wrapper, or the model itself)."""
    return next((m for m in model.modules() if isinstance(m, PreTrainedModel)), None)


def shares_prompt(model: torch.nn.Module) -> bool:
    hf = hf_model(model)
    return hf is not None and hf.config.model_type in SHARED_PROMPT_MODELS


def _cache_kwarg(hf: PreTrainedModel) -> str:
    """transformers 5 renames forward's `past_key_values` to `cache` (the old name warns, then goes)."""
    return "cache" if "cache" in inspect.signature(type(hf).forward).parameters else "past_key_values"


def sharded(model: torch.nn.Module) -> bool:
    """Under FSDP every rank must run the same number of forward passes, even after its own work ended."""
    from torch.distributed.fsdp import FullyShardedDataParallel

    return any(isinstance(m, FullyShardedDataParallel) for m in model.modules())


def answer_passes(n_answers: int, bytes_per_answer: int, budget_bytes: float | None) -> int:
    """How many passes score `n_answers` rows whose prompt caches take `bytes_per_answer` each, no pass
    holding more than `budget_bytes` of them (None: one pass). A pass holds at least one row, whatever its
    size."""
    if n_answers < 1:
        raise ValueError(f"{n_answers} answers: nothing to score")
    if budget_bytes is None:
        return 1
    rows = max(1, int(budget_bytes // max(1, bytes_per_answer)))
    return math.ceil(n_answers / rows)


def in_step(passes: int, sync: bool) -> int:
    """The most passes any rank needs, where ranks must run as many (FSDP gathers weights in every pass)."""
    import torch.distributed as dist

    if not (sync and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return passes
    n = torch.tensor([passes], dtype=torch.long)
    if dist.get_backend() == "nccl":
        n = n.cuda()
    dist.all_reduce(n, op=dist.ReduceOp.MAX)
    return int(n.item())


def cache_bytes(cache) -> int:
    """Bytes of keys and values a cache holds, over all its layers."""
    return sum(t.nbytes for layer in cache.layers for t in (getattr(layer, "keys", None),
                                                           getattr(layer, "values", None))
               if isinstance(t, torch.Tensor))


# layers whose answer pass replaces their tensors rather than writing into them (DummyLayer: nothing cached)
COPYABLE_LAYERS = tuple(getattr(cache_utils, name) for name in ("DynamicLayer", "DynamicSlidingWindowLayer",
                                                                "DummyLayer") if hasattr(cache_utils, name))


def _select(cache, rows: torch.Tensor):
    """A cache of the prompts' keys and values at `rows`, leaving `cache` as it was for the next pass: the
    copy's layers get new tensors (index_select), and the answer pass grows the copy's, not the original's.
    Dynamic layers only (what LLaVA's and Idefics2's forwards build): a static layer counts its length in a
    tensor it updates in place, which a shallow copy would share with the original."""
    odd = {type(layer).__name__ for layer in cache.layers if type(layer) not in COPYABLE_LAYERS}
    if odd:
        raise NotImplementedError(f"eval.share_prompt: cache layers {sorted(odd)} cannot be copied per pass; "
                                  "set eval.share_prompt=false to score whole rows")
    chosen = copy.copy(cache)
    chosen.layers = [copy.copy(layer) for layer in cache.layers]
    chosen.reorder_cache(rows)
    return chosen


@torch.no_grad()
def answers_after_prompts(model: torch.nn.Module, prompts: dict, answers: list[list[int]], counts: list[int],
                          pad_id: int, per_token: bool = False, cache_gb: float | None = None,
                          sync: bool | None = None) -> torch.Tensor:
    """Sum of log p(answer tokens | prompt) per answer, in float32 (`per_token`: divided by its length).

    `prompts`: a collated, left-padded batch of prompts (`unlearn.data.collate.collate`); `answers`: the token
    ids of every answer (each non-empty), those of prompt 0 first; `counts[i]`: how many follow prompt i.
    `cache_gb`: the answers run in passes whose copies of their prompts' caches, grown by the answers, hold
    about this many GB at most (None: all in one pass; the prompts' own cache is outside it).
    `sync` (default: whether `model` is FSDP-sharded): ranks agree on the number of passes, a rank with fewer
    rows running one-row passes whose results it drops, so they stay in step.
    """
    hf = hf_model(model)
    if len(counts) != len(prompts["input_ids"]) or sum(counts) != len(answers):
        raise ValueError(f"{len(prompts['input_ids'])} prompts, counts {counts}, {len(answers)} answers")
    if not answers:
        raise ValueError("no answers to score")
    if any(not a for a in answers):
        raise ValueError("an answer has no tokens: nothing to score")
    device = next(model.parameters()).device
    inputs = {k: v.to(device) for k, v in prompts.items() if k != "labels"}
    mask = inputs["attention_mask"]
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(**inputs, position_ids=positions, use_cache=True, logits_to_keep=1)
    cache = out["cache"] if "cache" in out else out["past_key_values"]
    rows = torch.repeat_interleave(torch.arange(len(counts), device=device), torch.tensor(counts, device=device))
    first = torch.log_softmax(out.logits[:, -1].float(), dim=-1).index_select(0, rows)
    padded = collate([Example(a, [IGNORE] * len(a)) for a in answers], pad_id)  # right-padded, no images
    ids, answer_mask = padded["input_ids"].to(device), padded["attention_mask"].to(device)
    # a row's copy as it ends its pass: the prompt's keys and values, grown by the answer's
    per_row = cache_bytes(cache) // len(counts) * (mask.shape[1] + ids.shape[1]) // mask.shape[1]
    passes = answer_passes(len(answers), per_row, None if cache_gb is None else cache_gb * 1e9)
    passes = in_step(passes, sharded(model) if sync is None else sync)
    logp = torch.zeros(ids.shape[0], ids.shape[1] - 1, dtype=torch.float32, device=device)
    prompt_lengths = mask.sum(-1, keepdim=True)
    for part in torch.arange(len(answers), device=device).tensor_split(passes):
        idle = len(part) == 0  # this rank has run out of rows: a one-row pass keeps it in step with the others
        part = torch.zeros(1, dtype=torch.long, device=device) if idle else part
        at = rows.index_select(0, part)
        after = prompt_lengths.index_select(0, at) + torch.arange(ids.shape[1], device=device)
        out = model(input_ids=ids[part], attention_mask=torch.cat([mask.index_select(0, at), answer_mask[part]], 1),
                    position_ids=after, use_cache=False, **{_cache_kwarg(hf): _select(cache, at)})
        scored = torch.log_softmax(out.logits[:, :-1].float(), dim=-1).gather(-1, ids[part, 1:, None]).squeeze(-1)
        if not idle:
            logp[part] = scored
        del out, scored
    total = first.gather(1, ids[:, :1]).squeeze(1) + (logp * answer_mask[:, 1:]).sum(-1)
    return total / answer_mask.sum(-1) if per_token else total
