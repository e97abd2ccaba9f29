"""Answer probability, truth ratio and forget quality: hand-computed values, a port of CLEAR's aggregation,
and the wiring from generation items with perturbed answers to metrics."""

import math

import numpy as np
import pytest
import torch

from unlearn.eval.metrics import aggregate, forget_quality_metrics, truth_ratio_metrics
from unlearn.eval.truth_ratio import (answer_probability, forget_quality, relative_probability, reported_truth_ratio,
                                      truth_ratios)


def test_truth_ratio_hand_computed():
    # R = exp(mean(wrong) - paraphrase): exp((-2 - 4) / 2 + 1) = exp(-2)
    assert truth_ratios([-1.0], [[-2.0, -4.0]]) == pytest.approx([math.exp(-2)])
    # pooled: one mean (-3) over every wrong answer of the split
    assert truth_ratios([-1.0, -2.0], [[-2.0], [-4.0]], "pooled") == pytest.approx([math.exp(-2), math.exp(-1)])
    # with items of different numbers of wrong answers: the mean over all three (-2), not of the items' means
    # (-1.75), which a mutation left unseen until 2026-12-05
    assert truth_ratios([0.0, 0.0], [[-1.0], [-2.0, -3.0]], "pooled") == pytest.approx([math.exp(-2)] * 2)
    assert truth_ratios([-1.0, -2.0], [[-2.0], [-4.0]], "item") == pytest.approx([math.exp(-1), math.exp(-2)])
    assert answer_probability(math.log(0.25)) == pytest.approx(0.25)
    # truth 0.5 against wrong answers 0.25 and 0.25: a share of 0.5
    assert relative_probability(math.log(0.5), [math.log(0.25), math.log(0.25)]) == pytest.approx(0.5)


def test_far_apart_log_probabilities_read_as_limits_not_errors():
    """A model unlearned far enough puts the truth hundreds of nats below the wrong answers: math.exp raised
    OverflowError and the share divided 0 by 0 (found by a GA run at lr 3)."""
    assert truth_ratios([-800.0], [[-5.0]]) == [math.inf]  # numpy's exp, which TOFU and CLEAR use, says inf
    assert truth_ratios([-5.0], [[-800.0]]) == [0.0]
    assert truth_ratios([-800.0, -1.0], [[-5.0], [-3.0]], "pooled") == [math.inf, pytest.approx(math.exp(-3))]
    assert reported_truth_ratio([math.inf], "forget") == 0.0 and reported_truth_ratio([math.inf], "retain") == 0.0
    assert relative_probability(-800.0, [-5.0, -6.0]) == pytest.approx(0.0, abs=1e-300)
    assert relative_probability(-800.0, [-800.0]) == pytest.approx(0.5)  # exp(-800) is 0 in float: 0 / 0 before
    assert relative_probability(-5.0, [-800.0]) == 1.0


def test_reported_truth_ratio_reads_forget_and_other_splits_differently():
    assert reported_truth_ratio([0.5, 2.0], "forget") == pytest.approx(0.5)  # min(R, 1/R): 0.5 and 0.5
    assert reported_truth_ratio([0.5, 2.0], "retain") == pytest.approx(0.25)  # max(0, 1 - R): 0.5 and 0
    assert reported_truth_ratio([0.5, 2.0], "test") == pytest.approx(0.5)  # the forget people again
    with pytest.raises(ValueError, match="no truth ratios on split 'forget'"):
        reported_truth_ratio([], "forget")


def test_truth_ratio_refuses_bad_input():
    with pytest.raises(ValueError, match="eval.truth_ratio_perturbed='mean'"):
        truth_ratios([0.0], [[0.0]], "mean")
    with pytest.raises(ValueError, match="no perturbed answers"):
        truth_ratios([0.0], [[]])
    with pytest.raises(ValueError, match="1 paraphrase scores but 2"):
        truth_ratios([0.0], [[0.0], [0.0]])


