"""CLEAR eval rows one per image (data.spec.every_image, the default), with the caption items' paraphrase and
perturbed captions for truth ratio."""

import pytest

from tests.test_real_data import _benchmark, _decoded, _png, _rows, clear_dir, offline  # noqa: F401 (fixtures)
from unlearn.data import clear as C


@pytest.fixture(scope="module")
def every(clear_dir, tmp_path_factory):  # noqa: F811
    return _benchmark(tmp_path_factory.mktemp("run"), "clear", clear_dir)


def _person(split_rows, name):
    return [r for r in split_rows if r["name"] == name]


def test_one_row_per_image_with_that_images_items(every, clear_dir):  # noqa: F811
    images = [r for r in _rows(clear_dir, "forget10") if r["name"] == "Orrin Crane"]
    pert = {r["caption"]: r for r in _rows(clear_dir, "forget10_perturbed") if r["name"] == "Orrin Crane"}
    rows = _person(every.eval["forget"], "Orrin Crane")
    assert len(every.eval["forget"]) == len(_rows(clear_dir, "forget10")) == 4  # 2 people x 2 images
    assert [r["Image_Index"] for r in rows] == [0, 1] and len({r["ID"] for r in rows}) == 1
    for k, (row, src) in enumerate(zip(rows, images, strict=True)):
        assert _png(row["image"]) == _decoded(src["image"])
        name_mc = row["Classification_Task"]["Image_Textual_Questions"][0]
        assert name_mc["Question"] == C.NAME_QUESTION and name_mc["Options"][name_mc["Correct_Answer"]] == "Orrin Crane"
        caption_item = row["Generation_Task"][0]
        assert caption_item["Type"] == "Image_Textual" and caption_item["Ground_Truth"] == src["caption"]
    # image 0 has no _perturbed row in the fixture: seeded wrong names, no caption MC, no truth-ratio inputs
    assert len(rows[0]["Classification_Task"]["Image_Textual_Questions"]) == 1
    assert rows[0]["Generation_Task"][0]["Perturbed_Answers"] is None
    assert rows[0]["Generation_Task"][0]["Paraphrased_Answer"] is None
    # image 1 has one: its perturbed names are the MC's wrong options, its captions the truth-ratio inputs
    p = pert[images[1]["caption"]]
    name_mc, caption_mc = rows[1]["Classification_Task"]["Image_Textual_Questions"]
    assert set(name_mc["Options"].values()) == {"Orrin Crane", *p["perturbed_names"]}
    assert caption_mc["Options"][caption_mc["Correct_Answer"]] == images[1]["caption"]
    assert rows[1]["Generation_Task"][0]["Paraphrased_Answer"] == p["paraphrased_caption"]
    assert rows[1]["Generation_Task"][0]["Perturbed_Answers"] == p["perturbed_captions"]
    # CLEAR's face recognition task (eval.yaml eval_forget_facerec): the name generated with its "random_faces"
    # prompt, truth ratio of the name against perturbed_names
    face = rows[1]["Generation_Task"][1]
    assert (face["Question"], face["Ground_Truth"], face["Paraphrased_Answer"]) == (C.FACE_PROMPT, "Orrin Crane",
                                                                                    "Orrin Crane")
    assert C.FACE_PROMPT == "The name of the person on the image is "  # mm/dataset.py, its trailing space kept
    assert face["Perturbed_Answers"] == p["perturbed_names"]
    assert [g["attribute"] for g in rows[0]["Generation_Task"]][:1] == ["caption"]  # no perturbed names: no face item


def test_tofu_questions_only_on_the_first_image(every, clear_dir):  # noqa: F811
    rows = _person(every.eval["forget"], "Orrin Crane")
    tofu = [(g["Question"], g["Ground_Truth"]) for g in rows[0]["Generation_Task"] if g["Type"] == "Pure_Text"]
    assert tofu == [(r["question"], r["answer"]) for r in _rows(clear_dir, "forget10+tofu") if r["image"] is None][:3]
    assert [g["attribute"] for g in rows[1]["Generation_Task"]] == ["caption", "name"]  # no TOFU there
    # CLEAR's +tofu configs publish no paraphrased or perturbed answers: TOFU items carry none
    assert all(g["Paraphrased_Answer"] is None and g["Perturbed_Answers"] is None
               for g in rows[0]["Generation_Task"][1:])


