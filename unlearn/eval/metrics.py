"""Per-item metric functions and their aggregation into flat `{stage}/{split}/{modality}/{metric}` keys."""

from __future__ import annotations

from collections import defaultdict

from unlearn.eval.truth_ratio import (forget_quality, forget_quality_js, relative_probability, reported_truth_ratio,
                                      truth_ratios)

TASK_METRIC = {"mc": "mc_acc", "gen": "rougeL", "cloze": "cloze_acc", "prob": "prob"}


def normalize(text: str) -> list[str]:
    return text.lower().replace(".", " ").replace(",", " ").split()


def torchmetrics_rouge_l(prediction: str, reference: str) -> dict:
    """torchmetrics' ROUGE-L, imported where it is used: its package import (scipy, matplotlib; seconds) came
    with the checks before a run, which read the scorers' names (unlearn/eval/scorers.py imports this module)."""
    from torchmetrics.functional.text import rouge_score

    return rouge_score(prediction, reference, rouge_keys="rougeL")


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure (torchmetrics); 0 when either side is empty."""
    if not normalize(prediction) or not normalize(reference):
        return 0.0
    return float(torchmetrics_rouge_l(prediction, reference)["rougeL_fmeasure"])


def rouge_l_recall(prediction: str, reference: str) -> float:
    """ROUGE-L recall (torchmetrics, no stemming): how much of the reference the reply recovers."""
    if not normalize(prediction) or not normalize(reference):
        return 0.0
    return float(torchmetrics_rouge_l(prediction, reference)["rougeL_recall"])


def mc_choice(option_scores: list[float]) -> int:
    """Index of the best-scoring option; ties go to the first, so the decision is deterministic."""
    best = 0
    for i, s in enumerate(option_scores):
        if s > option_scores[best]:
            best = i
    return best


def parse_letter(text: str, letters: tuple[str, ...] = ("A", "B", "C", "D")) -> int:
    """MLLMU-Bench's reading of a generated MC answer: the first character of the stripped reply, upper-cased,
    if it is an option letter (else -1, counted wrong). Source: `evaluate_classification` in its eval.py."""
    head = text.strip()[:1].upper()
    wanted = [x.upper() for x in letters]
    return wanted.index(head) if head and head in wanted else -1


def cloze_correct(prediction: str, reference: str) -> bool:
    """The generated text starts with the blank's words (case, "." and "," ignored; other punctuation counts:
    "lawyer!" is not "lawyer")."""
    ref = normalize(reference)
    return bool(ref) and normalize(prediction)[: len(ref)] == ref


def aggregate(records: list[dict], stage: str, truth_ratio_perturbed: str = "item") -> dict[str, float]:
    """Mean score per (split, modality, task) as flat keys; counts go under `.../n_{task}`. A record may
    name its own metric (`mc_acc_generate`: the same MC item scored a second way, eval.mc_also). Generation
    records with a `recall` add `rougeL_recall` (CLEAR's ROUGE as the run's scorer tokenises: CLEAR's own under
    eval.scorer=clear), and their `columns` (the official scorers'
    rouge1, rouge2, bleu) each by name; prob records add `prob_rel` and `truth_ratio`."""
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    beside: set[str] = set()  # means of a task's items that count no items of their own (no n_ key)

    def add(key: str, value: float) -> None:
        sums[key] += value
        counts[key] += 1
        beside.add(key)

    for r in records:
        where = f"{stage}/{r['split']}/{r['modality']}"
        key = f"{where}/{r.get('metric') or TASK_METRIC[r['task']]}"
        sums[key] += float(r["score"])
        counts[key] += 1
        if r["task"] == "gen" and "recall" in r:
            add(f"{where}/rougeL_recall", float(r["recall"]))
        if r["task"] == "gen":
            for name, value in r.get("columns", {}).items():
                add(f"{where}/{name}", float(value))
        if r["task"] == "prob" and r.get("pert_logp"):
            add(f"{where}/prob_rel", relative_probability(r["gt_logp"], r["pert_logp"]))
    out = {k: sums[k] / counts[k] for k in sums}
    out.update({k.rsplit("/", 1)[0] + f"/n_{k.rsplit('/', 1)[1]}": counts[k] for k in counts
                if k not in beside})  # as many as the rougeL / prob items
    out.update(truth_ratio_metrics(records, stage, truth_ratio_perturbed))
    return dict(sorted(out.items()))


def split_truth_ratios(records: list[dict], split: str, modality: str, perturbed: str = "item") -> list[float]:
    """Per-item truth ratios R of one split and modality, from the prob records (uid order)."""
    return record_truth_ratios([r for r in records if r["task"] == "prob" and r["split"] == split
                                and r["modality"] == modality], perturbed)


def record_truth_ratios(prob_records: list[dict], perturbed: str = "item") -> list[float]:
    """Per-item truth ratios R of prob records that carry perturbed answers, in uid order."""
    return list(uid_truth_ratios(prob_records, perturbed).values())


def uid_truth_ratios(prob_records: list[dict], perturbed: str = "item") -> dict[str, float]:
    """{uid: R} of prob records that carry perturbed answers, in uid order."""
    rows = sorted((r for r in prob_records if r.get("pert_logp")), key=lambda r: r["uid"])
    ratios = truth_ratios([r["para_logp"] for r in rows], [r["pert_logp"] for r in rows], perturbed)
    return dict(zip((r["uid"] for r in rows), ratios))


def truth_ratio_metrics(records: list[dict], stage: str, perturbed: str = "item") -> dict[str, float]:
    """`{stage}/{split}/{modality}/truth_ratio`, read as CLEAR and TOFU report it (forget: min(R, 1/R))."""
    out = {}
    for split, modality in sorted({(r["split"], r["modality"]) for r in records if r["task"] == "prob"}):
        ratios = split_truth_ratios(records, split, modality, perturbed)
        if ratios:
            out[f"{stage}/{split}/{modality}/truth_ratio"] = reported_truth_ratio(ratios, split)
    return out


def forget_quality_metrics(records: list[dict], stage: str, reference: list[dict],
                           perturbed: str = "item") -> dict[str, float]:
    """`{stage}/forget/{modality}/forget_quality` (KS p-value) and `.../forget_ks` (its statistic): this
    stage's forget-split truth ratios against the reference model's, per modality where both have them."""
    out = {}
    for modality in sorted({r["modality"] for r in records if r["task"] == "prob" and r["split"] == "forget"}):
        mine = split_truth_ratios(records, "forget", modality, perturbed)
        ref = split_truth_ratios(reference, "forget", modality, perturbed)
        if mine and ref:
            p, stat = forget_quality(mine, ref)
            out[f"{stage}/forget/{modality}/forget_quality"] = p
            out[f"{stage}/forget/{modality}/forget_ks"] = stat
    return out


# CLEAR's tables (mm/calculate_metrics.py FILE_TO_TASK) keep its tasks apart: captions (Forget, Retain), face
# recognition (Forget FaceRec, Retain FaceRec) and the real-world sets; its items here carry them as attributes
CLEAR_TASKS = ("caption", "name", "untouched")
# CLEAR's two untouched sets (unlearn/data/clear.py UNTOUCHED_CONFIGS), the prefix of their items' source_id
UNTOUCHED_SOURCES = ("real_faces", "real_world")


def source_metrics(records: list[dict], stage: str, truth_ratio_perturbed: str = "item") -> dict[str, float]:
    """`{stage}/untouched/{modality}/{metric}_{source}`: the untouched split's metrics over each of CLEAR's real
    sets alone. CLEAR's tables and MMUnlearner's CLEAR_eval.sh report real faces and real world apart; the run's
    table keeps the split's mean over both, which these decompose."""
    out: dict[str, float] = {}
    for source in UNTOUCHED_SOURCES:
        mine = [r for r in records if r["split"] == "untouched"
                and str(r.get("source_id") or "").split("/", 1)[0] == source]
        out.update({f"{key}_{source}": value for key, value in aggregate(mine, stage, truth_ratio_perturbed).items()})
    return out