def test_forget_quality_is_the_ks_p_value():
    assert forget_quality([0.1, 0.2, 0.3], [0.1, 0.2, 0.3]) == pytest.approx((1.0, 0.0))
    # fully separated samples of 3 and 3: statistic 1, exact two-sided p = 2 / C(6, 3) = 0.1
    assert forget_quality([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]) == pytest.approx((0.1, 1.0))
    with pytest.raises(ValueError, match="both the model and the reference"):
        forget_quality([], [1.0])


def _clear_port(para_loss: dict, pert_loss: dict, split_is_forget: bool) -> float:
    """CLEAR's calculate_metrics.py `compute_model_utility` truth-ratio cell, from its published semantics:
    per-token *losses*; the wrong answers' mean pooled over the split; exp(pert - para); forget
    mean(min(tr, 1/tr)), else mean(max(0, 1 - 1/tr))."""
    paraphrase = np.array(list(para_loss.values()))
    perturbed = np.array(list(pert_loss.values())).mean()
    tr = np.exp(perturbed - paraphrase)
    return float(np.mean(np.minimum(tr, 1 / tr)) if split_is_forget else np.mean(np.maximum(0, 1 - 1 / tr)))


def _clear_eval_port(para_loss: list, pert_loss: list) -> list:
    """CLEAR's eval.py `eval_perturbation_ratio`: exp(paraphrase loss - mean perturbed loss), per item."""
    return [math.exp(p - sum(w) / len(w)) for p, w in zip(para_loss, pert_loss)]


def _records(split, modality, para, pert):
    return [{"uid": f"{split}/{i}/prob/{modality}/0", "split": split, "modality": modality, "task": "prob",
             "score": 0.5, "gt_logp": math.log(0.5), "para_logp": p, "pert_logp": w}
            for i, (p, w) in enumerate(zip(para, pert))]


@pytest.mark.parametrize("split", ["forget", "retain"])
def test_aggregate_equals_the_port_of_clear(split):
    rng = np.random.default_rng(0)
    para = (-rng.uniform(0.1, 3.0, 12)).tolist()
    pert = (-rng.uniform(0.1, 3.0, (12, 3))).tolist()
    recs = _records(split, "multimodal", para, pert)
    pooled = truth_ratio_metrics(recs, "after", "pooled")[f"after/{split}/multimodal/truth_ratio"]
    losses = {i: -p for i, p in enumerate(para)}, {i: [-x for x in w] for i, w in enumerate(pert)}
    assert pooled == pytest.approx(_clear_port(*losses, split == "forget"), abs=1e-9)
    # per item, the ratio is exactly eval.py's
    assert truth_ratios(para, pert) == pytest.approx(_clear_eval_port([-p for p in para],
                                                                      [[-x for x in w] for w in pert]))


def test_aggregate_reports_prob_truth_ratio_and_recall():
    recs = _records("forget", "text", [-1.0, -1.0], [[-2.0], [0.0]])
    recs += [{"uid": "forget/0/gen/text/0", "split": "forget", "modality": "text", "task": "gen", "score": 0.4,
              "recall": 0.5}, {"uid": "forget/1/gen/text/0", "split": "forget", "modality": "text",
                               "task": "gen", "score": 0.6, "recall": 1.0}]
    m = aggregate(recs, "after")
    assert m["after/forget/text/prob"] == pytest.approx(0.5)
    assert m["after/forget/text/n_prob"] == 2
    # the truth's share: 0.5 / (0.5 + e^-2) and 0.5 / (0.5 + 1)
    assert m["after/forget/text/prob_rel"] == pytest.approx((0.5 / (0.5 + math.exp(-2)) + 0.5 / 1.5) / 2)
    assert "after/forget/text/n_prob_rel" not in m
    # R = e^-1 and e^1: min(R, 1/R) = e^-1 both
    assert m["after/forget/text/truth_ratio"] == pytest.approx(math.exp(-1))
    assert m["after/forget/text/rougeL"] == pytest.approx(0.5)
    assert m["after/forget/text/rougeL_recall"] == pytest.approx(0.75)
    assert "after/forget/text/n_rougeL_recall" not in m


