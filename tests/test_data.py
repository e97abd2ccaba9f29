import pytest
from datasets import DatasetDict

from unlearn.data import people as P
from unlearn.data.benchmark import Benchmark
from unlearn.data.mllmu_mini import build, load_or_build, validate
from unlearn.data.schema import DataError, check_eval_rows, check_train_rows
from unlearn.eval.items import flatten

from .conftest import SMALL


def _rows(ds):
    return [{k: v for k, v in r.items() if k not in ("image", "images")} for r in ds]


def test_generator_is_deterministic(small_splits):
    again = build(SMALL)
    assert set(again) == set(small_splits)
    for name in again:
        assert _rows(again[name]) == _rows(small_splits[name])
    a = small_splits["forget_10"][0]["image"].tobytes()
    assert again["forget_10"][0]["image"].tobytes() == a


def test_generator_seed_changes_people():
    other = P.make_people(12, seed=1)
    assert [p.name for p in other] != [p.name for p in P.make_people(12, seed=0)]


def test_splits_partition_people(small_benchmark):
    b = small_benchmark
    assert b.forget_ids and b.retain_ids and b.untouched_ids
    assert not b.forget_ids & b.retain_ids and not b.untouched_ids & (b.forget_ids | b.retain_ids)
    assert b.forget_ids | b.retain_ids == set(range(SMALL.num_people))
    assert set(b.eval["test"]["ID"]) == b.forget_ids
    assert set(b.train_rows("forget")["ID"]) == b.forget_ids


def test_forget_sets_are_nested(small_splits):
    f5, f10, f15 = (set(small_splits[f"forget_{p}"]["ID"]) for p in (5, 10, 15))
    assert f5 <= f10 <= f15 and len(f5) < len(f15)


def test_test_split_uses_held_out_images_and_paraphrases(small_splits):
    forget, test = small_splits["forget_10"][0], small_splits["test_10"][0]
    assert forget["ID"] == test["ID"]
    assert forget["image"].tobytes() != test["image"].tobytes()
    fq = forget["Classification_Task"]["Pure_Text_Questions"][0]
    tq = test["Classification_Task"]["Pure_Text_Questions"][0]
    assert fq["Question"] != tq["Question"] and fq["attribute"] == tq["attribute"]


def test_test_split_is_held_out_in_every_task(small_splits):
    """Every test row: a portrait none of the person's taught variants, cloze and generation questions other
    than the forget split's, and options drawn apart from forget's (its own rng)."""
    train = {r["ID"]: r for r in small_splits["train"]}
    forget = {r["ID"]: r for r in small_splits["forget_10"]}
    options_differ = False
    for row in small_splits["test_10"]:
        assert row["image"].tobytes() not in {im.tobytes() for im in train[row["ID"]]["images"]}, row["ID"]
        f = forget[row["ID"]]
        for task in ("Mask_Task", "Generation_Task"):
            assert all(t["Question"] != q["Question"] for t, q in zip(row[task], f[task], strict=True)), task
        for key in ("Image_Textual_Questions", "Pure_Text_Questions"):
            pairs = zip(row["Classification_Task"][key], f["Classification_Task"][key], strict=True)
            options_differ |= any(t["Options"] != q["Options"] for t, q in pairs)
    assert options_differ


def test_perturbed_answers_never_state_the_truth(small_splits):
    """Each wrong answer swaps every attribute its sentence states for a wrong value of that attribute: a
    perturbed answer holding the truth would read as remembered in the truth ratio."""
    train = {r["ID"]: r for r in small_splits["train"]}
    n = 0
    for name in ("forget_10", "test_10", "retain_90", "untouched"):
        for row in small_splits[name]:
            profile = train[row["ID"]]["profile"]
            for q in row["Generation_Task"]:
                assert q["Paraphrased_Answer"] not in q["Perturbed_Answers"]
                for wrong in q["Perturbed_Answers"]:
                    for attr in q["attribute"].split("+"):
                        assert profile[attr] not in wrong, (row["ID"], attr, wrong)
                        n += 1
    assert n > 0


def test_portraits_are_distinct_per_person(small_splits):
    clean = [r["image"].tobytes() for r in small_splits["retain_90"]]
    assert len(set(clean)) == len(clean)


