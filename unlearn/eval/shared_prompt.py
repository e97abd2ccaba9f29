"""Log-probabilities of several answers after one prompt, the prompt run once.

Why: MC scores each option, and the truth ratio the truth, a paraphrase and the perturbed answers, after the
same image and question. Scored as whole rows, every answer recomputes that prompt, which is most of a row:
three quarters of the likelihood tokens on the embedded benchmark, nearly all of them behind a real LLaVA's
576 image tokens. Here the prompts run once (left-padded, positions counted from each row's first token),
their key/value cache is copied to each of their answers, and the answers run after it: the same
log-probabilities up to float rounding (tests/test_shared_prompt.py holds them to whole rows per family).

Memory: the copied cache holds B*k prompt caches for B items of k answers (on LLaVA-1.5-7B about 0.3 GB per
answer in bf16). Whole rows keep no cache (`answer_logprobs`), so where memory is short, lower
`eval.batch_size` or score whole rows: `eval.share_prompt=false`.
"""

from __future__ import annotations

import inspect

import torch
from transformers import PreTrainedModel

from unlearn.data.collate import IGNORE, Example, collate

# model_type of the models this was checked on. Qwen2-VL places text after an image by 3-D rotary positions
# it derives from the whole row, so its answers are scored as whole rows.
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


@torch.no_grad()
def answers_after_prompts(model: torch.nn.Module, prompts: dict, answers: list[list[int]], counts: list[int],
                          pad_id: int, per_token: bool = False) -> torch.Tensor:
    """Sum of log p(answer tokens | prompt) per answer, in float32 (`per_token`: divided by its length).

    `prompts`: a collated, left-padded batch of prompts (`unlearn.data.collate.collate`); `answers`: the token
    ids of every answer (each non-empty), those of prompt 0 first; `counts[i]`: how many follow prompt i.
    Always two forward passes, so ranks under FSDP stay in step.
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
    cache.reorder_cache(rows)  # each answer row gets its own copy of its prompt's keys and values
    first = torch.log_softmax(out.logits[:, -1].float(), dim=-1).index_select(0, rows)

    padded = collate([Example(a, [IGNORE] * len(a)) for a in answers], pad_id)  # right-padded, no images
    ids, answer_mask = padded["input_ids"].to(device), padded["attention_mask"].to(device)
    after = mask.sum(-1, keepdim=True).index_select(0, rows) + torch.arange(ids.shape[1], device=device)
    out = model(input_ids=ids, attention_mask=torch.cat([mask.index_select(0, rows), answer_mask], dim=1),
                position_ids=after, use_cache=False, **{_cache_kwarg(hf): cache})
    logp = torch.log_softmax(out.logits[:, :-1].float(), dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    total = first.gather(1, ids[:, :1]).squeeze(1) + (logp * answer_mask[:, 1:]).sum(-1)
    return total / answer_mask.sum(-1) if per_token else total