def test_forget_quality_metrics_per_modality():
    mine = _records("forget", "multimodal", [-1.0, -1.0, -1.0], [[-2.0], [-3.0], [-4.0]])
    ref = _records("forget", "multimodal", [-1.0, -1.0, -1.0], [[2.0], [3.0], [4.0]])
    m = forget_quality_metrics(mine, "after", ref)
    assert m["after/forget/multimodal/forget_quality"] == pytest.approx(0.1)
    assert m["after/forget/multimodal/forget_ks"] == pytest.approx(1.0)
    assert forget_quality_metrics(mine, "after", mine)["after/forget/multimodal/forget_quality"] == 1.0
    assert forget_quality_metrics(mine, "after", []) == {}  # no reference ratios for that modality


def test_embedded_generation_items_carry_a_paraphrase_and_perturbed_answers(small_splits):
    from unlearn.data import people as P

    row = small_splits["forget_10"][0]
    for q in row["Generation_Task"]:
        assert q["Paraphrased_Answer"] and q["Paraphrased_Answer"] != q["Ground_Truth"]
        assert len(q["Perturbed_Answers"]) == 3 and q["Ground_Truth"] not in q["Perturbed_Answers"]
        assert len(set(q["Perturbed_Answers"])) == 3
    # perturbed answers use the MC distractors, so every wrong value is a wrong option of the person's MC
    options = {v for mcq in row["Classification_Task"]["Pure_Text_Questions"] for v in mcq["Options"].values()}
    words = {w for q in row["Generation_Task"] for a in q["Perturbed_Answers"] for w in a.split()}
    assert {w for w in words if any(w in pool for pool in P.POOLS.values())} <= options


def test_paraphrases_add_no_word_to_the_vocabulary(monkeypatch):
    """The tokenizer (and so every cached model) must not change because the truth ratio needs paraphrases."""
    from unlearn.data import people as P

    with_paraphrases = P.vocabulary()
    monkeypatch.setattr(P, "GEN_PARAPHRASES", ())
    assert P.vocabulary() == with_paraphrases


def test_flatten_makes_prob_items_and_keeps_image_rows_apart(small_splits, tiny_model):
    from unlearn.eval.items import flatten

    _, proc = tiny_model
    row = dict(small_splits["forget_10"][0])
    items = flatten("forget", [row], proc.pixel_values)
    prob = [it for it in items if it.task == "prob"]
    gen = [it for it in items if it.task == "gen"]
    assert len(prob) == len(gen) and all(it.perturbed and it.paraphrase for it in prob)
    assert {it.uid.replace("/prob/", "/gen/") for it in prob} == {it.uid for it in gen}
    second = flatten("forget", [{**row, "Image_Index": 2}], proc.pixel_values)
    assert all(f"forget/{row['ID']}.2/" in it.uid for it in second)
    assert not {it.uid for it in items} & {it.uid for it in second}
    plain = {**row, "Generation_Task": [{k: v for k, v in q.items() if k not in ("Paraphrased_Answer",
                                                                                  "Perturbed_Answers")}
                                        for q in row["Generation_Task"]]}
    assert not [it for it in flatten("forget", [plain], proc.pixel_values) if it.task == "prob"]


def test_score_probabilities_matches_a_direct_likelihood(small_splits, tiny_model):
    from tests.likelihood import answer_token_logprobs
    from unlearn.eval.items import flatten
    from unlearn.eval.scoring import score_probabilities

    model, proc = tiny_model
    model.eval()
    items = [it for it in flatten("forget", small_splits["forget_10"], proc.pixel_values) if it.task == "prob"][:4]
    records = score_probabilities(model, proc, items)
    it, r = items[1], records[1]

    def direct(answer):  # the per-token mean log-probability of `answer` after the question, one row alone
        return answer_token_logprobs(model, proc, it.question, answer, it.pixel_values).mean().item()

    # each answer in its own slot (a swap of truth and paraphrase, or of perturbed ones, would show)
    assert it.paraphrase and it.paraphrase != it.answer and len(set(it.perturbed)) == 3
    assert r["gt_logp"] == pytest.approx(direct(it.answer), abs=1e-4)
    assert r["para_logp"] == pytest.approx(direct(it.paraphrase), abs=1e-4)
    assert r["pert_logp"] == pytest.approx([direct(p) for p in it.perturbed], abs=1e-4)
    assert abs(direct(it.answer) - direct(it.paraphrase)) > 1e-3
    assert r["score"] == pytest.approx(math.exp(r["gt_logp"]))
    assert len(r["pert_logp"]) == 3 and r["task"] == "prob"


