"""What the evaluation asks of a model: the likelihood of an answer, and a greedy answer."""

from __future__ import annotations

import torch

from unlearn.data.collate import IGNORE, collate, qa_example
from unlearn.eval.items import EvalItem
from unlearn.eval.metrics import mc_choice
from unlearn.eval.protocol import EmbeddedPrompts
from unlearn.eval.scorers import SCORERS, Scorer
from unlearn.eval.truth_ratio import answer_probability
from unlearn.models.processor import VLProcessor


def model_inputs(batch: dict, device) -> dict:
    return {k: v.to(device) for k, v in batch.items() if k != "labels"}


@torch.no_grad()
def answer_logprobs(model, batch: dict, per_token: bool = False) -> torch.Tensor:
    """Sum of log p(label tokens) per row, in float32; `per_token`: divided by the row's answer length."""
    device = next(model.parameters()).device
    logits = model(**model_inputs(batch, device)).logits[:, :-1].float()
    labels = batch["labels"][:, 1:].to(device)
    mask = labels != IGNORE
    logp = torch.log_softmax(logits, dim=-1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    total = (logp * mask).sum(-1)
    return total / mask.sum(-1).clamp(min=1) if per_token else total


def _sharded(model) -> bool:
    """Under FSDP every rank must run the same number of forward passes, even after its answers ended."""
    from torch.distributed.fsdp import FullyShardedDataParallel

    return any(isinstance(m, FullyShardedDataParallel) for m in model.modules())


@torch.no_grad()
def greedy_answers(model, proc: VLProcessor, batch: dict, max_new_tokens: int | list[int], stop=None) -> list[str]:
    """Greedy replies; a list of limits (one per row) generates up to the largest and cuts each row at its own,
    which greedy decoding makes the same as generating each row with its own limit. `stop`: the token id(s)
    that end a reply (default: the processor's)."""
    device = next(model.parameters()).device
    inputs = model_inputs(batch, device)
    limits = max_new_tokens if isinstance(max_new_tokens, list) else [max_new_tokens] * len(inputs["input_ids"])
    out = model.generate(**inputs, max_new_tokens=max(limits), do_sample=False, synced_gpus=_sharded(model),
                         pad_token_id=proc.tokenizer.pad_token_id,
                         eos_token_id=proc.stop_token_id if stop is None else stop)
    start = inputs["input_ids"].shape[1]
    return [proc.decode(row[start:start + n]) for row, n in zip(out.tolist(), limits)]


MC_MODES = ("likelihood", "letter", "generate")


def score_mc(model, proc: VLProcessor, items: list[EvalItem], mode: str = "likelihood",
             max_new_tokens: int = 8, scorer: Scorer = SCORERS["embedded"], prompts=None) -> list[dict]:
    """likelihood: the option the model finds most likely (default); letter: the most likely option letter;
    generate: greedy-generate after the lettered question and read the option letter by `scorer` (no letter
    counts as wrong); the raw reply is kept in the record. `prompts`: the protocol that writes the generate
    prompt and its limit (unlearn/eval/protocol.py; default: the embedded one with `max_new_tokens`)."""
    if mode not in MC_MODES:
        raise ValueError(f"eval.mc_mode={mode!r}: expected one of {MC_MODES}")
    letters = proc.option_letters
    if mode == "generate":
        prompts = prompts or EmbeddedPrompts(max_new_tokens)
        batch = collate([prompts.example(proc, it) for it in items], proc.tokenizer.pad_token_id,
                        padding_side="left")
        out = []
        replies = greedy_answers(model, proc, batch, [prompts.limit(it) for it in items], prompts.stop(model, proc))
        for it, text in zip(items, replies):
            choice = scorer.mc_letter(text, letters)
            out.append(it.record(it.options[choice] if choice >= 0 else text, choice == it.answer_index, reply=text))
        return out
    if mode == "likelihood":
        exs = [qa_example(proc, [(it.question, opt)], it.pixel_values) for it in items for opt in it.options]
    else:
        exs = [qa_example(proc, [(proc.letter_question(it.question, it.options), letter)], it.pixel_values)
               for it in items for letter in letters]
    scores = answer_logprobs(model, collate(exs, proc.tokenizer.pad_token_id)).view(len(items), -1).tolist()
    out = []
    for it, s in zip(items, scores):
        choice = mc_choice(s)
        out.append(it.record(it.options[choice], choice == it.answer_index))
    return out


def score_generation(model, proc: VLProcessor, items: list[EvalItem], max_new_tokens: int,
                     scorer: Scorer = SCORERS["embedded"], prompts=None) -> list[dict]:
    prompts = prompts or EmbeddedPrompts(max_new_tokens)
    batch = collate([prompts.example(proc, it) for it in items], proc.tokenizer.pad_token_id, padding_side="left")
    preds = greedy_answers(model, proc, batch, [prompts.limit(it) for it in items], prompts.stop(model, proc))
    out = [it.record(p, scorer.score(it.task, p, it.answer), reply=p) for it, p in zip(items, preds)]
    for it, r in zip(items, out):
        if it.task == "gen":
            r["recall"] = scorer.rouge_recall(r["reply"], it.answer)
    return out


def score_probabilities(model, proc: VLProcessor, items: list[EvalItem]) -> list[dict]:
    """Task prob: per-token mean log-probabilities of the ground truth, the paraphrase and each perturbed
    answer after the question (the teaching format), kept in the record for the truth ratio and forget
    quality; the item's score is the answer probability (unlearn/eval/truth_ratio.py)."""
    answers = [(it.answer, it.paraphrase or it.answer, *it.perturbed) for it in items]
    exs = [qa_example(proc, [(it.question, a)], it.pixel_values) for it, row in zip(items, answers) for a in row]
    flat = answer_logprobs(model, collate(exs, proc.tokenizer.pad_token_id), per_token=True).tolist()
    out, pos = [], 0
    for it, row in zip(items, answers):
        gt, para, *pert = flat[pos:pos + len(row)]
        pos += len(row)
        out.append({**it.record(it.answer, answer_probability(gt)), "gt_logp": gt, "para_logp": para,
                    "pert_logp": pert})
    return out
