"""What the evaluation asks of a model: the likelihood of an answer, and a greedy answer."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import torch

from unlearn.data.collate import IGNORE, Example, collate, prompt_example, qa_example
from unlearn.eval.items import MC_LETTERS, EvalItem, has_empty_option, other_options
from unlearn.eval.metrics import mc_choice
from unlearn.eval.protocol import EmbeddedPrompts
from unlearn.eval.reading import MC_MODES
from unlearn.eval.scorers import SCORERS, Scorer, named_keys
from unlearn.eval.shared_prompt import answers_after_prompts, in_step, sharded, shares_prompt
from unlearn.eval.truth_ratio import answer_probability

if TYPE_CHECKING:  # transformers' import (2-4 s) for an annotation: the checks before a run import this
    from unlearn.models.processor import VLProcessor


NOT_MODEL_INPUTS = ("labels", "filler")  # filler: the gradient methods' shard padding rows (unlearning_collate)


def model_inputs(batch: dict, device) -> dict:
    return {k: v.to(device) for k, v in batch.items() if k not in NOT_MODEL_INPUTS}


@torch.no_grad()
def answer_logprobs(model, batch: dict, per_token: bool = False) -> torch.Tensor:
    """Sum of log p(label tokens) per row, in float32; `per_token`: divided by the row's answer length.

    Logits are computed at the answer positions only (the model's `logits_to_keep`, as a [rows, length] mask:
    the hidden states there, flattened, meet the output layer), and no key/value cache is built: over whole
    rows both grow as rows x length x vocab (or x layers x width), which for a 7B model behind 576 image
    tokens is tens of GB per batch (Qwen2-VL's vocabulary has 152k words). Each position's logits and
    log-softmax are its own, and the sums run over the same [rows, length] tensor as before, so the values
    are those of normalising every position (bit for bit on CPU in every family, tests/test_answer_logprobs.py).
    """
    device = next(model.parameters()).device
    labels = batch["labels"][:, 1:].to(device)
    mask = labels != IGNORE
    keep = torch.nn.functional.pad(mask, (0, 1))  # position t's logits predict token t + 1
    logits = model(**model_inputs(batch, device), use_cache=False, logits_to_keep=keep).logits
    logp = torch.zeros(labels.shape, dtype=torch.float32, device=device)
    logp[mask] = torch.log_softmax(logits.float(), dim=-1).gather(-1, labels[mask].unsqueeze(-1)).squeeze(-1)
    total = logp.sum(-1)
    return total / mask.sum(-1).clamp(min=1) if per_token else total


class NonFiniteScoreError(FloatingPointError):
    pass


def check_finite_scores(items: list[EvalItem], scores: list[list[float]], task: str) -> list[list[float]]:
    """Refuse NaN log-probabilities: a model whose outputs overflowed (an unlearning step that diverged while
    its loss stayed finite) would otherwise pick the first option on every tie and read as forgetting."""
    for it, row in zip(items, scores):
        if any(v != v for v in row):
            raise NonFiniteScoreError(
                f"task {task}, item {it.uid} ({it.split}, {it.modality}): the model's log-probabilities are "
                f"{row}; its outputs are not finite, so it cannot be scored")
    return scores


def answer_set_logprobs(model, proc: VLProcessor, prompts: list[tuple[str, object]], answers: list[list[str]],
                        per_token: bool = False, share_prompt: bool = False,
                        cache_gb: float | None = None) -> list[list[float]]:
    """Log-probabilities of each prompt's answers; a prompt is (question, pixel values or None).
    `share_prompt`: run each prompt once before its answers (unlearn/eval/shared_prompt.py) on the models that
    allow it; else (and on the others) every answer is scored as a whole row, as before that existed (the
    default here, so callers other than the evaluation, such as the teaching probe, keep their numbers).
    `cache_gb`: the most GB of copied prompt caches one answer pass of the shared path holds (None: no bound)."""
    pad = proc.tokenizer.pad_token_id
    counts = [len(row) for row in answers]
    if share_prompt and shares_prompt(model):
        batch = collate([prompt_example(proc, q, pv) for q, pv in prompts], pad, padding_side="left")
        flat = answers_after_prompts(model, batch, [proc.answer_ids(a) for row in answers for a in row], counts,
                                     pad, per_token, cache_gb)
    else:
        exs = [qa_example(proc, [(q, a)], pv) for (q, pv), row in zip(prompts, answers) for a in row]
        flat = answer_logprobs(model, collate(exs, pad), per_token=per_token)
    return regrouped(flat.tolist(), counts)


def regrouped(flat: list[float], counts: list[int]) -> list[list[float]]:
    """`flat` cut back into consecutive groups of `counts[i]` values (each prompt's answers)."""
    out, pos = [], 0
    for n in counts:
        out.append(flat[pos:pos + n])
        pos += n
    return out


@torch.no_grad()
def greedy_answers(model, proc: VLProcessor, batch: dict, max_new_tokens: int | list[int], stop=None) -> list[str]:
    """Greedy replies; a list of limits (one per row) generates up to the largest and cuts each row at its own,
    which greedy decoding makes the same as generating each row with its own limit. `stop`: the token id(s)
    that end a reply (default: the processor's)."""
    device = next(model.parameters()).device
    inputs = model_inputs(batch, device)
    limits = max_new_tokens if isinstance(max_new_tokens, list) else [max_new_tokens] * len(inputs["input_ids"])
    out = model.generate(**inputs, max_new_tokens=max(limits), do_sample=False, synced_gpus=sharded(model),
                         pad_token_id=proc.tokenizer.pad_token_id,
                         eos_token_id=proc.stop_token_id if stop is None else stop)
    start = inputs["input_ids"].shape[1]
    return [proc.decode(row[start:start + n]) for row, n in zip(out.tolist(), limits)]


def protocol_replies(model, proc: VLProcessor, items: list[EvalItem], prompts) -> list[str]:
    """Greedy replies to the protocol's prompts of `items`, one padded batch; a protocol that writes an image
    placeholder into rows without an image (`imageless_placeholders`: MMUnlearner's Qwen2-VL text-only cloze)
    has its rows with and without images generated apart, since the model matches a batch's image placeholders
    with its images."""
    runs = [(items, list(range(len(items))))]  # (rows generated, indices of the rows whose replies are kept)
    if getattr(prompts, "imageless_placeholders", False):
        sync, runs = sharded(model), []
        for with_image in (True, False):
            group = [i for i, it in enumerate(items) if (it.pixel_values is not None) == with_image]
            # under FSDP every rank generates for a kind any rank has (else the ranks' forwards, and with them
            # FSDP's weight gathers, fall out of step and hang): a rank without it generates for a stand-in row
            # of that kind and drops the reply
            if in_step(int(bool(group)), sync):
                runs.append(([items[i] for i in group] or [stand_in(items[0], proc, with_image)], group))
    replies: list[str] = [""] * len(items)
    for rows, kept in runs:
        batch = collate([prompts.example(proc, it) for it in rows], proc.tokenizer.pad_token_id,
                        padding_side="left")
        answers = greedy_answers(model, proc, batch, [prompts.limit(it) for it in rows], prompts.stop(model, proc))
        for i, text in zip(kept, answers):
            replies[i] = text
    return replies


def stand_in(item: EvalItem, proc: VLProcessor, with_image: bool) -> EvalItem:
    """`item` as a row of the other kind, for a pass whose reply is dropped: with a blank image (the model's
    vision blocks run, as on the ranks that have image rows), or without its image (they do not)."""
    from PIL import Image

    if with_image:
        return dataclasses.replace(item, modality="multimodal",
                                   pixel_values=proc.pixel_values([Image.new("RGB", (56, 56))])[0])
    return dataclasses.replace(item, modality="text", pixel_values=None)


def check_mc_options(items: list[EvalItem], mc_mode: str, mc_also: str | None, prompts=None) -> None:
    """MC items that only data.on_bad_row=score keeps, refused where the reading cannot score them:
    * an empty option under the options' likelihood (eval.mc_mode or eval.mc_also = likelihood; MLLMU-Bench's
      eval.py reads a generated letter, and shows the option empty): an empty answer is no tokens, log-probability
      0, so it would be chosen every time, whatever the model knows;
    * other than four options (a file's own Options keys) under any reading but eval.py's (`prompts` whose
      `file_keys` show and read them: eval.protocol=mllmu_bench or mmunlearner, which read the generated letter
      alone): the letter readings ask with the processor's four letters (a fifth option unseen, or a letter with
      none), and the likelihood's chance (one in five, or three) is not the four-option questions' it is averaged
      with."""
    if not getattr(prompts, "file_keys", False):
        for it in items:
            if other_options(it):
                name = getattr(prompts, "name", "embedded")
                also = f", eval.mc_also={mc_also}" if mc_also else ""
                raise ValueError(f"MC item {it.uid} has {len(it.options)} options {list(it.letters)}, kept by "
                                 f"data.on_bad_row=score as MLLMU-Bench's eval.py shows and reads its file's keys; "
                                 f"eval.protocol={name} with eval.mc_mode={mc_mode}{also} reads four: evaluate with "
                                 f"eval.protocol=mllmu_bench and eval.mc_mode=generate (eval.py's reading), or drop "
                                 f"such questions (data.on_bad_row=skip reads A-D alone)")
    if "likelihood" not in (mc_mode, mc_also):
        return
    for it in items:
        if has_empty_option(it):
            key = "eval.mc_mode" if mc_mode == "likelihood" else "eval.mc_also"
            raise ValueError(f"MC item {it.uid} has an empty option, which {key}=likelihood would choose every time "
                             f"(no tokens: log-probability 0); it is kept by data.on_bad_row=score for MLLMU-Bench's "
                             f"generated-letter reading: read MC from a generated letter (eval.mc_mode=generate) or "
                             f"the letters' likelihood (letter), or drop such questions (data.on_bad_row=skip)")


def score_mc(model, proc: VLProcessor, items: list[EvalItem], mode: str = "likelihood",
             max_new_tokens: int = 8, scorer: Scorer = SCORERS["embedded"], prompts=None,
             share_prompt: bool = False, cache_gb: float | None = None) -> list[dict]:
    """likelihood: the option the model finds most likely (default); letter: the most likely option letter;
    generate: greedy-generate after the lettered question and read the option letter by `scorer` (no letter
    counts as wrong); the raw reply is kept in the record. `prompts`: the protocol that writes the generate
    prompt and its limit (unlearn/eval/protocol.py; default: the embedded one with `max_new_tokens`);
    `share_prompt`, `cache_gb`: see `answer_set_logprobs`."""
    if mode not in MC_MODES:
        raise ValueError(f"eval.mc_mode={mode!r}: expected one of {MC_MODES}")
    letters = proc.option_letters
    if mode == "generate":
        out, own = [], getattr(prompts, "file_keys", False)
        for it, text in zip(items, protocol_replies(model, proc, items, prompts or EmbeddedPrompts(max_new_tokens))):
            # a file's own keys, shown in the prompt (data.on_bad_row=score), read as eval.py reads them
            choice = scorer.mc_letter(text, named_keys(it.letters) if own and it.letters != MC_LETTERS else letters)
            # no letter: no option chosen (until 2026-12-06 the reply stood there, and could equal the answer)
            right = scorer.mc_right(text, choice, it.answer_index, it.letters, it.answer, it.modality)
            out.append(it.record(it.options[choice] if choice >= 0 else None, right, reply=text))
        return out
    if mode == "likelihood":
        prompts, answers = [(it.question, it.pixel_values) for it in items], [list(it.options) for it in items]
    else:
        prompts = [(proc.letter_question(it.question, it.options), it.pixel_values) for it in items]
        answers = [list(letters)] * len(items)
    scores = check_finite_scores(items, answer_set_logprobs(model, proc, prompts, answers, share_prompt=share_prompt,
                                                            cache_gb=cache_gb), "mc")
    out = []
    for it, s in zip(items, scores):
        choice = mc_choice(s)
        out.append(it.record(it.options[choice], choice == it.answer_index))
    return out


def score_generation(model, proc: VLProcessor, items: list[EvalItem], max_new_tokens: int,
                     scorer: Scorer = SCORERS["embedded"], prompts=None) -> list[dict]:
    preds = protocol_replies(model, proc, items, prompts or EmbeddedPrompts(max_new_tokens))
    out = [it.record(p, scorer.score(it.task, p, it.answer), reply=p) for it, p in zip(items, preds)]
    for it, r in zip(items, out):
        if it.task == "gen":
            r.update(scorer.generation_fields(r["reply"], it.answer))
    return out


def truth_ratio_answers(item: EvalItem) -> list[str]:
    """What task prob scores after the question: the truth, its paraphrase (the truth when none), the perturbed."""
    return [item.answer, item.paraphrase or item.answer, *item.perturbed]


PROB_LABELS = ("answer", "clear")
# CLEAR's labels keep hundreds of image positions per row, each with a vocabulary-wide logit row (Qwen2-VL:
# 152k): rows are scored in passes of at most this many labelled positions (about 3 GB of float32 logits there)
CLEAR_LABELLED_PER_PASS = 2048


def passes_by_labels(examples: list[Example], budget: int) -> list[list[Example]]:
    """`examples` in order, cut into consecutive passes of at most `budget` labelled tokens (a longer row alone)."""
    passes, n = [[]], 0
    for ex in examples:
        k = sum(label != IGNORE for label in ex.labels)
        if passes[-1] and n + k > budget:
            passes.append([])
            n = 0
        passes[-1].append(ex)
        n += k
    return passes if passes[0] else []


def score_probabilities(model, proc: VLProcessor, items: list[EvalItem], share_prompt: bool = False,
                        cache_gb: float | None = None, labels: str = "answer") -> list[dict]:
    """Task prob: per-token mean log-probabilities of the ground truth, the paraphrase and each perturbed
    answer after the question (the teaching format), kept in the record for the truth ratio and forget
    quality; the item's score is the answer probability (unlearn/eval/truth_ratio.py). `labels="clear"`: each
    row written and labelled as CLEAR's collate does (unlearn/data/written.py; the protocol `clear`), whole
    rows."""
    if labels not in PROB_LABELS:
        raise ValueError(f"likelihood labels {labels!r}: expected one of {PROB_LABELS}")
    if labels == "clear":
        from unlearn.data.written import written_example

        examples = [written_example(proc, it.question, answer, it.pixel_values, "clear", proc.family,
                                    key="eval.protocol") for it in items for answer in truth_ratio_answers(it)]
        passes, flat = passes_by_labels(examples, CLEAR_LABELLED_PER_PASS), []
        for k in range(in_step(len(passes), sharded(model))):
            # under FSDP ranks run as many passes as the rank with most: one out of rows rescores a row, dropped
            rows = passes[k] if k < len(passes) else passes[-1][:1]
            scored = answer_logprobs(model, collate(rows, proc.tokenizer.pad_token_id), per_token=True).tolist()
            flat += scored if k < len(passes) else []
        scored = regrouped(flat, [len(truth_ratio_answers(it)) for it in items])
    else:
        scored = answer_set_logprobs(model, proc, [(it.question, it.pixel_values) for it in items],
                                     [truth_ratio_answers(it) for it in items], per_token=True,
                                     share_prompt=share_prompt, cache_gb=cache_gb)
    out = []
    for it, (gt, para, *pert) in zip(items, check_finite_scores(items, scored, "prob")):
        out.append({**it.record(it.answer, answer_probability(gt)), "gt_logp": gt, "para_logp": para,
                    "pert_logp": pert})
    return out
