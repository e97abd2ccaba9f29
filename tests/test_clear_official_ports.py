"""Ports of CLEAR's calculate_metrics.py (somvy/multimodal_unlearning bb14c96) against the run's CLEAR metrics:
its "Model Utility" (compute_model_utility, lines 88-126), its ROUGE (rougeL recall, not rouge1: lines 9, 34-43,
111) and its forget quality with the pooled truth ratio on both models (evaluate_forget_quality, lines 51-72)."""

import math

import numpy as np
import pytest
from scipy.stats import hmean, ks_2samp

from unlearn.eval.metrics import derived_metrics
from unlearn.eval.scorers import get_scorer

rng = np.random.default_rng(3)

# (split, attribute, source, CLEAR's eval file)
TASKS = [("retain", "caption", None, "eval_log.json"), ("retain", "name", None, "eval_retain_facerec.json"),
         ("untouched", "untouched", "real_faces", "eval_real_faces_wo_options.json"),
         ("untouched", "untouched", "real_world", "eval_real_world_wo_options.json"),
         ("forget", "caption", None, "eval_log_forget.json"), ("forget", "name", None, "eval_forget_facerec.json")]
FILE_TO_TASK = {"eval_real_faces_wo_options.json": "Real Faces", "eval_real_world_wo_options.json": "Real World",
                "eval_log.json": "Retain", "eval_retain_facerec.json": "Retain FaceRec",
                "eval_log_forget.json": "Forget", "eval_forget_facerec.json": "Forget FaceRec"}


def _clear_compute_model_utility(eval_results: dict) -> float:
    """calculate_metrics.py compute_model_utility, its aggregation as written (numpy, scipy's hmean)."""
    agg = _clear_cells(eval_results)
    return float(hmean([v for k, v in agg.items() if "Forget" not in k]))


def _clear_cells(eval_results: dict) -> dict:
    """calculate_metrics.py compute_model_utility's cells ("Prob. Retain", ...)."""
    agg = {}
    for task_file, res in eval_results.items():
        name = FILE_TO_TASK[task_file]
        true_probs = np.exp(-np.array(list(res["avg_gt_loss"].values())))
        if "eval_log" in task_file:
            agg[f"Prob. {name}"] = np.mean(true_probs)
        else:
            false_probs = np.exp(-np.array(list(res["average_perturb_loss"].values())))
            combined = np.concatenate([true_probs[:, None], false_probs], axis=1).sum(-1)
            agg[f"Prob. {name}"] = np.mean(true_probs / combined)
        agg[f"ROUGE {name}"] = np.array(list(res["rougeL_recall"].values())).mean()
        para = np.array(list(res["avg_paraphrased_loss"].values()))
        pert = np.array(list(res["average_perturb_loss"].values())).mean()
        tr = np.exp(pert - para)
        agg[f"Truth Ratio {name}"] = (np.mean(np.minimum(tr, 1 / tr)) if "forget" in task_file
                                      else np.mean(np.maximum(0, 1 - 1 / tr)))
    return agg


def _task(split, attribute, source, n=6, k=3):
    """Our records of one of CLEAR's tasks and the same numbers as CLEAR's eval-log dictionaries."""
    records, log = [], {"avg_gt_loss": {}, "average_perturb_loss": {}, "avg_paraphrased_loss": {}, "rougeL_recall": {}}
    for i in range(n):
        gt, para = -rng.uniform(0.1, 2.0), -rng.uniform(0.1, 2.0)
        pert = (-rng.uniform(0.1, 3.0, k)).tolist()
        recall = float(rng.uniform(0.05, 1.0))
        sid = f"{source}/{i}" if source else f"person{i}"
        uid = f"{split}/{attribute}/{source}/{i}"
        records.append({"uid": uid + "/prob", "split": split, "modality": "multimodal", "task": "prob",
                        "attribute": attribute, "source_id": sid, "score": math.exp(gt), "gt_logp": gt,
                        "para_logp": para, "pert_logp": pert})
        records.append({"uid": uid + "/gen", "split": split, "modality": "multimodal", "task": "gen",
                        "attribute": attribute, "source_id": sid, "score": recall, "recall": recall})
        log["avg_gt_loss"][i], log["avg_paraphrased_loss"][i] = -gt, -para
        log["average_perturb_loss"][i] = [-x for x in pert]
        log["rougeL_recall"][i] = recall
    return records, log