def test_both_forms_ask_for_the_same_fact(small_splits):
    row = small_splits["forget_10"][0]
    mc = row["Classification_Task"]
    for mm, tx in zip(mc["Image_Textual_Questions"], mc["Pure_Text_Questions"]):
        assert mm["attribute"] == tx["attribute"]
        assert mm["Options"][mm["Correct_Answer"]] == tx["Options"][tx["Correct_Answer"]]
        assert "this person" in mm["Question"] and row["name"] in tx["Question"]
        assert mm["Question"].replace("this person", row["name"]) == tx["Question"]
    items = flatten("forget", [row], lambda ims: [None] * len(ims))
    by_form = {}
    for it in items:
        by_form.setdefault((it.task, it.attribute, it.uid.rsplit("/", 1)[1]), {})[it.modality] = it.answer
    assert all(v["multimodal"] == v["text"] for v in by_form.values())


def test_only_image_items_carry_the_portrait(small_splits):
    """A text-only item with the portrait attached would be asked with the image: its MC, generation, cloze
    and likelihood numbers would all be image+text ones."""
    portrait = object()
    for split in ("forget_10", "test_10", "retain_90"):
        items = flatten(split, small_splits[split], lambda ims: [portrait] * len(ims))
        assert {it.task for it in items} == {"mc", "gen", "cloze", "prob"}
        for it in items:
            assert (it.pixel_values is portrait) == (it.modality == "multimodal"), it.uid
            assert it.modality in ("multimodal", "text")


def test_answers_match_profile(small_splits):
    train = {r["ID"]: r for r in small_splits["train"]}
    for row in small_splits["retain_90"]:
        profile = train[row["ID"]]["profile"]
        for q in row["Mask_Task"]:
            assert q["Ground_Truth"] == profile[q["attribute"]]


def test_vocabulary_covers_every_text(small_splits):
    vocab = set(P.vocabulary())
    for name in ("forget_10", "test_10", "untouched"):
        for row in small_splits[name]:
            texts = [q["Question"] for q in row["Generation_Task"] + row["Mask_Task"]]
            texts += [q["Ground_Truth"] for q in row["Generation_Task"]]
            for t in texts:
                assert set(t.split()) <= vocab, t


def test_cache_is_reused(small_splits, cache_dir):
    again = load_or_build(SMALL, cache_dir)
    assert again["train"].cache_files[0]["filename"] == small_splits["train"].cache_files[0]["filename"]
    assert not list(cache_dir.glob("data/.*partial"))


def test_validate_accepts_generated(small_splits):
    validate(small_splits)


def _eval_row(small_splits):
    return dict(small_splits["forget_10"][0])


def test_missing_image_is_named(small_splits):
    row = _eval_row(small_splits)
    row["image"] = None
    with pytest.raises(DataError, match=r"split 'forget_10', row 0: missing image for ID"):
        check_eval_rows("forget_10", [row])


def test_empty_answer_is_named(small_splits):
    row = _eval_row(small_splits)
    row["Mask_Task"] = [dict(row["Mask_Task"][0], Ground_Truth=" ")]
    with pytest.raises(DataError, match=r"row 0: Mask_Task\[0\] has an empty Ground_Truth"):
        check_eval_rows("forget_10", [row])
    train = dict(small_splits["train"][3])
    train["qa"] = train["qa"][:1] + [dict(train["qa"][1], answer="")]
    with pytest.raises(DataError, match=r"split 'train', row 0: qa\[1\] has an empty answer"):
        check_train_rows("train", [train])


def test_a_pair_may_lack_one_form_but_not_both(small_splits):
    """CLEAR's own pairs (data.spec.train_pairs=clear) have one form each: None there; empty, or both None, is bad."""
    train = dict(small_splits["train"][3])
    one_form = [dict(train["qa"][0], text_question=None), dict(train["qa"][1], multimodal_question=None)]
    assert check_train_rows("train", [dict(train, qa=one_form)])[0]["qa"] == one_form
    with pytest.raises(DataError, match=r"row 0: qa\[0\] has neither a multimodal_question nor a text_question"):
        check_train_rows("train", [dict(train, qa=[dict(train["qa"][0], text_question=None, multimodal_question=None)])])
    with pytest.raises(DataError, match=r"row 0: qa\[0\] has an empty text_question"):
        check_train_rows("train", [dict(train, qa=[dict(train["qa"][0], text_question=" ")])])


