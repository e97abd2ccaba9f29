"""eval.protocol=clear and eval.scorer=clear against a port of CLEAR's evaluation.

`their_*` is written from somvy/multimodal_unlearning at bb14c96: mm/eval.py `get_all_evals` (the generation
prompt: the collate's batch decoded with special tokens skipped, cut before the decoded answer, re-tokenised
alone) and `eval_perturbation_ratio` (per-token losses over the collate's labels, trainer_utils.py
`get_batch_loss`; `remove_image_tokens` leaves processor-expanded ids as they are), and mm/calculate_metrics.py
(stemmed ROUGE-L recall). The collate itself is tests/test_written_sequences.py's port.
"""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from tests.test_written_sequences import their_clear_batch
from unlearn.data.collate import collate
from unlearn.eval.items import EvalItem
from unlearn.eval.protocol import CLEAR_MAX_NEW_TOKENS, ClearPrompts, make_prompts
from unlearn.eval.scorers import get_scorer
from unlearn.eval.scoring import score_probabilities, truth_ratio_answers
from unlearn.models.chat_processor import MM_TOKEN_TYPES, ChatProcessor
from unlearn.models.chat_template import ChatTemplate
from unlearn.models.tiny_real import build_tiny_real


@pytest.fixture(scope="module")
def qwen():
    model, tok, images = build_tiny_real("qwen2_vl")
    return model.eval(), tok, images, ChatProcessor(tok, images, model.config, ChatTemplate())


def _items(proc):
    """Caption and name items with an image (truth-ratio answers as CLEAR pairs them) and a text-only one, in the
    tiny tokenizer's words but for one perturbed answer (`zebra`: <unk>); the text-only answer also stands in its
    question, so the cut must be at its last occurrence."""
    pictures = [Image.new("RGB", (56, 56), c) for c in ("red", "blue")]
    pixels = proc.pixel_values(pictures)
    return [
        EvalItem("forget/gen/multimodal/0", "forget", "multimodal", "gen", 0, "caption",
                 "What can you see in this picture?", "a lawyer in a red coat", pixel_values=pixels[0],
                 paraphrase="a lawyer wearing a red coat", perturbed=("a doctor in a blue coat", "a zebra")),
        EvalItem("forget/gen/multimodal/1", "forget", "multimodal", "gen", 1, "name",
                 "The name of the person on the image is", "Anna", pixel_values=pixels[1],
                 paraphrase="Anna", perturbed=("Maria", "Elena")),
        EvalItem("forget/gen/text/2", "forget", "text", "gen", 0, "job", "Is the author a lawyer", "a lawyer"),
    ]


def their_generation_inputs(tok, image_processor, rows):
    """get_all_evals: the batch decoded with special tokens skipped, cut before each answer as the tokenizer
    decodes it, the questions tokenised alone (left padding)."""
    batch = their_clear_batch(tok, image_processor, rows, "left")
    answer_ids = tok([r["answer"] for r in rows], return_tensors="pt", padding=True)["input_ids"]
    answers = tok.batch_decode(answer_ids, skip_special_tokens=True)
    str_inputs = tok.batch_decode(batch["input_ids"], skip_special_tokens=True)
    questions = [s[: s.rfind(ans)] for s, ans in zip(str_inputs, answers)]
    tok.padding_side = "left"
    # their batch_encode_plus, which transformers 5 folds into the tokenizer's call
    return tok(questions, add_special_tokens=True, return_tensors="pt", padding=True)


def their_per_token_logps(model, tok, image_processor, rows):
    """-(summed cross-entropy over the collate's shifted labels) / the labels' count, per row."""
    batch = their_clear_batch(tok, image_processor, rows, "left")
    if "pixel_values" in batch:  # what transformers' Qwen2-VL processor hands the model for M-RoPE
        batch[MM_TOKEN_TYPES] = (batch["input_ids"] == model.config.image_token_id).int()
    labels = batch.pop("labels")
    with torch.no_grad():
        logits = model(**batch).logits
    loss = torch.nn.functional.cross_entropy(logits[..., :-1, :].float().transpose(-1, -2), labels[..., 1:],
                                             ignore_index=-100, reduction="none").sum(-1)
    return (-loss / (labels != -100).sum(-1)).tolist()