def test_test_rows_ask_for_the_paraphrase_on_every_image(every, clear_dir):  # noqa: F811
    images = [r for r in _rows(clear_dir, "forget10") if r["name"] == "Orrin Crane"]
    p = next(r for r in _rows(clear_dir, "forget10_perturbed") if r["caption"] == images[1]["caption"])
    rows = _person(every.eval["test"], "Orrin Crane")
    assert [r["Image_Index"] for r in rows] == [0, 1]
    assert all(r["Classification_Task"]["Image_Textual_Questions"][0]["Question"] == C.TEST_NAME_QUESTION
               for r in rows)
    assert [g["attribute"] for r in rows for g in r["Generation_Task"]] == ["caption", "caption", "name"]  # no TOFU
    item = rows[1]["Generation_Task"][0]
    assert item["Ground_Truth"] == p["paraphrased_caption"]
    assert item["Paraphrased_Answer"] == images[1]["caption"]  # the paraphrase's paraphrase: the caption
    assert item["Perturbed_Answers"] == p["perturbed_captions"]
    assert rows[0]["Generation_Task"][0]["Ground_Truth"] == images[0]["caption"]  # no paraphrase published


def test_every_split_and_the_person_ids(every, clear_dir):  # noqa: F811
    # retain: only the images CLEAR evaluates (those with a retain_perturbed row), at least one per person
    perturbed = {r["caption"] for r in _rows(clear_dir, "retain_perturbed")}
    images: dict = {}
    for k, r in enumerate(_rows(clear_dir, "retain90")):
        images.setdefault(r["name"], []).append(r["caption"])
    expected = sum(max(1, sum(c in perturbed for c in caps)) for caps in images.values())
    assert len(every.eval["retain"]) == expected < len(_rows(clear_dir, "retain90")) == 36
    assert {r["name"] for r in every.eval["retain"]} == set(images)
    assert len(every.eval["test"]) == len(every.eval["forget"])
    assert every.forget_ids == {r["ID"] for r in every.eval["forget"]} and len(every.forget_ids) == 2
    pairs = [(r["ID"], r["Image_Index"]) for r in every.eval["retain"]]
    assert len(set(pairs)) == len(pairs)  # (ID, Image_Index) names a row
    assert set(every.eval["untouched"]["Image_Index"]) == {0}
    assert every.skipped == {}


def test_one_row_per_person_stays_available(clear_dir, tmp_path):  # noqa: F811
    b = _benchmark(tmp_path, "clear", clear_dir, "data.spec.every_image=false")
    assert len(b.eval["forget"]) == 2 and b.eval["forget"]["Image_Index"] == [1, 1]  # first image with perturbations


def test_clear_items_carry_truth_ratio_inputs_and_unique_uids(every, tiny_model):
    """What the evaluation reads from per-image rows: distinct uids across a person's images, and a prob item
    (truth ratio) for each caption that has a _perturbed row."""
    from unlearn.eval.items import flatten

    _, proc = tiny_model
    for split in ("forget", "retain", "test"):
        items = flatten(split, every.eval[split], proc.pixel_values)
        assert len({it.uid for it in items}) == len(items), split
        prob = [it for it in items if it.task == "prob"]
        with_pert = [g for r in every.eval[split] for g in r["Generation_Task"] if g["Perturbed_Answers"]]
        assert len(prob) == len(with_pert) > 0, split
        assert all(it.modality == "multimodal" and len(it.perturbed) >= 1 for it in prob)


def _their_items(clear_dir, config):  # noqa: F811
    """CLEAR's MMMixedDataset (mm/dataset.py) over a `+tofu` config, per row: a null `image` is a text QA
    (question -> answer, no image); an image row is one of IMAGE_CAPTION_QUESTIONS -> the caption, with it."""
    return [("text", r["question"], r["answer"]) if r["image"] is None else ("multimodal", None, r["caption"])
            for r in _rows(clear_dir, config)]


def _our_items(bench, group, forms, tiny_model):
    from unlearn.data.sequences import QASequences

    _, proc = tiny_model
    seqs = QASequences(bench.train_rows(group), proc, forms)
    return [(form, q, a) for _, form, q, a in seqs.index]


@pytest.mark.parametrize("group,config", [("forget", "forget10+tofu"), ("retain", "retain90+tofu")])
def test_clear_pairs_are_clears_own(clear_dir, tmp_path, tiny_model, group, config):  # noqa: F811
    """data.spec.train_pairs=clear: the forget (retain) people's pairs, read in both forms, are the items of
    CLEAR's MMMixedDataset over forget10+tofu (retain90+tofu): each image with a caption prompt -> its caption,
    each TOFU question text-only; no name pair, no second form of either."""
    b = _benchmark(tmp_path, "clear", clear_dir, "data.spec.train_pairs=clear")
    ours = _our_items(b, group, ("multimodal", "text"), tiny_model)
    theirs = _their_items(clear_dir, config)
    assert sorted((f, q or "", a) for f, q, a in theirs if f == "text") == \
        sorted((f, q, a) for f, q, a in ours if f == "text")
    assert sorted(a for f, _, a in theirs if f == "multimodal") == sorted(a for f, _, a in ours if f == "multimodal")
    assert all(q in C.IMAGE_CAPTION_QUESTIONS for f, q, _ in ours if f == "multimodal")
    assert len(ours) == len(theirs) > 0