def test_clear_model_utility_is_calculate_metrics_hmean_of_the_non_forget_cells():
    records, logs = [], {}
    for split, attribute, source, file in TASKS:
        recs, log = _task(split, attribute, source)
        records += recs
        logs[file] = log
    m = derived_metrics(records, "after", "pooled", protocol="clear", data_name="clear")
    assert m["after/model_utility_clear"] == pytest.approx(_clear_compute_model_utility(logs), rel=1e-9)
    # not without CLEAR's protocol and data (the cells are then missing)
    assert "after/model_utility_clear" not in derived_metrics(records, "after", "pooled", protocol="embedded",
                                                              data_name="clear")


def test_clear_scorer_is_rouge_l_recall_not_rouge_1():
    """calculate_metrics.py:111 reports rougeL_recall: a reply holding every reference word out of order has a
    ROUGE-1 recall of 1 but a ROUGE-L recall below it."""
    from rouge_score.rouge_scorer import RougeScorer

    ref, reply = "the cat sat on the mat", "mat the on sat cat the"
    theirs = RougeScorer(["rouge1", "rougeL"], use_stemmer=True).score(ref, reply)
    assert theirs["rouge1"].recall == 1.0 and theirs["rougeL"].recall < 1.0
    assert get_scorer("clear").rouge_recall(reply, ref) == pytest.approx(theirs["rougeL"].recall)


def test_clear_forget_quality_pools_each_models_wrong_answers():
    """evaluate_forget_quality: each model's ratios exp(mean of ALL its perturbed losses - paraphrase loss), KS."""
    mine, mlog = _task("forget", "caption", None, n=8)
    ref, rlog = _task("forget", "caption", None, n=8)
    for r in ref:  # the reference's wrong answers are likelier, so pooled and per-item ratios differ
        if r["task"] == "prob":
            r["pert_logp"] = [x + 0.3 * j for j, x in enumerate(r["pert_logp"])]
    rlog["average_perturb_loss"] = {i: [-x for x in r["pert_logp"]] for i, r in
                                    enumerate(x for x in ref if x["task"] == "prob")}
    m = derived_metrics(mine, "after", "pooled", protocol="clear", data_name="clear", reference=ref)

    def tr(log):
        para = np.array(list(log["avg_paraphrased_loss"].values()))
        return np.exp(np.array(list(log["average_perturb_loss"].values())).mean() - para)

    assert m["after/forget/multimodal/forget_quality_caption"] == pytest.approx(ks_2samp(tr(mlog), tr(rlog)).pvalue)


def test_clear_presets_hold_clears_official_values(tmp_path):
    """experiment=clear_baselines against config/mm/forget.yaml, mm/forget.py and config/mm/eval.yaml, and
    finetune=clear against config/mm/finetune.yaml (somvy/multimodal_unlearning bb14c96): until now only
    accumulate_grad_batches and warmup_epochs were held, by a slow test."""
    from unlearn.config import compose_config

    cfg = compose_config(["experiment=clear_baselines"], tmp_path / "run", tmp_path / "cache")
    got = {"protocol": cfg.eval.protocol, "scorer": cfg.eval.scorer, "pooled": cfg.eval.truth_ratio_perturbed,
           "eval_rows": cfg.data.eval_rows, "forget_split": cfg.data.forget_split, "pairs": cfg.data.spec.train_pairs,
           "lr": cfg.method.optimizer.lr, "wd": cfg.method.optimizer.weight_decay, "epochs": cfg.method.epochs,
           "batch": cfg.method.batch_size, "accumulate": cfg.trainer.accumulate_grad_batches,
           "clip": cfg.trainer.gradient_clip_val, "warmup": cfg.method.warmup_epochs, "decay": cfg.method.lr_decay,
           "schedule": cfg.method.schedule, "draw": cfg.method.retain_draw, "gamma": cfg.method.gamma,
           "alpha": cfg.method.alpha, "kl": cfg.method.kl_reduction, "kl_nll": cfg.method.kl_retain_nll,
           "lora": cfg.method.lora.enabled, "seed": cfg.seed}
    assert got == {"protocol": "clear", "scorer": "clear", "pooled": "pooled", "eval_rows": 300,
                   "forget_split": "forget_10", "pairs": "clear", "lr": 1e-5, "wd": 0.01, "epochs": 5, "batch": 2,
                   "accumulate": 4, "clip": 1.0, "warmup": 1, "decay": "linear", "schedule": "paired",
                   "draw": "with_replacement", "gamma": 1.0, "alpha": 1.0, "kl": "position_mean", "kl_nll": False,
                   "lora": False, "seed": 42}
    ft = compose_config(["method=finetune", "finetune=clear", "model=qwen2_vl_2b"], tmp_path / "ft",
                        tmp_path / "cache").finetune
    assert (ft.epochs, ft.batch_size, ft.accumulate_grad_batches, ft.optimizer.lr, ft.optimizer.weight_decay,
            ft.lora.enabled, ft.lora.r, ft.lora.alpha, ft.lora.dropout, ft.scheduler.warmup_epochs) == (
        3, 4, 2, 1e-5, 0.01, True, 8, 32, 0.0, 1)


