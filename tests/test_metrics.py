import pytest

from unlearn.eval.metrics import aggregate, cloze_correct, mc_choice, parse_letter, rouge_l
from unlearn.eval.table import before_after_table


def test_rouge_l_hand_computed():
    # LCS("a nurse in lyon", "a teacher in lyon") = 3 of 4 words each side: P = R = F = 0.75
    assert rouge_l("a nurse in lyon", "a teacher in lyon") == pytest.approx(0.75)
    # LCS 1; P = 1, R = 1/4 -> F = 2 * 1 * 0.25 / 1.25 = 0.4
    assert rouge_l("teacher", "a teacher in lyon") == pytest.approx(0.4)
    assert rouge_l("a teacher in lyon", "a teacher in lyon") == pytest.approx(1.0)
    assert rouge_l("", "a teacher") == 0.0
    assert rouge_l("lyon in teacher a", "a teacher in lyon") == pytest.approx(0.25)


def test_rouge_l_recall_hand_computed():
    """The share of the reference's words the reply recovers in order (LCS / reference length), the embedded
    scorer's rougeL_recall column: not precision (LCS / reply length), not the F-measure."""
    from unlearn.eval.metrics import rouge_l_recall
    from unlearn.eval.scorers import SCORERS

    assert rouge_l_recall("teacher", "a teacher in lyon") == pytest.approx(0.25)  # LCS 1 of 4 (precision: 1)
    assert rouge_l_recall("a teacher in lyon today at noon", "a teacher in lyon") == pytest.approx(1.0)  # P 4/7
    assert rouge_l_recall("lyon in teacher a", "a teacher in lyon") == pytest.approx(0.25)
    assert rouge_l_recall("", "a teacher") == 0.0
    assert SCORERS["embedded"].rouge_recall("teacher", "a teacher in lyon") == pytest.approx(0.25)


def test_mc_choice_and_ties():
    assert mc_choice([-3.0, -1.0, -2.0, -5.0]) == 1
    assert mc_choice([-1.0, -1.0, -4.0, -1.0]) == 0  # ties: first option, deterministically
    assert mc_choice([-9.0, -9.0, -9.0, -0.5]) == 3


def test_cloze_correct():
    assert cloze_correct("teacher", "teacher")
    assert cloze_correct("Teacher . and more", "teacher")
    assert not cloze_correct("a teacher", "teacher")
    assert not cloze_correct("", "teacher")
    assert cloze_correct("1967 in", "1967")
    # commas are ignored as periods are (normalize): an answer followed by a comma is still the answer
    assert cloze_correct("Paris, France", "Paris") and cloze_correct("lawyer, obviously", "lawyer")


def test_aggregate_keys_and_means():
    recs = [
        {"split": "forget", "modality": "text", "task": "mc", "score": 1.0},
        {"split": "forget", "modality": "text", "task": "mc", "score": 0.0},
        {"split": "forget", "modality": "text", "task": "mc", "score": 1.0},
        {"split": "retain", "modality": "multimodal", "task": "gen", "score": 0.5},
    ]
    out = aggregate(recs, "before")
    assert out["before/forget/text/mc_acc"] == pytest.approx(2 / 3)
    assert out["before/forget/text/n_mc_acc"] == 3
    assert out["before/retain/multimodal/rougeL"] == 0.5
    assert "before/retain/text/rougeL" not in out


def test_table_shows_before_and_after():
    table = before_after_table({"before/forget/text/mc_acc": 0.9, "after/forget/text/mc_acc": 0.25})
    assert "| forget | text | 0.900 -> 0.250 | - | - |" in table
    assert "multimodal" not in table


@pytest.mark.parametrize("text,expected", [
    ("B", 1), (" b", 1), ("B: Paris", 1), ("d.", 3), ("A", 0), ("a : the nurse", 0), ("C is right", 2),
    ("The answer is C", -1), ("(b)", -1), ("E", -1), ("", -1), ("   ", -1),
])
def test_parse_letter_reads_the_first_character_as_mllmu_bench_does(text, expected):
    assert parse_letter(text) == expected


def test_second_mc_scoring_has_its_own_key_and_column():
    recs = [
        {"split": "forget", "modality": "text", "task": "mc", "score": 1.0},
        {"split": "forget", "modality": "text", "task": "mc", "score": 0.0, "metric": "mc_acc_generate"},
    ]
    out = aggregate(recs, "after")
    assert out["after/forget/text/mc_acc"] == 1.0 and out["after/forget/text/mc_acc_generate"] == 0.0
    table = before_after_table(out)
    assert "| mc_acc | mc_acc_generate | rougeL |" in table and "| forget | text | 1.000 | 0.000 | - | - |" in table
    assert "mc_acc_generate" not in before_after_table({"after/forget/text/mc_acc": 1.0})


def test_mc_also_must_be_another_mode():
    from unlearn.eval.evaluator import EvaluationModule

    with pytest.raises(ValueError, match="eval.mc_also='likelihood'"):
        EvaluationModule(None, None, [], "after", mc_mode="likelihood", mc_also="likelihood")


def test_table_numbers_small_p_values_in_e_notation():
    from unlearn.eval.table import before_after_table, number

    assert number(0.25) == "0.250" and number(0.0) == "0.000" and number(2.5e-07) == "2.5e-07"
    assert number(0.0004) == "4.0e-04" and number(0.0006) == "0.001"
    table = before_after_table({"before/forget/text/forget_quality": 8.2e-12, "after/forget/text/forget_quality": 0.31})
    assert "| forget | text | - | - | - | 8.2e-12 -> 0.310 |" in table


def test_clears_real_sets_are_reported_apart_by_their_source():
    """CLEAR and MMUnlearner's CLEAR_eval.sh report real faces and real world apart: each set's untouched metrics
    over its own records (hand-computed), keyed by the source_id prefix; other splits and records without a
    source are left out; the split's pooled mean is their count-weighted mean."""
    from unlearn.data.clear import UNTOUCHED_CONFIGS
    from unlearn.eval.metrics import UNTOUCHED_SOURCES, source_metrics

    assert UNTOUCHED_SOURCES == UNTOUCHED_CONFIGS

    def rec(source, score, task="mc", split="untouched"):
        return {"uid": f"{split}/{source}/{score}", "split": split, "modality": "multimodal", "task": task,
                "score": score, **({"source_id": f"{source}/3"} if source else {})}

    records = [rec("real_faces", 1.0), rec("real_faces", 0.0), rec("real_faces", 1.0), rec("real_world", 0.0),
               rec("real_world", 1.0, "gen"), rec("real_faces", 0.0, split="forget"), rec(None, 1.0)]
    out = source_metrics(records, "after")
    assert out == {"after/untouched/multimodal/mc_acc_real_faces": pytest.approx(2 / 3),
                   "after/untouched/multimodal/n_mc_acc_real_faces": 3,
                   "after/untouched/multimodal/mc_acc_real_world": 0.0,
                   "after/untouched/multimodal/n_mc_acc_real_world": 1,
                   "after/untouched/multimodal/rougeL_real_world": 1.0,
                   "after/untouched/multimodal/n_rougeL_real_world": 1}
    pooled = aggregate([r for r in records[:5]], "after")["after/untouched/multimodal/mc_acc"]
    assert pooled == pytest.approx((3 * 2 / 3 + 1 * 0.0) / 4)