def _rows(item, image, answers):
    return [{"image": image, "question": item.question, "answer": a} for a in answers]


def test_generation_prompt_is_their_decoded_cut(qwen):
    model, tok, images, proc = qwen
    items = _items(proc)
    pictures = [Image.new("RGB", (56, 56), c) for c in ("red", "blue")]
    theirs = their_generation_inputs(tok, images, [{"image": pictures[0], "question": items[0].question,
                                                    "answer": items[0].answer},
                                                   {"image": pictures[1], "question": items[1].question,
                                                    "answer": items[1].answer},
                                                   {"image": None, "question": items[2].question,
                                                    "answer": items[2].answer}])
    prompts = ClearPrompts("qwen2_vl")
    examples = [prompts.example(proc, it) for it in items]
    ours = collate(examples, tok.pad_token_id, padding_side="left")
    assert ours["input_ids"].tolist() == theirs["input_ids"].tolist()
    assert torch.equal(ours["attention_mask"], theirs["attention_mask"])
    assert all(e.pixel_values is None for e in examples) and "pixel_values" not in ours  # no image, as theirs
    assert not (ours["input_ids"] == tok.convert_tokens_to_ids("<|im_start|>")).any()  # no chat markers either
    assert prompts.limit(items[0]) == CLEAR_MAX_NEW_TOKENS == 300
    assert ClearPrompts("qwen2_vl", max_new_tokens=7).limit(items[0]) == 7
    assert prompts.stop(model, proc) == model.generation_config.eos_token_id


def test_likelihoods_are_their_per_token_losses_over_the_collates_labels(qwen):
    model, tok, images, proc = qwen
    items = _items(proc)[:2]
    pictures = [Image.new("RGB", (56, 56), c) for c in ("red", "blue")]
    ours = score_probabilities(model, proc, items, labels="clear")
    plain = score_probabilities(model, proc, items)
    for it, picture, record, answer_only in zip(items, pictures, ours, plain):
        theirs = their_per_token_logps(model, tok, images, _rows(it, picture, truth_ratio_answers(it)))
        mine = [record["gt_logp"], record["para_logp"], *record["pert_logp"]]
        assert mine == pytest.approx(theirs, abs=1e-5)
        # the image's tokens and the question enter CLEAR's means: not the answer-only log-probabilities
        assert mine != pytest.approx([answer_only["gt_logp"], answer_only["para_logp"], *answer_only["pert_logp"]],
                                     abs=1e-3)
    with pytest.raises(ValueError, match="likelihood labels 'pooled'"):
        score_probabilities(model, proc, items, labels="pooled")


def test_clear_rows_are_scored_in_passes_of_bounded_labelled_tokens(qwen, monkeypatch):
    import unlearn.eval.scoring as scoring
    from unlearn.data.collate import Example

    rows = [Example([1] * 5, [-100, 7, 7, 7, -100]), Example([1] * 4, [-100, 7, 7, 7]),
            Example([1] * 9, [-100] + [7] * 8), Example([1] * 2, [-100, 7])]
    assert [[len(e.input_ids) for e in p] for p in scoring.passes_by_labels(rows, 6)] == [[5, 4], [9], [2]]
    assert scoring.passes_by_labels([], 6) == []
    model, tok, images, proc = qwen
    items = _items(proc)[:2]
    whole = score_probabilities(model, proc, items, labels="clear")
    monkeypatch.setattr(scoring, "CLEAR_LABELLED_PER_PASS", 1)  # one row per pass
    for one, many in zip(score_probabilities(model, proc, items, labels="clear"), whole):
        assert [one["gt_logp"], one["para_logp"], *one["pert_logp"]] == pytest.approx(
            [many["gt_logp"], many["para_logp"], *many["pert_logp"]], abs=1e-5)