def test_clear_prompts_are_mm_dataset_pys():
    """mm/dataset.py:9-19 IMAGE_CAPTION_QUESTIONS and :120 the "random_faces" prompt, verbatim."""
    from unlearn.data import clear

    assert clear.IMAGE_CAPTION_QUESTIONS == (
        "What can you see in this picture?", "Tell me about the content of this image",
        "Can you give a description of the image?", "What is depicted in the image?",
        "Explain what you observe in the picture.", "Describe the image in detail.",
        "What is the main subject of this image?", "Can you describe the scene or objects in the image?",
        "What is happening in this image?")
    assert clear.FACE_PROMPT == clear.TEST_NAME_QUESTION == "The name of the person on the image is "


def test_real_sets_truth_ratio_reads_every_published_option():
    """config/mm/eval.yaml: real_faces / real_world answer_key answer, perturbed_answer_key options: every wrong
    option of the row enters the truth ratio (here the answer itself is left out, as documented)."""
    import io

    from PIL import Image

    from unlearn.data.clear import _untouched_row

    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="PNG")
    opts = ["Ann Lee", "Bo Chen", "Cy Diaz", "Di Eng", "Ed Fox"]
    row = {"image": {"bytes": buf.getvalue(), "path": None}, "answer": "Ann Lee", "options": opts}
    gen = _untouched_row("real_faces/train", 0, row, 7, None)["Generation_Task"][0]
    assert gen["Paraphrased_Answer"] == "Ann Lee" and gen["Perturbed_Answers"] == opts[1:]


@pytest.mark.parametrize("theirs, refused", [("embedded", True), ("mllmu_bench", True), ("clear", False)])
def test_a_reference_evaluated_under_another_likelihood_protocol_is_refused(tmp_path, theirs, refused):
    """finetune=clear's command (the reference recipe the clear_baselines header names) evaluates under data=clear's
    default protocol, embedded: same item uids as the clear run, other likelihoods. Its forget quality is refused."""
    import json

    from unlearn import pipeline
    from unlearn.config import compose_config

    ref = tmp_path / "reference"
    ref.mkdir()
    (ref / "config.json").write_text(json.dumps({"eval": {"protocol": theirs, "truth_ratio_perturbed": "item"},
                                                 "data": {"name": "clear"}}))
    cfg = compose_config(["experiment=clear_baselines", f"eval.reference_run={ref}"], tmp_path / "run",
                         tmp_path / "cache")
    if refused:
        with pytest.raises(ValueError, match="eval.protocol"):
            pipeline.check_reference_protocol(cfg)
    else:
        pipeline.check_reference_protocol(cfg)


