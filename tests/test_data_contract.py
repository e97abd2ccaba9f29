"""The eval-row contract the metrics read: Image_Index, Paraphrased_Answer, Perturbed_Answers, and the
`data.on_bad_row` policy that decides what a bad row costs."""

import pytest

from unlearn.data.hub import EVAL_FEATURES, to_dataset
from unlearn.data.schema import BadRows, DataError, RowError, check_eval_row, check_eval_rows

from PIL import Image


def _image():
    import io
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="PNG")
    return {"bytes": buf.getvalue(), "path": None}


def _mc(answer="B"):
    return {"Question": "Which?", "Options": {"A": "a", "B": "b", "C": "c", "D": "d"}, "Correct_Answer": answer,
            "attribute": ""}


def _row(**gen_extra):
    gen = {"Question": "Describe it.", "Ground_Truth": "A cat.", "Type": "Image_Textual", "attribute": "caption",
           **gen_extra}
    return {"ID": 3, "source_id": "x", "name": "X", "image": _image(),
            "Classification_Task": {"Image_Textual_Questions": [_mc(), _mc("a")], "Pure_Text_Questions": []},
            "Generation_Task": [gen], "Mask_Task": []}


def test_eval_features_carry_the_optional_fields():
    assert EVAL_FEATURES["Image_Index"].dtype == "int64"
    entry = EVAL_FEATURES["Generation_Task"][0] if isinstance(EVAL_FEATURES["Generation_Task"], list) \
        else EVAL_FEATURES["Generation_Task"].feature
    assert {"Paraphrased_Answer", "Perturbed_Answers"} <= set(entry)
    row = _row(Paraphrased_Answer="It is a cat.", Perturbed_Answers=["A dog.", "A cow."])
    row["Classification_Task"]["Image_Textual_Questions"].pop()
    plain = _row()
    plain["Classification_Task"]["Image_Textual_Questions"].pop()
    ds = to_dataset([{**row, "Image_Index": 2}, plain], EVAL_FEATURES)
    assert ds["Image_Index"] == [2, 0]  # absent -> image 0
    assert ds[0]["Generation_Task"][0]["Perturbed_Answers"] == ["A dog.", "A cow."]
    assert ds[1]["Generation_Task"][0]["Paraphrased_Answer"] is None
    assert ds[1]["Generation_Task"][0]["Perturbed_Answers"] is None  # absent: no truth ratio for the item


@pytest.mark.parametrize("bad_value", [[], [""], ["ok", "  "], "a dog", [3]])
def test_bad_perturbed_answers_raise_in_error_mode_and_drop_the_item_in_skip_mode(bad_value):
    row = _row(Perturbed_Answers=bad_value)
    row["Classification_Task"]["Image_Textual_Questions"].pop()
    with pytest.raises(RowError, match=r"split 'forget_1', row 4: Generation_Task\[0\] Perturbed_Answers is not"):
        check_eval_row("forget_1", 4, row)
    bad = BadRows("skip")
    kept = check_eval_row("forget_1", 4, row, bad)
    assert kept["Generation_Task"] == [] and kept["Classification_Task"]["Image_Textual_Questions"] == [_mc()]
    assert bad.skipped == {"forget_1": {"question dropped: Generation_Task[] Perturbed_Answers is not a non-empty "
                                        "list of non-empty texts (leave it null when there are none)": 1}}


def test_lower_case_correct_answer_drops_only_that_question():
    """MLLMU-Bench's scorer compares the upper-cased reply letter with Correct_Answer as published, so 'a'
    could never be right: the question is dropped (skip) or the run stops (error), never silently kept."""
    with pytest.raises(DataError, match=r"row 0: Image_Textual_Questions\[1\] Correct_Answer 'a' is not one"):
        check_eval_rows("retain_90 (/data)", [_row()])
    bad = BadRows("skip")
    (kept,) = check_eval_rows("retain_90 (/data)", [_row()], bad=bad)
    assert kept["Classification_Task"]["Image_Textual_Questions"] == [_mc()]
    assert bad.skipped == {"retain_90": {
        "question dropped: Image_Textual_Questions[] Correct_Answer is not one of A-D with a non-empty option": 1}}


def test_image_index_and_row_level_problems_drop_the_row():
    rows = [_row(), {**_row(), "Image_Index": -1}, {**_row(), "image": None}, _row()]
    for r in rows:
        r["Classification_Task"]["Image_Textual_Questions"].pop()
    bad = BadRows("skip")
    kept = check_eval_rows("test_5", rows, bad=bad)
    assert len(kept) == 2 and bad.total() == 2
    assert bad.skipped == {"test_5": {"row dropped: field 'Image_Index' is not an integer >= 0": 1,
                                      "row dropped: missing image": 1}}
    with pytest.raises(RowError, match=r"row 1: field 'Image_Index' is -1, expected an integer >= 0"):
        check_eval_rows("test_5", rows)


def test_on_bad_row_is_validated():
    with pytest.raises(DataError, match=r"data.on_bad_row='ignore': expected one of \['error', 'skip'\]"):
        BadRows("ignore")