def clear_task_metrics(records: list[dict], stage: str, perturbed: str = "item",
                       reference: list[dict] | None = None) -> dict[str, float]:
    """`{stage}/{split}/{modality}/{metric}_{attribute}` for each of CLEAR's tasks (CLEAR_TASKS) a split holds:
    rougeL_recall, prob (its "Prob." of the caption tasks), prob_rel (its "Prob." of the others) and
    truth_ratio, each over that task's items alone; with `reference` (eval.reference_run's records), forget
    quality per task too (CLEAR takes it from the captions, `eval_log_forget`): the KS p-value
    (`forget_quality_*`, calculate_metrics.py's "KS test p-value") and, where both runs hold the same items,
    `forget_quality_js_*`, 1 - the Jensen-Shannon distance of the two models' ratios item by item, which CLEAR's
    tables print as "Forget Quality" (build_vllm_table.py:104, build_mod_table.py:63)."""
    out: dict[str, float] = {}

    def of(recs, task, split, modality, attribute):
        return [r for r in recs if r["task"] == task and r["split"] == split and r["modality"] == modality
                and r.get("attribute") == attribute]

    groups = sorted({(r["split"], r["modality"], r.get("attribute")) for r in records
                     if r["task"] in ("gen", "prob") and r.get("attribute") in CLEAR_TASKS})
    for split, modality, attribute in groups:
        where = f"{stage}/{split}/{modality}"
        gen = [r for r in of(records, "gen", split, modality, attribute) if "recall" in r]
        if gen:
            out[f"{where}/rougeL_recall_{attribute}"] = sum(float(r["recall"]) for r in gen) / len(gen)
        prob = [r for r in of(records, "prob", split, modality, attribute) if r.get("pert_logp")]
        if not prob:
            continue
        out[f"{where}/prob_{attribute}"] = sum(float(r["score"]) for r in prob) / len(prob)
        out[f"{where}/prob_rel_{attribute}"] = sum(relative_probability(r["gt_logp"], r["pert_logp"])
                                                   for r in prob) / len(prob)
        mine = uid_truth_ratios(prob, perturbed)
        out[f"{where}/truth_ratio_{attribute}"] = reported_truth_ratio(list(mine.values()), split)
        if reference is not None and split == "forget":
            ref = uid_truth_ratios(of(reference, "prob", split, modality, attribute), perturbed)
            if ref:
                out[f"{where}/forget_quality_{attribute}"] = forget_quality(list(mine.values()),
                                                                            list(ref.values()))[0]
            if ref and ref.keys() == mine.keys():  # JS pairs item with item (CLEAR: the same rows in both logs)
                out[f"{where}/forget_quality_js_{attribute}"] = forget_quality_js(list(mine.values()),
                                                                                  [ref[u] for u in mine])
    return out