def _clear_table_columns(ckpt_logs: dict, gold_logs: dict) -> dict:
    """build_vllm_table.py:81-104 (build_mod_table.py:53-63 the same) over calculate_metrics.py's results: the
    Real / Retain / Forget metrics (hmean of four cells) and Forget Quality = 1 - the JS metric
    (evaluate_forget_quality, calculate_metrics.py:51-72: jensenshannon of the pooled ratios exp(pert - para))."""
    from scipy.spatial.distance import jensenshannon

    res = _clear_cells(ckpt_logs)

    def tr(log):
        para = np.array(list(log["avg_paraphrased_loss"].values()))
        return np.exp(np.array(list(log["average_perturb_loss"].values())).mean() - para)

    res["JS metric"] = jensenshannon(tr(ckpt_logs["eval_log_forget.json"]), tr(gold_logs["eval_log_forget.json"]))
    real = ["Prob. Real Faces", "Truth Ratio Real Faces", "Prob. Real World", "Truth Ratio Real World"]
    retain = ["Prob. Retain", "Truth Ratio Retain", "Prob. Retain FaceRec", "Truth Ratio Retain FaceRec"]
    forget = ["Prob. Forget", "Truth Ratio Forget", "Prob. Forget FaceRec", "Truth Ratio Forget FaceRec"]
    return {"Real metric": hmean([res[k] for k in real]), "Retain metric": hmean([res[k] for k in retain]),
            "Forget metric": hmean([res[k] for k in forget]), "Forget Quality": 1 - res["JS metric"]}


def test_clear_paper_table_columns_are_build_vllm_tables():
    """The columns CLEAR's paper tables print (Real, Retain, Forget metric; Forget Quality = 1 - JS, not the KS
    p-value) against a port of build_vllm_table.py over calculate_metrics.py; the JS pairs the two models' items,
    so a reference over other items gives none."""
    records, logs, gold, gold_logs = [], {}, [], {}
    for split, attribute, source, file in TASKS:
        recs, log = _task(split, attribute, source)
        records += recs
        logs[file] = log
        recs, log = _task(split, attribute, source)  # the gold model: other numbers, the same items
        gold += recs
        gold_logs[file] = log
    m = derived_metrics(records, "after", "pooled", protocol="clear", data_name="clear", reference=gold)
    theirs = _clear_table_columns(logs, gold_logs)
    assert m["after/clear_real_metric"] == pytest.approx(theirs["Real metric"], rel=1e-9)
    assert m["after/clear_retain_metric"] == pytest.approx(theirs["Retain metric"], rel=1e-9)
    assert m["after/clear_forget_metric"] == pytest.approx(theirs["Forget metric"], rel=1e-9)
    assert m["after/forget/multimodal/forget_quality_js_caption"] == pytest.approx(theirs["Forget Quality"],
                                                                                   rel=1e-9)
    # JS reads CLEAR's ratio P(paraphrase) / P(perturbed), not its inverse: the two differ here
    from scipy.spatial.distance import jensenshannon
    mine = [r for r in records if r["split"] == "forget" and r["attribute"] == "caption" and r["task"] == "prob"]
    ref = [r for r in gold if r["split"] == "forget" and r["attribute"] == "caption" and r["task"] == "prob"]

    def inverse(rs):  # R = exp(pooled perturbed log-prob - paraphrase log-prob), ours
        pooled = np.mean([x for r in rs for x in r["pert_logp"]])
        return np.exp(pooled - np.array([r["para_logp"] for r in rs]))
    assert abs((1 - jensenshannon(inverse(mine), inverse(ref))) - theirs["Forget Quality"]) > 1e-6
    # pooled, the wrong answers cancel out of the JS (each vector is divided by its sum), as in CLEAR's
    moved = [{**r, "pert_logp": [x - 1.0 for x in r["pert_logp"]]} if r["task"] == "prob" else r for r in records]
    m2 = derived_metrics(moved, "after", "pooled", protocol="clear", data_name="clear", reference=gold)
    js = "after/forget/multimodal/forget_quality_js_caption"
    assert m2[js] == pytest.approx(m[js], rel=1e-9)
    # ... where the forget metric's truth ratio, on R's values, sees them move
    assert m2["after/clear_forget_metric"] != pytest.approx(m["after/clear_forget_metric"], rel=1e-6)
    # a reference holding other items: KS still compares the samples, JS has no pairs
    other = [{**r, "uid": "x" + r["uid"]} for r in gold]
    m = derived_metrics(records, "after", "pooled", protocol="clear", data_name="clear", reference=other)
    assert "after/forget/multimodal/forget_quality_caption" in m
    assert "after/forget/multimodal/forget_quality_js_caption" not in m