def test_caption_pairs_alone_and_a_form_they_lack_is_refused(clear_dir, tmp_path, tiny_model):  # noqa: F811
    """train_pairs=captions (MMUnlearner's CLEAR_manifold.py, plain configs in CAPTION_MODE): an image -> its
    caption and nothing else; asking for its text-only pairs names the setting."""
    b = _benchmark(tmp_path, "clear", clear_dir, "data.spec.train_pairs=captions")
    ours = _our_items(b, "forget", ("multimodal", "text"), tiny_model)
    assert sorted(a for _, _, a in ours) == sorted(r["caption"] for r in _rows(clear_dir, "forget10"))
    assert {f for f, _, _ in ours} == {"multimodal"}
    with pytest.raises(ValueError, match="text form.*train_pairs=captions"):
        _our_items(b, "forget", "text", tiny_model)


def test_default_pairs_teach_both_forms_of_each_fact(every, tiny_model):  # noqa: F811
    ours = _our_items(every, "forget", ("multimodal", "text"), tiny_model)
    by_form = {f: sorted(a for g, _, a in ours if g == f) for f in ("multimodal", "text")}
    assert by_form["multimodal"] == by_form["text"] and "Orrin Crane" in by_form["text"]  # the name pair


def test_caption_prompt_drawn_once_per_image_and_seeded(clear_dir, tmp_path, tiny_model):  # noqa: F811
    def prompts(*overrides):
        b = _benchmark(tmp_path / "_".join(overrides), "clear", clear_dir, "data.spec.train_pairs=captions",
                       *overrides)
        return [q for _, q, _ in _our_items(b, "retain", "multimodal", tiny_model)]

    cycle, once = prompts(), prompts("data.spec.caption_prompt=random_once")
    assert once == prompts("data.spec.caption_prompt=random_once")  # the same draw on every load
    assert once != prompts("data.spec.caption_prompt=random_once", "data.spec.seed=1")
    assert once != cycle and set(once) <= set(C.IMAGE_CAPTION_QUESTIONS)
    # cycle: the k-th prompt for a person's k-th image
    assert cycle[:2] == list(C.IMAGE_CAPTION_QUESTIONS[:2])


def test_unknown_train_pairs_is_refused_naming_the_key(clear_dir, tmp_path):  # noqa: F811
    from unlearn.data.schema import DataError

    with pytest.raises(DataError, match=r"data.spec.train_pairs='tofu'"):
        _benchmark(tmp_path, "clear", clear_dir, "data.spec.train_pairs=tofu")
    with pytest.raises(DataError, match=r"data.spec.caption_prompt='random'"):
        _benchmark(tmp_path, "clear", clear_dir, "data.spec.caption_prompt=random")


def test_new_clear_settings_at_their_defaults_keep_the_cache_keys(tmp_path):
    """A CLEAR model cached before data.spec.train_pairs / caption_prompt existed keeps its key, its cached
    before-evaluation too, and its runs their seed groups; another value is another model."""
    from unlearn.config import compose_config
    from unlearn.pipeline import vanilla_key

    from omegaconf import OmegaConf, open_dict

    from unlearn.pipeline import before_cache_path
    from unlearn.report import setting_of

    def cfg_of(*overrides, drop=False):
        cfg = compose_config(["data=clear", "data.path=/nowhere", *overrides], tmp_path, tmp_path)
        if drop:  # the config as it was before the three settings (the benchmark's arguments read them too)
            with open_dict(cfg):
                for part in (cfg.data.spec, cfg.data.benchmark):
                    del part["train_pairs"], part["caption_prompt"]
                del cfg.data["eval_rows"], cfg.data.benchmark["eval_rows"]
        return cfg

    def keys(*overrides, drop=False):
        cfg = cfg_of(*overrides, drop=drop)
        return (vanilla_key(cfg), before_cache_path(cfg, tmp_path / "vanilla" / "m").name,
                setting_of(OmegaConf.to_container(cfg, resolve=True)))

    assert keys() == keys(drop=True)  # the vanilla model, its cached before-evaluation, the report's seed group
    for changed in ("data.spec.train_pairs=clear", "data.spec.caption_prompt=random_once"):
        assert all(a != b for a, b in zip(keys(changed), keys())), changed
    # data.eval_rows and data.retain_images shape the evaluation rows, which a teaching reads only where its
    # probe stops it (finetune.target_mc_acc, the default recipe's): there another vanilla model, under
    # finetune=clear (no probe) the same one; another before-evaluation either way
    vanilla, before, setting = keys("data.eval_rows=300")
    assert vanilla != keys()[0] and before != keys()[1] and setting["data.eval_rows"] == 300
    assert keys("data.retain_images=all")[0] != keys()[0]
    clear = keys("finetune=clear")
    assert keys("finetune=clear", "data.eval_rows=300")[0] == clear[0]
    assert keys("finetune=clear", "data.eval_rows=300")[1] != clear[1]