def test_max_people_counts_people_not_image_rows():
    from datasets import Dataset

    from unlearn.pipeline import first_people

    rows = Dataset.from_list([{"ID": i, "Image_Index": k} for i, k in [(7, 0), (7, 1), (3, 0), (3, 1), (5, 0)]])
    picked = first_people(rows, 2)
    assert picked["ID"] == [7, 7, 3, 3] and picked["Image_Index"] == [0, 1, 0, 1]
    assert first_people(rows, 10)["ID"] == rows["ID"]


def test_a_reference_run_on_other_forget_questions_is_refused(small_benchmark, tmp_path):
    """Forget quality KS-tests this run's forget truth ratios against the reference's: the same questions or
    the p-value means nothing (a reference on another forget split, benchmark or eval.max_people)."""
    from unlearn.config import compose_config
    from unlearn.eval.items import flatten
    from unlearn.pipeline import check_reference_items

    cfg = compose_config(["eval.reference_run=/runs/ref", "logger=none"], tmp_path / "run", tmp_path / "cache")
    uids = [it.uid for it in flatten("forget", small_benchmark.eval["forget"], lambda ims: [None] * len(ims))
            if it.task == "prob"]
    assert uids
    check_reference_items([{"uid": u} for u in uids], small_benchmark, cfg)  # the same questions: accepted
    with pytest.raises(ValueError, match=r"eval.reference_run=/runs/ref: .*1 only here"):
        check_reference_items([{"uid": u} for u in uids[1:]], small_benchmark, cfg)
    with pytest.raises(ValueError, match="1 only there, 0 only here"):  # the reference asked someone else too
        check_reference_items([{"uid": u} for u in [*uids, "forget/999/prob/text/0"]], small_benchmark, cfg)


def test_a_model_with_non_finite_outputs_is_refused_not_scored(small_splits, tiny_model):
    """NaN logits made every MC option tie, the first one won, and forget accuracy fell as if unlearnt."""
    import copy

    from unlearn.eval.items import flatten
    from unlearn.eval.scoring import NonFiniteScoreError, score_mc, score_probabilities

    model, proc = tiny_model
    items = flatten("forget", [dict(small_splits["forget_10"][0])], proc.pixel_values)
    mc = [it for it in items if it.task == "mc"][:2]
    prob = [it for it in items if it.task == "prob"][:2]
    assert score_mc(model, proc, mc) and score_probabilities(model, proc, prob)  # the model as taught: scored
    broken = copy.deepcopy(model)
    with torch.no_grad():
        broken.get_output_embeddings().weight[0, 0] = float("nan")
    with pytest.raises(NonFiniteScoreError, match=rf"task mc, item {mc[0].uid} \(forget, "):
        score_mc(broken, proc, mc)
    with pytest.raises(NonFiniteScoreError, match=rf"task prob, item {prob[0].uid} "):
        score_probabilities(broken, proc, prob)
    # the evaluation names its stage and where to look: the loaded weights before, the method after
    from unlearn.eval.evaluator import EvaluationModule

    for stage, cause in (("before", "the model as loaded: are its weights finite"),
                         ("after", "the method, or the attack, diverged")):
        module = EvaluationModule(broken, proc, mc, stage)
        module.on_validation_epoch_start()
        with pytest.raises(NonFiniteScoreError, match=rf"^{stage} evaluation: task mc, .*\({cause}"):
            module.validation_step(module.items_by_task["mc"], 0, 0)


def test_a_ratio_that_underflows_to_zero_reads_as_remembered_on_forget():
    """R = 0: the model prefers the truth overwhelmingly. min(R, 1/R) is 0 (remembered), not 1 (forgotten)."""
    from unlearn.eval.truth_ratio import reported_truth_ratio

    assert reported_truth_ratio([0.0, 1.0], "forget") == 0.5
    assert reported_truth_ratio([0.0], "test") == 0.0