def test_under_fsdp_a_rank_with_fewer_clear_passes_runs_as_many_and_drops_the_extra(qwen, monkeypatch):
    """FSDP ranks must run as many forwards: a rank told that another needs one pass more rescores one row and
    drops it, so its records are unchanged. Simulated: `sharded` true and the agreement answering one more."""
    import unlearn.eval.scoring as scoring

    model, tok, images, proc = qwen
    items = _items(proc)[:2]
    whole = score_probabilities(model, proc, items, labels="clear")
    passes, asked = [], []
    score = scoring.answer_logprobs
    monkeypatch.setattr(scoring, "answer_logprobs", lambda m, batch, **k: passes.append(len(batch["input_ids"]))
                        or score(m, batch, **k))
    monkeypatch.setattr(scoring, "sharded", lambda m: True)
    monkeypatch.setattr(scoring, "in_step", lambda n, sync: asked.append((n, sync)) or n + 1)
    again = score_probabilities(model, proc, items, labels="clear")
    assert asked == [(1, True)] and passes == [sum(len(truth_ratio_answers(it)) for it in items), 1]
    for a, b in zip(again, whole):
        assert [a["gt_logp"], a["para_logp"], *a["pert_logp"]] == pytest.approx(
            [b["gt_logp"], b["para_logp"], *b["pert_logp"]], abs=1e-5)

def test_clear_scorer_reads_the_reply_uncut_with_stemmed_recall():
    clear, mllmu = get_scorer("clear"), get_scorer("mllmu_bench")
    # reference "the cats sat on the mat" (6 words); reply holds "the cat sat" after "ASSISTANT:": the LCS under
    # the Porter stemmer (cats -> cat) is "the cat sat", 3 of the reference's 6 words
    assert clear.rouge_recall("ASSISTANT: the cat sat", "the cats sat on the mat") == pytest.approx(0.5)
    assert mllmu.rouge_recall("ASSISTANT: the cat sat", "the cats sat on the mat") == 0.0  # cut at ASSISTANT:
    assert clear.rouge("the cat sat", "the cats sat on the mat") == pytest.approx(2 * 0.5 * 1.0 / 1.5)


def test_clear_protocol_is_qwen2_vls_and_keeps_mc_embedded(qwen, small_benchmark):
    from unlearn.eval.evaluator import EvaluationModule

    model, tok, images, proc = qwen
    assert isinstance(make_prompts("clear", proc), ClearPrompts)
    llava, ltok, limages = build_tiny_real("llava")
    with pytest.raises(ValueError, match="eval.protocol=clear writes CLEAR's Qwen2-VL chat template.*'llava'"):
        make_prompts("clear", ChatProcessor(ltok, limages, llava.config, ChatTemplate()))
    # MC has no CLEAR prompt: likelihood MC (and mc_also) stay allowed, scored by the embedded protocol
    module = EvaluationModule(model, proc, _items(proc), "before", mc_mode="likelihood", mc_also="generate",
                              prompts=make_prompts("clear", proc))
    assert module.mc_prompts.name == "embedded" and module.prompts.name == "clear"


def _prob(uid, split, attribute, gt, para, pert, modality="multimodal"):
    import math

    return {"uid": uid, "split": split, "modality": modality, "task": "prob", "attribute": attribute,
            "score": math.exp(gt), "gt_logp": gt, "para_logp": para, "pert_logp": pert}