def test_gradient_methods_forget_clears_mixture(clear_dir, tmp_path, tiny_model):  # noqa: F811
    """data.forget_modality=both over CLEAR's pairs: the forget and retain sets are CLEAR's forget10+tofu and
    retain90+tofu items (forget.yaml), captions with their images and TOFU questions text-only."""
    from types import SimpleNamespace

    from unlearn.methods.gradient import _unlearning_data

    _, proc = tiny_model
    b = _benchmark(tmp_path, "clear", clear_dir, "data.spec.train_pairs=clear")
    forget, retain = _unlearning_data(SimpleNamespace(benchmark=b, processor=proc), "both", answer_only=True)
    for data, config in ((forget, "forget10+tofu"), (retain, "retain90+tofu")):
        theirs = _their_items(clear_dir, config)
        assert len(data) == len(theirs)
        with_image = sum(data[i].pixel_values is not None for i in range(len(data)))
        assert with_image == sum(f == "multimodal" for f, _, _ in theirs) > 0
    captions = _benchmark(tmp_path / "c", "clear", clear_dir, "data.spec.train_pairs=captions")
    with pytest.raises(ValueError, match="text form"):
        _unlearning_data(SimpleNamespace(benchmark=captions, processor=proc), "text", answer_only=True)


def test_mmunlearner_clear_mask_sets_from_clears_pairs(clear_dir, tmp_path, tiny_model):  # noqa: F811
    """CLEAR_gen_mask.py's sets: forget = forget captions, vision preserve = retain captions, language preserve =
    the TOFU text QA of every person (forget people included) mixed with the retain captions. With
    data.spec.train_pairs=clear, mmunlearner.preserve_text=train_qa and preserve_batches=mixed read the same."""
    from types import SimpleNamespace

    from unlearn.methods.mmunlearner import fisher_datasets

    _, proc = tiny_model
    b = _benchmark(tmp_path, "clear", clear_dir, "data.spec.train_pairs=clear")
    data = fisher_datasets(SimpleNamespace(benchmark=b, processor=proc), labels="all")
    tok = proc.tokenizer

    def answers(ds):
        out = []
        for i in range(len(ds)):
            ex = ds[i]
            out.append((ex.pixel_values is not None,
                        tok.decode([t for t, lab in zip(ex.input_ids, ex.labels) if lab != -100])))
        return out

    forget, retain = _their_items(clear_dir, "forget10+tofu"), _their_items(clear_dir, "retain90+tofu")
    assert len(data["forget"]) == sum(f == "multimodal" for f, _, _ in forget)
    assert len(data["retain_multimodal"]) == sum(f == "multimodal" for f, _, _ in retain)
    assert all(has_image for has_image, _ in answers(data["forget"]) + answers(data["retain_multimodal"]))
    text = answers(data["text_all"])
    assert not any(has_image for has_image, _ in text)
    tofu = [a for f, _, a in forget + retain if f == "text"]
    as_read = lambda a: tok.decode(tok(a, add_special_tokens=False)["input_ids"])  # noqa: E731 (the tiny vocabulary)
    answered = sorted(t.split(" answer : ", 1)[1].removesuffix(" <eos>") for _, t in text)
    # every person's TOFU answers, the forget people's too, and nothing else
    assert answered == sorted(as_read(a) for a in tofu) and len(tofu) > 0