# calculate_metrics.py compute_model_utility (somvy/multimodal_unlearning bb14c96, lines 88-126): the harmonic mean of
# the Prob., ROUGE and Truth Ratio cells of every task whose name holds no "Forget": Retain (eval_log.json: the
# raw probability), Retain FaceRec, Real Faces, Real World (the truth's share among the options)
CLEAR_UTILITY_CELLS = tuple(
    f"{where}/{metric}" for where, prob, suffix in (("retain/multimodal", "prob", "_caption"),
                                                   ("retain/multimodal", "prob_rel", "_name"),
                                                   ("untouched/multimodal", "prob_rel", "_real_faces"),
                                                   ("untouched/multimodal", "prob_rel", "_real_world"))
    for metric in (prob + suffix, "rougeL_recall" + suffix, "truth_ratio" + suffix))


# mm/build_vllm_table.py:81-83, 98-100 (and build_mod_table.py:53-61), the scripts that print CLEAR's paper
# tables (commit 7ac3bbd, "build paper tables"): the harmonic means of four Prob. / Truth Ratio cells each, no
# ROUGE; the tables' columns are these three and "Forget Quality" (1 - JS: forget_quality_js_caption)
CLEAR_TABLE_CELLS = {
    "real": ("untouched/multimodal/prob_rel_real_faces", "untouched/multimodal/truth_ratio_real_faces",
             "untouched/multimodal/prob_rel_real_world", "untouched/multimodal/truth_ratio_real_world"),
    "retain": ("retain/multimodal/prob_caption", "retain/multimodal/truth_ratio_caption",
               "retain/multimodal/prob_rel_name", "retain/multimodal/truth_ratio_name"),
    "forget": ("forget/multimodal/prob_caption", "forget/multimodal/truth_ratio_caption",
               "forget/multimodal/prob_rel_name", "forget/multimodal/truth_ratio_name"),
}


def _hmean(cells: list[float]) -> float:
    """scipy's hmean of positive cells, 0 where any is 0."""
    return 0.0 if any(c <= 0 for c in cells) else len(cells) / sum(1.0 / c for c in cells)


def clear_model_utility(metrics: dict[str, float], stage: str) -> dict[str, float]:
    """`{stage}/model_utility_clear`: calculate_metrics.py's "Model Utility", scipy's hmean of its twelve
    non-forget cells (CLEAR_UTILITY_CELLS; 0 where any is 0), and `{stage}/clear_{real,retain,forget}_metric`,
    the "Real", "Retain" and "Forget metric" columns of CLEAR's paper tables (CLEAR_TABLE_CELLS), each when the
    run has all of its cells (eval.protocol=clear on data=clear)."""
    out = {}
    cells = [metrics.get(f"{stage}/{key}") for key in CLEAR_UTILITY_CELLS]
    if not any(c is None for c in cells):
        out[f"{stage}/model_utility_clear"] = _hmean(cells)
    for name, keys in CLEAR_TABLE_CELLS.items():
        cells = [metrics.get(f"{stage}/{key}") for key in keys]
        if not any(c is None for c in cells):
            out[f"{stage}/clear_{name}_metric"] = _hmean(cells)
    return out


def derived_metrics(records: list[dict], stage: str, perturbed: str = "item", protocol: str | None = None,
                    data_name: str | None = None, reference: list[dict] | None = None) -> dict[str, float]:
    """What a run adds to a stage's split means (aggregate) from its items: forget quality against `reference`
    (eval.reference_run's records) where given, CLEAR's per-task means under `eval.protocol=clear`, the per-source
    means of CLEAR's untouched sets under `data=clear`. One function for the pipeline and unlearn.rescore, so a
    re-scored run recomputes every such key the run made."""
    out: dict[str, float] = {}
    if reference is not None:
        out.update(forget_quality_metrics(records, stage, reference, perturbed))
    if protocol == "clear":  # CLEAR's tables: each of its tasks on its own (captions, face recognition)
        out.update(clear_task_metrics(records, stage, perturbed, reference))
    if data_name == "clear":  # real faces and real world apart, as CLEAR and MMUnlearner report them
        out.update(source_metrics(records, stage, perturbed))
    if protocol == "clear" and data_name == "clear":  # CLEAR's utility and its tables' columns from the cells above
        out.update(clear_model_utility(out, stage))
    return out