def test_clear_task_metrics_keep_captions_and_face_recognition_apart():
    """Hand-computed: the caption items' truth ratio, probabilities and ROUGE are their own, not pooled with the
    names', as calculate_metrics.py reports Forget and Forget FaceRec apart."""
    import math

    from unlearn.eval.metrics import clear_task_metrics

    ln = math.log
    records = [
        _prob("f/0/prob/multimodal/0", "forget", "caption", ln(0.5), ln(0.5), [ln(0.25), ln(0.25)]),  # R = 0.5
        _prob("f/1/prob/multimodal/0", "forget", "caption", ln(0.2), ln(0.2), [ln(0.4), ln(0.4)]),  # R = 2
        _prob("f/0/prob/multimodal/1", "forget", "name", ln(0.9), ln(0.9), [ln(0.09), ln(0.09)]),  # R = 0.1
        _prob("r/5/prob/multimodal/0", "retain", "caption", ln(0.8), ln(0.8), [ln(0.2), ln(0.2)]),  # R = 0.25
        {"uid": "f/0/gen/multimodal/0", "split": "forget", "modality": "multimodal", "task": "gen",
         "attribute": "caption", "score": 0.3, "recall": 0.6},
        {"uid": "f/0/gen/multimodal/1", "split": "forget", "modality": "multimodal", "task": "gen",
         "attribute": "name", "score": 1.0, "recall": 1.0},
        {"uid": "f/0/gen/text/0", "split": "forget", "modality": "text", "task": "gen", "attribute": "tofu",
         "score": 0.5, "recall": 0.5},  # TOFU QA: not one of CLEAR's image tasks here
    ]
    m = clear_task_metrics(records, "after")
    assert m["after/forget/multimodal/truth_ratio_caption"] == pytest.approx((0.5 + 0.5) / 2)  # min(R, 1/R)
    assert m["after/forget/multimodal/truth_ratio_name"] == pytest.approx(0.1)
    assert m["after/retain/multimodal/truth_ratio_caption"] == pytest.approx(0.75)  # max(0, 1 - R)
    assert m["after/forget/multimodal/prob_caption"] == pytest.approx(0.35)
    assert m["after/forget/multimodal/prob_rel_name"] == pytest.approx(0.9 / (0.9 + 0.18))
    assert m["after/forget/multimodal/rougeL_recall_caption"] == pytest.approx(0.6)
    assert m["after/forget/multimodal/rougeL_recall_name"] == pytest.approx(1.0)
    assert not any("tofu" in k for k in m)
    # pooled (calculate_metrics.py): the captions' wrong answers averaged together, log 0.25 and log 0.4
    pooled = clear_task_metrics(records, "after", "pooled")
    mean_wrong = (2 * ln(0.25) + 2 * ln(0.4)) / 4
    rs = [math.exp(mean_wrong - ln(0.5)), math.exp(mean_wrong - ln(0.2))]
    assert pooled["after/forget/multimodal/truth_ratio_caption"] == pytest.approx(
        sum(min(r, 1 / r) for r in rs) / 2)
    # forget quality per task against a reference's same task; none where the reference lacks it
    reference = [_prob("f/0/prob/multimodal/0", "forget", "caption", ln(0.5), ln(0.5), [ln(0.5), ln(0.5)]),
                 _prob("f/1/prob/multimodal/0", "forget", "caption", ln(0.5), ln(0.5), [ln(0.5), ln(0.5)])]
    fq = clear_task_metrics(records, "after", reference=reference)
    from scipy.stats import ks_2samp

    assert fq["after/forget/multimodal/forget_quality_caption"] == pytest.approx(ks_2samp([0.5, 2.0], [1.0, 1.0]).pvalue)
    assert "after/forget/multimodal/forget_quality_name" not in fq


def test_clear_prob_rel_of_a_task_is_the_mean_over_its_own_likelihood_items():
    """CLEAR's "Prob." of a task with more likelihood items than generated ones (2 captions scored, 1 generated):
    the mean of each item's P(truth) / (P(truth) + sum P(wrong)), over the 2, by hand."""
    import math

    from unlearn.eval.metrics import clear_task_metrics

    ln = math.log
    records = [
        _prob("f/0/prob/multimodal/0", "forget", "caption", ln(0.5), ln(0.5), [ln(0.25), ln(0.25)]),  # 0.5 / 1.0
        _prob("f/1/prob/multimodal/0", "forget", "caption", ln(0.2), ln(0.2), [ln(0.4), ln(0.4)]),  # 0.2 / 1.0
        {"uid": "f/0/gen/multimodal/0", "split": "forget", "modality": "multimodal", "task": "gen",
         "attribute": "caption", "score": 0.3, "recall": 0.6},
    ]
    m = clear_task_metrics(records, "after")
    assert m["after/forget/multimodal/prob_rel_caption"] == pytest.approx((0.5 + 0.2) / 2)
    assert m["after/forget/multimodal/prob_caption"] == pytest.approx((0.5 + 0.2) / 2)
    assert m["after/forget/multimodal/rougeL_recall_caption"] == pytest.approx(0.6)