def test_eval_rows_reads_the_first_rows_of_each_eval_config_as_clears_ds_size(clear_dir, tmp_path):  # noqa: F811
    """data.eval_rows=N (CLEAR's eval.yaml ds_size: 300): forget and test evaluate the images of the first N rows
    of forget10_perturbed, retain those of retain_perturbed, untouched the first N rows of real_faces and of
    real_world; the training rows are untouched."""
    from unlearn.data.schema import DataError

    n = 1
    assert len(_rows(clear_dir, "forget10_perturbed")) > n and len(_rows(clear_dir, "retain_perturbed")) > n
    b = _benchmark(tmp_path, "clear", clear_dir, f"data.eval_rows={n}")
    full = _benchmark(tmp_path / "full", "clear", clear_dir)

    def images(split_rows):
        return sorted((r["name"], r["Generation_Task"][0]["Ground_Truth"]) for r in split_rows)

    first_forget = sorted((r["name"], r["caption"]) for r in _rows(clear_dir, "forget10_perturbed")[:n])
    retain_people = {r["name"] for r in full.eval["retain"]}
    first_retain = sorted((r["name"], r["caption"]) for r in _rows(clear_dir, "retain_perturbed")[:n]
                          if r["name"] in retain_people)
    assert images(b.eval["forget"]) == first_forget and len(b.eval["forget"]) < len(full.eval["forget"])
    assert images(b.eval["retain"]) == first_retain and 0 < len(b.eval["retain"]) < len(full.eval["retain"])
    assert [(r["name"], r["Image_Index"]) for r in b.eval["test"]] == [(r["name"], r["Image_Index"])
                                                                        for r in b.eval["forget"]]
    assert len(b.eval["untouched"]) == 2 * n < len(full.eval["untouched"])
    assert b.train.to_list() == full.train.to_list()
    # the people unlearned and kept are the configs' whole forget and retain sets, as CLEAR trains on
    # forget10+tofu and retain90+tofu whatever ds_size evaluates (until 2026-12-05: those of the evaluated rows)
    assert set(b.eval["forget"]["ID"]) < b.forget_ids == full.forget_ids
    assert b.retain_ids == full.retain_ids
    for group in ("forget", "retain", "without_forget"):
        assert b.train_rows(group).to_list() == full.train_rows(group).to_list(), group
    with pytest.raises(DataError, match="data.eval_rows=2 counts rows of the _perturbed configs"):
        _benchmark(tmp_path / "one", "clear", clear_dir, "data.eval_rows=2", "data.spec.every_image=false")
    with pytest.raises(DataError, match=r"data.eval_rows=0: expected null"):
        _benchmark(tmp_path / "zero", "clear", clear_dir, "data.eval_rows=0")


def test_shot_people_at_its_default_keeps_the_before_evaluation_key_and_seed_groups(tmp_path):
    """eval.shot_people (added 2026-12-03) at null reads as absent: a cached before-evaluation and a sweep's seed
    groups made before it keep their key; a value is another evaluation."""
    from omegaconf import OmegaConf, open_dict

    from unlearn.config import compose_config
    from unlearn.pipeline import before_cache_path
    from unlearn.report import setting_of

    def keys(*overrides, drop=False):  # a protocol that draws shots (the embedded one reads none of its keys)
        cfg = compose_config(["data=mllmu_bench", "data.path=/data/MLLMU-Bench", *overrides], tmp_path, tmp_path)
        if drop:
            with open_dict(cfg):
                del cfg.eval["shot_people"]
        return before_cache_path(cfg, tmp_path / "vanilla" / "m").name, setting_of(OmegaConf.to_container(cfg, resolve=True))

    assert keys() == keys(drop=True)
    before, setting = keys("eval.shot_people={mc: 1, cloze: 1}")
    assert before != keys()[0] and setting != keys()[1]


def test_a_person_no_text_question_names_is_refused(clear_dir, tmp_path):  # noqa: F811
    """A TOFU question goes to the person it names, else to the previous one's: a person spelt otherwise in every
    question (here "H. Fairholt") got none and their neighbour all of them, silently, until 2026-12-05."""
    import shutil

    from unlearn.data.fixtures import edit_fixture
    from unlearn.data.schema import DataError

    root = shutil.copytree(clear_dir, tmp_path / "respelt")

    def respell(rows):
        for r in rows:
            for key in ("question", "answer"):
                if isinstance(r.get(key), str):
                    r[key] = r[key].replace("Halvard Fairholt", "H. Fairholt")
    edit_fixture(root, "forget10+tofu", respell)
    for mode in ("error", "skip"):  # nothing skipped would mend it: refused either way
        with pytest.raises(DataError, match=r"forget10\+tofu.*1 people named by no text QA question \(Halvard "
                                            r"Fairholt\)"):
            _benchmark(tmp_path / mode, "clear", root, f"data.on_bad_row={mode}")