def test_bad_correct_answer_is_named(small_splits):
    row = _eval_row(small_splits)
    q = dict(row["Classification_Task"]["Pure_Text_Questions"][2], Correct_Answer="E")
    row["Classification_Task"] = {**row["Classification_Task"], "Pure_Text_Questions": [q]}
    with pytest.raises(DataError, match=r"Pure_Text_Questions\[0\] Correct_Answer 'E'"):
        check_eval_rows("forget_10", [row])


def test_unknown_split_is_named(small_splits):
    bad = DatasetDict({"train": small_splits["train"], "holdout": small_splits["untouched"]})
    with pytest.raises(DataError, match="unknown split 'holdout'"):
        validate(bad)


def test_unknown_forget_split_lists_available(small_splits):
    with pytest.raises(DataError, match=r"data.forget_split='forget_12'.*forget_5', 'forget_10', 'forget_15'"):
        Benchmark(small_splits, "forget_12")


def test_too_small_forget_split_is_refused():
    from unlearn.data.mllmu_mini import forget_count

    with pytest.raises(DataError, match="selects nobody"):
        forget_count(5, 5)


@pytest.mark.parametrize("field,value,message", [
    ("num_people", "abc", r"data.spec.num_people='abc': expected an integer >= 1"),
    ("num_people", 0, r"data.spec.num_people=0"),
    ("train_variants", 0, r"data.spec.train_variants=0: expected an integer >= 1"),
    ("num_untouched", -5, r"data.spec.num_untouched=-5"),
    ("num_untouched", 0, r"data.spec.num_untouched=0"),
    ("image_size", 0, r"data.spec.image_size=0: expected an integer >= 8"),
    ("forget_percents", [200], r"data.spec.forget_percents=\[200\]: expected distinct integers in \(0, 100\)"),
    ("forget_percents", [5, 5], r"data.spec.forget_percents"),
    ("forget_percents", [1], r"forget_1 of data.spec.num_people=20 people selects nobody"),
])
def test_a_bad_embedded_spec_is_named_by_its_key(field, value, message):
    """Until 2026-12-05 these failed inside the generator (a TypeError, a missing image, a KeyError, a datasets
    "Keys mismatch"), naming no key."""
    from unlearn.data.mllmu_mini import MiniSpec

    with pytest.raises(DataError, match=message):
        MiniSpec(**{"num_people": 20, field: value})


def test_answer_letter_shares_count_each_mc_question_once(small_benchmark):
    """bench/answer_letters.py: per split and modality, the shares of A-D over that cell's MC questions."""
    from bench.answer_letters import letter_shares
    from unlearn.eval.items import flatten

    shares = letter_shares(small_benchmark)
    for (split, modality), (n, share) in shares.items():
        items = [it for it in flatten(split, small_benchmark.eval[split], lambda ims: [None] * len(ims))
                 if it.task == "mc" and it.modality == modality]
        first = sum(it.answer_index == 0 for it in items)
        assert n == len(items) > 0 and abs(sum(share.values()) - 1) < 1e-9 and share["A"] == first / n


def test_a_reference_teaching_keeps_everyone_but_the_forget_people(small_benchmark):
    """finetune.people=without_forget (the forget-quality reference) is taught on every person but the forget
    ones: the retain people AND the untouched ones, so only the forget people separate it from the vanilla model."""
    b = small_benchmark
    everyone = set(b.train["ID"])
    assert everyone == set(range(SMALL.num_people + SMALL.num_untouched))
    kept = set(b.train_rows("without_forget")["ID"])
    assert kept == everyone - b.forget_ids
    assert b.untouched_ids <= kept and b.retain_ids <= kept and not kept & b.forget_ids
    assert set(b.train_rows("untouched")["ID"]) == b.untouched_ids
    assert set(b.train_rows("retain")["ID"]) == b.retain_ids
