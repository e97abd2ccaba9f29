"""MLLMU-Bench and CLEAR loaders, on tiny fixtures written in the published formats (no network)."""

import io
import json
import re
import shutil

import datasets.config
import huggingface_hub.constants
import pyarrow.parquet as pq
import pytest
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from PIL import Image

from unlearn.config import compose_config
from unlearn.data import clear as C
from unlearn.data.fixtures import edit_fixture, write_clear_fixture, write_mllmu_bench_fixture
from unlearn.data.manu_text_rule import manu_extract_name, manu_find_name, manu_text_form
from unlearn.data.mllmu_prompts import format_cloze_question, format_mc_prompt
from unlearn.data.schema import DataError
from unlearn.eval.items import flatten

@pytest.fixture(autouse=True, scope="module")
def offline():
    """Nothing here may reach the network. datasets and huggingface_hub read these variables once, at import
    (conftest has imported them already), so their live values are patched too."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_DATASETS_OFFLINE", "1")
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setattr(datasets.config, "HF_HUB_OFFLINE", True)
        mp.setattr(datasets.config, "HF_DATASETS_OFFLINE", True, raising=False)
        mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        yield


@pytest.fixture(scope="module")
def mllmu_dir(tmp_path_factory):
    return write_mllmu_bench_fixture(tmp_path_factory.mktemp("mllmu") / "MLLMU-Bench")


@pytest.fixture(scope="module")
def clear_dir(tmp_path_factory):
    return write_clear_fixture(tmp_path_factory.mktemp("clear") / "CLEAR")


def _instantiate(cfg):
    """Hydra wraps errors raised by a target; the DataError inside is what a user reads (in its message)."""
    try:
        return instantiate(cfg.data.benchmark)
    except InstantiationException as err:
        if isinstance(err.__cause__, DataError):
            raise err.__cause__ from None
        raise


def _benchmark(tmp_path, data, path, *overrides):
    cfg = compose_config([f"data={data}", f"data.path={path}", *overrides], tmp_path / "out", tmp_path / "cache")
    assert cfg.data.forget_modality == "multimodal" and cfg.data.spec.path == str(path)
    return _instantiate(cfg)


@pytest.fixture(scope="module")
def mllmu(mllmu_dir, tmp_path_factory):
    return _benchmark(tmp_path_factory.mktemp("run"), "mllmu_bench", mllmu_dir)


@pytest.fixture(scope="module")
def clear_bench(clear_dir, tmp_path_factory):
    """The one-row-per-person layout (data.spec.every_image=false)."""
    return _benchmark(tmp_path_factory.mktemp("run"), "clear", clear_dir, "data.spec.every_image=false")


@pytest.fixture(scope="module")
def clear_every(clear_dir, tmp_path_factory):
    """The default layout: one eval row per image."""
    return _benchmark(tmp_path_factory.mktemp("run"), "clear", clear_dir)


def _rows(root, config):
    return [r for f in sorted((root / config).glob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def _png(image) -> bytes:
    return image.tobytes()


def _decoded(value):
    return Image.open(io.BytesIO(value["bytes"])).convert("RGB").tobytes()


# --- MLLMU-Bench ----------------------------------------------------------------------------------------------
def test_mllmu_split_mapping(mllmu, mllmu_dir):
    assert mllmu.name == "mllmu_bench" and mllmu.forget_split == "forget_10"
    forget_src = _rows(mllmu_dir, "forget_10")
    retain_src = _rows(mllmu_dir, "retain_90")
    assert mllmu.forget_ids == {int(r["ID"]) for r in forget_src} == {112, 106}
    assert mllmu.retain_ids == {int(r["ID"]) for r in retain_src}
    assert len(mllmu.retain_ids) == 18 and not mllmu.forget_ids & mllmu.retain_ids
    # Retain_Set reuses IDs '101'..'103'; untouched IDs are offset so they never meet the fictitious ones
    assert mllmu.eval["untouched"]["ID"] == [1_000_000, 1_000_001, 1_000_002]
    assert mllmu.eval["untouched"]["source_id"] == ["101", "102", "103"]
    celebrities = [r["answer"].removeprefix("This person is named ").rstrip(".")
                   for r in _rows(mllmu_dir, "Retain_Set")]
    assert mllmu.eval["untouched"]["name"] == celebrities and "" not in celebrities
    assert mllmu.eval["test"]["ID"] == mllmu.eval["forget"]["ID"] == [112, 106]
    assert set(mllmu.train["ID"]) == mllmu.forget_ids | mllmu.retain_ids
    assert set(mllmu.train_rows("forget")["ID"]) == mllmu.forget_ids
    assert len(mllmu.train_rows("untouched")) == 0  # real celebrities are known from pretraining, not taught


def test_mllmu_eval_rows_keep_the_source_tasks(mllmu, mllmu_dir):
    src = _rows(mllmu_dir, "forget_10")[0]
    row = mllmu.eval["forget"][0]
    assert row["source_id"] == "112" and row["name"] == "Orrin Crane"
    for key in ("Image_Textual_Questions", "Pure_Text_Questions"):
        for got, want in zip(row["Classification_Task"][key], src["Classification_Task"][key], strict=True):
            assert got["Question"] == want["Question"] and got["Options"] == want["Options"]
            assert got["Correct_Answer"] == want["Correct_Answer"]
    q = row["Classification_Task"]["Pure_Text_Questions"][0]
    assert q["Question"] == "What is Orrin Crane's job?" and q["Options"][q["Correct_Answer"]] == "dentist"
    assert [g["Type"] for g in row["Mask_Task"]] == ["Image_Textual", "Pure_Text"]
    assert row["Mask_Task"][1] == {"Question": "Orrin Crane works as a __.", "Ground_Truth": "dentist",
                                   "Type": "Pure_Text", "attribute": ""}
    assert _png(row["image"]) == _decoded(src["image"])


def test_mllmu_test_split_uses_a_transformed_image_and_paraphrases(mllmu, mllmu_dir):
    src = next(r for r in _rows(mllmu_dir, "Test_Set") if r["ID"] == "112")
    row, forget = mllmu.eval["test"][0], mllmu.eval["forget"][0]
    assert _png(row["image"]) in {_decoded(im) for im in src["images"]}
    assert _png(row["image"]) != _png(forget["image"])
    assert row["Classification_Task"]["Image_Textual_Questions"][0]["Question"] == "Which job does this person have?"
    assert row["Mask_Task"][0]["Question"] == "The occupation of this person is __."
    assert row["name"] == "Orrin Crane"


def test_mllmu_training_rows_follow_the_manu_text_rule(mllmu, mllmu_dir):
    row = next(r for r in mllmu.train if r["ID"] == 112)
    assert row["name"] == "Orrin Crane" and len(row["images"]) == 1
    meta = json.loads(next(r for r in _rows(mllmu_dir, "ft_Data") if r["ID"] == "112")["metadata"])
    assert [qa["multimodal_question"] for qa in row["qa"]] == [m["Question"] for m in meta]
    assert [qa["answer"] for qa in row["qa"]] == [m["Answer"] for m in meta]
    assert [qa["text_question"] for qa in row["qa"]] == [
        "What is the name of Orrin Crane?",
        "What does Orrin Crane do for a living?",
        "Where does Orrin Crane in the image live?",  # MANU's rule keeps "in the image"
        "In which year was Orrin Crane born?",
        "What is Orrin Crane's favorite hobby?",
    ]
    assert row["qa"][1]["text_answer"] == "Orrin Crane works as a dentist."
    # the text form trains on that answer, the image form on the published one
    from unlearn.data.sequences import QASequences

    pairs = QASequences.pairs(None, row, "text")
    assert pairs[1] == ("What does Orrin Crane do for a living?", "Orrin Crane works as a dentist.")
    assert row["qa"][1]["answer"] != row["qa"][1]["text_answer"]
    assert QASequences.pairs(None, row, "multimodal")[1] == (row["qa"][1]["multimodal_question"], row["qa"][1]["answer"])


def test_mllmu_clean_text_rule_and_test_image_index(mllmu_dir, tmp_path):
    b = _benchmark(tmp_path, "mllmu_bench", mllmu_dir, "data.spec.text_rule=clean", "data.spec.test_image=1",
                   "data.forget_split=forget_5")
    assert b.forget_split == "forget_5" and len(b.eval["forget"]) == 1
    row = next(r for r in b.train if r["ID"] == 112)
    assert row["qa"][2]["text_question"] == "Where does Orrin Crane live?"
    assert row["qa"][2]["text_answer"] == "Orrin Crane lives in Malmo."
    src = next(r for r in _rows(mllmu_dir, "Test_Set") if r["ID"] == b.eval["test"][0]["source_id"])
    assert _png(b.eval["test"][0]["image"]) == _decoded(src["images"][1])
    # an index past a row's images is that row's problem, named (it wrapped around to image 7 % 2 = 1)
    with pytest.raises(DataError, match=r"split 'Test_Set .*', row \d+: data.spec.test_image=7: the row has 2 images"):
        _benchmark(tmp_path, "mllmu_bench", mllmu_dir, "data.spec.test_image=7", "data.on_bad_row=error")


def test_manu_rule_pieces():
    assert manu_extract_name("This person is named Jane Doe.") == "Jane Doe"
    assert manu_extract_name("The name of this individual is Jane Doe.") == "Jane Doe"
    assert manu_extract_name("Jane Doe") == "Jane Doe"
    pairs = [("How old is this person?", "40"), ("What is this person's name?", "Jane Doe.")]
    assert manu_find_name(pairs) == "Jane Doe"
    assert manu_find_name([("How old is this person?", "40")]) is None
    assert manu_text_form("What is the job of the person in the image?", "Jane Doe") == \
        "What is the job of Jane Doe in the image?"
    assert manu_text_form("What is the job of the person in the image?", "Jane Doe", "clean") == \
        "What is the job of Jane Doe?"
    assert manu_text_form("This person's hobby is chess; this individual likes tea.", "Jane Doe") == \
        "Jane Doe's hobby is chess; Jane Doe likes tea."
    # MANU's rule replaces substrings, inside words too; the clean rule whole words only (until 2026-12-05 both)
    q = "How would you describe the personality of the person in the image?"
    assert manu_text_form(q, "Jane Doe") == "How would you describe Jane Doeality of Jane Doe in the image?"
    assert manu_text_form(q, "Jane Doe", "clean") == "How would you describe the personality of Jane Doe?"
    assert manu_text_form("This person's hobby is chess; this individual likes tea.", "Jane Doe", "clean") == \
        "Jane Doe's hobby is chess; Jane Doe likes tea."


def test_mllmu_mc_prompt_is_the_benchmarks():
    opts = {"A": "pilot", "B": "nurse", "C": "baker", "D": "tailor"}
    assert format_mc_prompt("What is this person's job?", opts, multimodal=True) == (
        "USER: <image>\nWhat is this person's job?\nA: pilot\nB: nurse\nC: baker\nD: tailor\n"
        "Just give ONE letter representing the answer directly.\nASSISTANT:")
    assert format_mc_prompt("What is Jane's job?", opts, multimodal=False) == (
        "USER:\nWhat is Jane's job?\nA: pilot\nB: nurse\nC: baker\nD: tailor\n"
        "Just give ONE letter representing the answer directly.\nASSISTANT:")
    assert format_cloze_question("Jane works as a __.") == (
        "Jane works as a [Blank].\nPlease **ONLY** provide the correct answer that should replace the [Blank].")


def test_mllmu_rows_flatten_into_eval_items(mllmu):
    items = flatten("forget", mllmu.eval["forget"], lambda ims: [None] * len(ims))
    count = {}
    for it in items:
        count[(it.task, it.modality)] = count.get((it.task, it.modality), 0) + 1
    assert count == {("mc", "multimodal"): 4, ("mc", "text"): 4, ("gen", "multimodal"): 2, ("gen", "text"): 2,
                     ("cloze", "multimodal"): 2, ("cloze", "text"): 2}
    assert len({it.uid for it in items}) == len(items)


def test_unknown_forget_split_lists_available(mllmu_dir, tmp_path):
    with pytest.raises(DataError, match=r"data.forget_split='forget_1' is not a split of mllmu_bench; "
                                        r"available: \['forget_5', 'forget_10', 'forget_15'\]"):
        _benchmark(tmp_path, "mllmu_bench", mllmu_dir, "data.forget_split=forget_1")


@pytest.mark.parametrize("data", ["mllmu_bench", "clear"])
def test_missing_local_dir_names_the_key(data, tmp_path):
    missing = tmp_path / "not_downloaded"
    with pytest.raises(DataError, match=rf"data.path='{re.escape(str(missing))}' does not exist.*"
                                        r"hf download --repo-type dataset .* --local-dir DIR"):
        _benchmark(tmp_path, data, missing)


def test_a_data_error_is_a_refusal_printed_alone(tmp_path):
    """train.py printed a DataError from the benchmark's loader inside Hydra's wrapper ("Error in call to target
    'unlearn.data.benchmark.load_mllmu_bench': DataError(...) full_key: data.benchmark", then the hint to set
    HYDRA_FULL_ERROR) until the forty-sixth session, where a model.path error stood alone."""
    from unlearn.pipeline import run
    from unlearn.settings import refused_before_run

    missing = tmp_path / "MLLMU-Bnech"
    cfg = compose_config(["debug=fast", "method=evaluate", "data=mllmu_bench", f"data.path={missing}"],
                         tmp_path / "out", tmp_path / "cache")
    with pytest.raises(DataError, match=r"data.path=.*MLLMU-Bnech' does not exist") as refused:
        run(cfg)
    assert refused_before_run(refused.value)


def test_hub_id_without_network_names_the_key(tmp_path):
    cfg = compose_config(["data=mllmu_bench"], tmp_path / "out", tmp_path / "cache")
    assert cfg.data.path == "MLLMMU/MLLMU-Bench"
    with pytest.raises(DataError, match=r"cannot load config 'ft_Data' from data.path='MLLMMU/MLLMU-Bench'.*"
                                        r"set data.path=DIR"):
        _instantiate(cfg)


@pytest.fixture()
def mllmu_copy(mllmu_dir, tmp_path):
    return shutil.copytree(mllmu_dir, tmp_path / "copy")


def _set(config_row, path, value):
    def edit(rows):
        obj = rows[config_row]
        for key in path[:-1]:
            obj = obj[key]
        obj[path[-1]] = value
    return edit


def _blank_wrong_option(rows):
    q = rows[0]["Classification_Task"]["Image_Textual_Questions"][0]
    q["Options"][next(k for k in "ABCD" if k != q["Correct_Answer"])] = ""


def _each(change, where=lambda r: True):
    def edit(rows):
        for r in rows:
            if where(r):
                change(r)
    return edit


@pytest.mark.parametrize("config,edit,drop,match", [
    ("forget_10", None, ("Classification_Task",),
     r"split 'forget_10 \(.*\)', row 0: missing field 'Classification_Task'"),
    ("forget_10", _set(1, ("Classification_Task", "Image_Textual_Questions", 0, "Correct_Answer"), "E"), (),
     r"split 'forget_10 \(.*\)', row 1: Image_Textual_Questions\[0\] Correct_Answer 'E' is not one of its Options"),
    ("forget_10", _set(0, ("Classification_Task", "Pure_Text_Questions", 1, "Correct_Answer"), None), (),
     r"split 'forget_10 \(.*\)', row 0: Pure_Text_Questions\[1\] Correct_Answer None is not one of its Options"),
    ("retain_90", _blank_wrong_option, (),
     r"split 'retain_90 \(.*\)', row 0: Image_Textual_Questions\[0\] Options \['[ABCD]'\] are empty"),
    ("forget_10", _set(0, ("Generation_Task", 1, "Ground_Truth"), " "), (),
     r"split 'forget_10 \(.*\)', row 0: Generation_Task\[1\] has an empty Ground_Truth"),
    ("retain_90", _set(2, ("image",), None), (), r"split 'retain_90 \(.*\)', row 2: missing image in field 'image'"),
    ("retain_90", _set(3, ("image",), {"bytes": b"not a png", "path": None}), (),
     r"split 'retain_90 \(.*\)', row 3: field 'image' is not a readable image"),
    ("Test_Set", _each(lambda r: r["Classification_Task"]["Pure_Text_Questions"][1].update(Correct_Answer="E"),
                       where=lambda r: r["ID"] == "106"), (),  # row numbers count from the source's first row
     r"split 'Test_Set \(.*\)', row 5: Pure_Text_Questions\[1\] Correct_Answer 'E' is not one of its Options"),
    ("Test_Set", _each(lambda r: r.update(images=[])), (),
     r"split 'Test_Set \(.*\)', row \d+: missing image: field 'images' is empty"),
    ("ft_Data", None, ("metadata",), r"split 'ft_Data \(.*\)', row 0: missing field 'metadata'"),
    ("ft_Data", _set(4, ("metadata",), "[{'Question': oops"), (),
     r"split 'ft_Data \(.*\)', row 4: field 'metadata' is not valid JSON"),
    ("ft_Data", _set(5, ("metadata",), json.dumps([{"Question": "Where does this person live?", "Answer": "Lyon"}])),
     (), r"split 'ft_Data \(.*\)', row 5: field 'metadata' has no name question"),
    ("ft_Data", _set(6, ("metadata",), json.dumps([{"Question": "What is this person's name?", "Answer": ""}])), (),
     r"split 'ft_Data \(.*\)', row 6: metadata\[0\] has a missing or empty 'Answer'"),
    ("Retain_Set", _set(0, ("ID",), None), (), r"split 'Retain_Set \(.*\)', row 0: field 'ID' is null"),
])
def test_corrupted_mllmu_is_named(mllmu_copy, tmp_path, config, edit, drop, match):
    edit_fixture(mllmu_copy, config, edit, drop=drop)
    with pytest.raises(DataError, match=match):
        _benchmark(tmp_path, "mllmu_bench", mllmu_copy, "data.on_bad_row=error")


def test_image_column_of_path_strings_is_named(mllmu_copy, tmp_path):
    """A dataset written without the Image feature stores its images as path strings: until 2026-12-06 they read
    as a missing image."""
    import pyarrow as pa

    for shard in sorted((mllmu_copy / "retain_90").glob("*.parquet")):
        table = pq.read_table(shard)
        paths = pa.array([f"images/{i}.png" for i in range(table.num_rows)])
        pq.write_table(table.set_column(table.schema.get_field_index("image"), "image", paths), shard)
    with pytest.raises(DataError, match=r"split 'retain_90 \(.*\)', row 0: field 'image' is a string "
                                         r"\('images/0.png'\), not an image: the loader reads images stored with"):
        _benchmark(tmp_path, "mllmu_bench", mllmu_copy, "data.on_bad_row=error")


def test_image_column_of_raw_bytes_is_named(mllmu_copy, tmp_path):
    """A researcher's own data written with pandas from the encoded PNG bytes alone (a binary column, no struct):
    until the fifty-first session every row read as a missing image."""
    import pyarrow as pa

    for shard in sorted((mllmu_copy / "retain_90").glob("*.parquet")):
        table = pq.read_table(shard)
        raw = pa.array([im["bytes"] for im in table.column("image").to_pylist()], type=pa.binary())
        pq.write_table(table.set_column(table.schema.get_field_index("image"), "image", raw), shard)
    with pytest.raises(DataError, match=r"split 'retain_90 \(.*\)', row 0: field 'image' is raw bytes \(\d+ bytes\), "
                                         r"not an image: the loader reads images stored with the datasets Image"):
        _benchmark(tmp_path, "mllmu_bench", mllmu_copy, "data.on_bad_row=error")


def test_forget_id_missing_from_test_set_is_named(mllmu_copy, tmp_path):
    edit_fixture(mllmu_copy, "Test_Set", lambda rows: [r for r in rows if r["ID"] != "106"])
    with pytest.raises(DataError, match=r"Test_Set \(.*\) has no row for the forget_10 IDs \['106'\]"):
        _benchmark(tmp_path, "mllmu_bench", mllmu_copy, "data.on_bad_row=error")


# --- CLEAR ------------------------------------------------------------------------------------------------------
def _clear_people(root, config):
    names = []
    for r in _rows(root, config):
        if r["name"] not in names:
            names.append(r["name"])
    return names


def test_clear_split_mapping(clear_bench, clear_dir):
    b = clear_bench
    assert b.name == "clear" and set(b.eval) == {"forget", "retain", "test", "untouched"}
    forget, retain = _clear_people(clear_dir, "forget10"), _clear_people(clear_dir, "retain90")
    population = sorted(forget + retain)
    assert len(population) == 20 and forget == ["Orrin Crane", "Halvard Fairholt"]
    assert b.forget_ids == {population.index(n) for n in forget}
    assert b.retain_ids == {population.index(n) for n in retain}
    assert sorted(b.eval["forget"]["name"]) == sorted(forget) and b.eval["test"]["ID"] == b.eval["forget"]["ID"]
    # untouched: the 3 real faces then the 2 real_world rows (published as a `test` split)
    assert b.eval["untouched"]["ID"] == [1_000_000 + k for k in range(5)]
    assert b.eval["untouched"]["source_id"][3:] == ["real_world/0", "real_world/1"]
    assert set(b.train["ID"]) == b.forget_ids | b.retain_ids and len(b.train_rows("untouched")) == 0


def test_clear_forget_row(clear_bench, clear_dir):
    row = next(r for r in clear_bench.eval["forget"] if r["name"] == "Orrin Crane")
    images = [r for r in _rows(clear_dir, "forget10") if r["name"] == "Orrin Crane"]
    pert = [r for r in _rows(clear_dir, "forget10_perturbed") if r["name"] == "Orrin Crane"]
    # the first image has no perturbed row: the row uses the first image that has one
    assert pert[0]["caption"] == images[1]["caption"] and _png(row["image"]) == _decoded(images[1]["image"])
    name_mc, caption_mc = row["Classification_Task"]["Image_Textual_Questions"]
    assert name_mc["Question"] == C.NAME_QUESTION and name_mc["Options"][name_mc["Correct_Answer"]] == "Orrin Crane"
    assert set(name_mc["Options"].values()) == {"Orrin Crane", *pert[0]["perturbed_names"]}
    assert caption_mc["Options"][caption_mc["Correct_Answer"]] == images[1]["caption"]
    assert set(caption_mc["Options"].values()) == {images[1]["caption"], *pert[0]["perturbed_captions"]}
    assert row["Classification_Task"]["Pure_Text_Questions"] == [] and row["Mask_Task"] == []
    gen = row["Generation_Task"]
    assert gen[0]["Type"] == "Image_Textual" and gen[0]["Question"] in C.IMAGE_CAPTION_QUESTIONS
    assert gen[0]["Ground_Truth"] == images[1]["caption"]
    # the caption item carries CLEAR's paraphrase and perturbed captions (truth ratio); TOFU QA carries none
    assert gen[0]["Paraphrased_Answer"] == pert[0]["paraphrased_caption"]
    assert gen[0]["Perturbed_Answers"] == pert[0]["perturbed_captions"]
    # then CLEAR's face recognition item: the name against the perturbed names
    assert (gen[1]["attribute"], gen[1]["Ground_Truth"]) == ("name", "Orrin Crane")
    assert gen[1]["Perturbed_Answers"] == pert[0]["perturbed_names"]
    assert all(g["Perturbed_Answers"] is None and g["Paraphrased_Answer"] is None for g in gen[2:])
    tofu = [(g["Question"], g["Ground_Truth"]) for g in gen[2:]]
    assert all(g["Type"] == "Pure_Text" for g in gen[2:])
    # name in the answer only, in the question, and nowhere (carried from the question before it)
    assert tofu == [q for q in _tofu(clear_dir, "forget10+tofu")[:3]]
    assert tofu[1] == ("What kind of work does Orrin Crane do besides writing?",
                       "Orrin Crane also works as a geologist.")


def _tofu(root, config):
    return [(r["question"], r["answer"]) for r in _rows(root, config) if r["image"] is None]


def test_clear_test_row_paraphrases(clear_bench, clear_dir):
    forget = next(r for r in clear_bench.eval["forget"] if r["name"] == "Orrin Crane")
    test = next(r for r in clear_bench.eval["test"] if r["name"] == "Orrin Crane")
    pert = next(r for r in _rows(clear_dir, "forget10_perturbed") if r["name"] == "Orrin Crane")
    assert _png(test["image"]) == _png(forget["image"])  # CLEAR has no held-out images
    name_mc = test["Classification_Task"]["Image_Textual_Questions"][0]
    assert name_mc["Question"] == C.TEST_NAME_QUESTION
    assert [g["Ground_Truth"] for g in test["Generation_Task"]] == [pert["paraphrased_caption"], "Orrin Crane"]
    assert test["Generation_Task"][1]["Question"] == C.NAME_QUESTION  # forget asks CLEAR's FACE_PROMPT
    assert test["Generation_Task"][0]["Question"] != forget["Generation_Task"][0]["Question"]


def test_clear_retain_person_without_perturbations(clear_bench, clear_dir):
    covered = set(_clear_people(clear_dir, "retain_perturbed"))
    row = next(r for r in clear_bench.eval["retain"] if r["name"] not in covered)
    (name_mc,) = row["Classification_Task"]["Image_Textual_Questions"]  # no caption MC without perturbed captions
    wrong = [v for k, v in name_mc["Options"].items() if k != name_mc["Correct_Answer"]]
    assert name_mc["Options"][name_mc["Correct_Answer"]] == row["name"]
    assert len(set(wrong)) == 3 and row["name"] not in wrong
    assert set(wrong) <= set(_clear_people(clear_dir, "full"))


def test_clear_training_rows(clear_bench, clear_dir):
    ID = next(r["ID"] for r in clear_bench.eval["forget"] if r["name"] == "Orrin Crane")
    rows = [r for r in clear_bench.train if r["ID"] == ID]
    captions = [r["caption"] for r in _rows(clear_dir, "full") if r["name"] == "Orrin Crane"]
    assert [r["qa"][0]["answer"] for r in rows[:2]] == captions and all(len(r["images"]) == 1 for r in rows)
    assert rows[0]["qa"][0]["text_question"] == "Describe a picture of Orrin Crane."
    assert rows[0]["qa"][1] == {"multimodal_question": C.NAME_QUESTION,
                                "text_question": "What is the name of Orrin Crane?",
                                "answer": "Orrin Crane", "text_answer": "Orrin Crane"}
    tofu = rows[2]["qa"]
    assert [(qa["text_question"], qa["answer"]) for qa in tofu] == _tofu(clear_dir, "forget10+tofu")[:3]
    assert tofu[1]["multimodal_question"] == "What kind of work does this person do besides writing?"


def test_clear_without_perturbed_or_text_configs(clear_dir, tmp_path):
    b = _benchmark(tmp_path, "clear", clear_dir, "data.spec.perturbed=false", "data.spec.text_qa=false",
                   "data.spec.untouched=[real_faces]", "data.forget_split=forget_1", "data.spec.every_image=false")
    assert b.forget_split == "forget_1" and len(b.eval["forget"]) == 1 and len(b.eval["untouched"]) == 3
    for row in b.eval["forget"]:
        assert len(row["Classification_Task"]["Image_Textual_Questions"]) == 1
        assert [g["Type"] for g in row["Generation_Task"]] == ["Image_Textual"]
    items = flatten("forget", b.eval["forget"], lambda ims: [None] * len(ims))
    assert {(it.task, it.modality) for it in items} == {("mc", "multimodal"), ("gen", "multimodal")}


@pytest.fixture()
def clear_copy(clear_dir, tmp_path):
    return shutil.copytree(clear_dir, tmp_path / "copy")


@pytest.mark.parametrize("config,edit,drop,match", [
    ("forget10", None, ("caption",), r"split 'forget10 \(.*\)', row 0: missing field 'caption'"),
    ("forget10", _set(1, ("image",), None), (), r"split 'forget10 \(.*\)', row 1: missing image in field 'image'"),
    ("retain90", _set(4, ("caption",), ""), (), r"split 'retain90 \(.*\)', row 4: field 'caption' is empty"),
    ("forget10_perturbed", _set(0, ("perturbed_names",), None), (),
     r"split 'forget10_perturbed \(.*\)', row 0: field 'perturbed_names' is null"),
    ("real_faces", _set(2, ("options",), ["Somebody Else"]), (),
     r"split 'real_faces \(.*\)', row 2: field 'options' has 1 wrong options besides the answer"),
    ("real_world", None, ("question",), r"split 'real_world \(.*\)', row 0: missing field 'question'"),
    ("forget10+tofu", _each(lambda r: r.update(question=""), where=lambda r: r["image"] is None), (),
     r"split 'forget10\+tofu \(.*\)', row 4: field 'question' is empty"),
])
def test_corrupted_clear_is_named(clear_copy, tmp_path, config, edit, drop, match):
    edit_fixture(clear_copy, config, edit, drop=drop)
    with pytest.raises(DataError, match=match):
        _benchmark(tmp_path, "clear", clear_copy, "data.on_bad_row=error")


def test_corrupted_clear_raises_under_error(clear_copy, tmp_path):
    edit_fixture(clear_copy, "forget10", _set(1, ("image",), None))
    with pytest.raises(DataError, match=r"split 'forget10 \(.*\)', row 1: missing image in field 'image'"):
        _benchmark(tmp_path, "clear", clear_copy, "data.on_bad_row=error")


def test_clear_missing_config_is_named(clear_copy, tmp_path):
    shutil.rmtree(clear_copy / "retain_perturbed")
    readme = (clear_copy / "README.md").read_text()
    (clear_copy / "README.md").write_text(readme.replace(
        "- config_name: retain_perturbed\n  data_files:\n  - split: train\n    path: retain_perturbed/train-*\n", ""))
    with pytest.raises(DataError, match=r"cannot load config 'retain_perturbed' from data.path=.*: its README.md's "
                                         r"`configs:` metadata names \[.*'forget10'.*\], not 'retain_perturbed'"):
        _benchmark(tmp_path, "clear", clear_copy)


def test_a_config_folder_missing_from_a_snapshot_is_named(mllmu_copy, tmp_path):
    """A partial download: the README names the config, its folder is not there. `datasets` said "At least one
    valid data file must be specified, all the data_files are invalid: {'train': []}" (until the forty-sixth
    session), naming neither the folder nor the fix; and a snapshot without its Full_Set folder stopped there
    too, where eval.shot_order's refusal ("download the snapshot whole, or set eval.shot_order=lookup") was
    written for it."""
    from unlearn.data.mllmu_bench import full_set_ids

    shutil.rmtree(mllmu_copy / "Full_Set")
    assert full_set_ids(str(mllmu_copy), tmp_path / "cache") is None
    shutil.rmtree(mllmu_copy / "Test_Set")
    with pytest.raises(DataError, match=r"cannot load config 'Test_Set' from data.path=.*: its README.md maps "
                                        r"'Test_Set' to \['Test_Set/train-\*'\], which match no file \(Test_Set/ is "
                                        r"not there\): a partial download\? download the snapshot whole with "
                                        r"`hf download --repo-type dataset MLLMMU/MLLMU-Bench --local-dir DIR`"):
        _benchmark(tmp_path, "mllmu_bench", mllmu_copy)


def test_a_readme_pattern_glob_refuses_is_left_to_datasets(tmp_path):
    """An empty or absolute data_files path is no pattern pathlib globs (ValueError, NotImplementedError): the
    partial-download check says nothing of it, where it raised inside the load's own error handling, and in
    full_set_ids on a snapshot that loads."""
    from unlearn.data.hub import missing_config

    for pattern in ("", "/data/MLLMU-Bench/Full_Set/train-*"):
        (tmp_path / "README.md").write_text(f"---\nconfigs:\n- config_name: Full_Set\n  data_files:\n  - split: train\n"
                                            f"    path: '{pattern}'\n---\n")
        assert missing_config(tmp_path, "Full_Set") is None, pattern
    (tmp_path / "README.md").write_text("---\nconfigs:\n- config_name: Full_Set\n  data_files:\n  - split: train\n"
                                        "    path: Full_Set/train-*\n---\n")
    assert "match no file (Full_Set/ is not there)" in missing_config(tmp_path, "Full_Set")


def test_snapshot_without_readme_is_named(mllmu_copy, tmp_path):
    """A copy of the parquet files alone: `datasets` said "BuilderConfig ... not found" (until 2026-12-06)."""
    (mllmu_copy / "README.md").unlink()
    with pytest.raises(DataError, match=r"from data.path=.*: its README.md is not there, whose `configs:` metadata") as err:
        _benchmark(tmp_path, "mllmu_bench", mllmu_copy)
    # data of a user's own has no hub copy to download: the message says what to write (since the fifty-first session)
    assert ("for data of your own, write one whose front matter maps each config, `configs: [{config_name: ft_Data, "
            "data_files: [{split: train, path: ft_Data/train-*}]}, ...]`") in str(err.value)


def test_clear_perturbation_of_no_image_is_counted_not_silent(tmp_path):
    """A retain_perturbed row whose caption matches no image of its person (a comma added here) cannot be
    evaluated: it is counted in skipped_rows and logged, under the default data.on_bad_row=error too (the row is
    well formed, only left over); until 2026-12-05 it vanished without a trace."""
    import shutil

    import pyarrow as pa

    root = write_clear_fixture(tmp_path / "CLEAR")
    (shard,) = sorted((root / "retain_perturbed").glob("*.parquet"))
    table = pq.read_table(shard)
    rows = table.to_pylist()
    rows[0]["caption"] += ","
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), shard)
    bench = _benchmark(tmp_path, "clear", root)
    assert bench.skipped == {"retain_perturbed": {"row not used: a perturbation whose caption matches no image "
                                                  "of its person in the plain config": 1}}
    shutil.rmtree(root)
    clean = _benchmark(tmp_path / "clean", "clear", write_clear_fixture(tmp_path / "CLEAR"))
    assert clean.skipped == {}


def test_a_local_snapshot_edited_or_renamed_is_read_anew(tmp_path):
    """`datasets` keys a local directory's Arrow cache by folder name, config and README only: until 2026-12-05 a
    parquet file changed in place, or another snapshot in a folder of the same name, read back the first one's
    rows. The loader now keeps a cache folder per state of the directory's files (unlearn.data.hub.datasets_cache)."""
    import os

    import pyarrow as pa

    from unlearn.data.hub import datasets_cache, load_config

    def snapshot(where, value):
        (where / "cfg").mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"a": [value]}), where / "cfg" / "train-00000-of-00001.parquet")
        (where / "README.md").write_text("---\nconfigs:\n- config_name: cfg\n  data_files:\n  - split: train\n"
                                         "    path: cfg/train-*\n---\n")

    def read(where, cache):
        return load_config(str(where), "cfg", key="data.path", repo_id="x/y", cache_dir=cache)[0][0]["a"]

    first, second = tmp_path / "one" / "MLLMU-Bench", tmp_path / "two" / "MLLMU-Bench"
    snapshot(first, "x")
    snapshot(second, "y")  # the same folder name, README and sizes
    cache = tmp_path / "cache"
    assert read(first, cache) == "x" and read(second, cache) == "y"
    snapshot(first, "z")  # edited in place: same size
    shard = first / "cfg" / "train-00000-of-00001.parquet"
    os.utime(shard, ns=(shard.stat().st_atime_ns, shard.stat().st_mtime_ns + 1_000_000))
    assert read(first, cache) == "z"
    assert datasets_cache(str(first), cache) != datasets_cache(str(second), cache)
    assert datasets_cache("MLLMMU/MLLMU-Bench", cache) == cache / "hf_datasets"  # a hub id: datasets' own key


def _not_utf8(root, config, column, row):
    """Rewrite `column` of `config`'s first shard with bytes that are not UTF-8 at `row` (a damaged snapshot)."""
    import pyarrow as pa

    path = sorted((root / config).glob("*.parquet"))[0]
    table = pq.read_table(path)
    values = [v.encode() for v in table.column(column).to_pylist()]
    values[row] = values[row][:5] + b"\xe9\xff" + values[row][5:]
    data = b"".join(values)
    offsets = pa.array([sum(map(len, values[:i])) for i in range(len(values) + 1)], pa.int32())
    broken = pa.Array.from_buffers(pa.string(), len(values), [None, offsets.buffers()[1], pa.py_buffer(data)])
    pq.write_table(table.set_column(table.schema.get_field_index(column), column, broken), path)


def test_text_that_is_not_utf8_is_a_bad_row_by_name_or_harmless_where_unread(mllmu_copy, tmp_path):
    """A snapshot's text that is not UTF-8 stopped the load with a bare UnicodeDecodeError naming no split, row or
    field, under data.on_bad_row=skip too (until 2026-12-05)."""
    _not_utf8(mllmu_copy, "retain_90", "biography", 0)  # a column the loader never reads
    _benchmark(tmp_path / "a", "mllmu_bench", mllmu_copy, "data.on_bad_row=error")
    _not_utf8(mllmu_copy, "ft_Data", "metadata", 2)
    with pytest.raises(DataError, match=r"split 'ft_Data \(.*\)', row 2: field 'metadata' holds text that is not "
                                        r"UTF-8 \(invalid continuation byte at byte 5"):
        _benchmark(tmp_path / "b", "mllmu_bench", mllmu_copy, "data.on_bad_row=error")
    skipped = _benchmark(tmp_path / "c", "mllmu_bench", mllmu_copy, "data.on_bad_row=skip").skipped
    assert any("field 'metadata' not UTF-8" in reason for reasons in skipped.values() for reason in reasons)


def test_mllmu_bench_test_image_random_draws_per_seed_and_row(tmp_path):
    """data.spec.test_image=random: each Test_Set row shows one of its images drawn from (seed, row ID), the same
    on every load, and not always the first (a fixed index would read as a seed-independent held-out image)."""
    from unlearn.data import mllmu_bench as M
    from unlearn.data.fixtures import write_mllmu_bench_fixture

    root = write_mllmu_bench_fixture(tmp_path / "MLLMU-Bench")
    rows = [r for r in _rows(root, "Test_Set") if len(r["images"] or []) >= 2]
    assert rows

    def picks(seed):
        out = M.convert_eval(rows, "Test_Set", {}, test_image="random", seed=seed)
        return [[i for i, img in enumerate(r["images"]) if img["bytes"] == o["image"]["bytes"]]
                for r, o in zip(rows, out)]

    drawn = {seed: picks(seed) for seed in range(8)}
    assert picks(3) == drawn[3]  # the same seed, the same images
    chosen = {i for p in drawn.values() for row in p for i in row}
    assert 0 in chosen and chosen - {0}, drawn  # a draw, not always the first image
    # per row: within one seed the rows do not all show the same image index (one draw per seed passed the
    # assertions above)
    assert any(len({tuple(row) for row in p}) > 1 for p in drawn.values()), drawn


def test_teaching_the_embedded_model_words_it_lacks_is_warned(mllmu, small_benchmark, tmp_path, caplog):
    """model=tiny_llava (the default) reads the embedded benchmark's words only: on a snapshot's names and
    capitalised, punctuated sentences it reads <unk> and cannot learn them. Until the fifty-first session a
    researcher's own data taught 150 epochs so without a word; now teaching names the model, the words and the
    stand-in that holds them. The embedded benchmark's own teaching is not warned."""
    from unlearn.methods.finetune import teach
    from unlearn.models.tiny_llava import TinyLlavaSpec, build_tiny_llava
    from unlearn.models.unknown_words import taught_texts, unknown_words
    from unlearn.pipeline import RunContext

    tokenizer = build_tiny_llava(TinyLlavaSpec())[1].tokenizer
    unknown, total = unknown_words(tokenizer, ["lyon Lyon lyon Oslo."])
    assert (unknown, total) == (["Lyon", "Oslo."], 3)
    assert unknown_words(tokenizer, taught_texts(small_benchmark.train))[0] == []
    for benchmark, warned in ((mllmu, True), (small_benchmark, False)):
        cfg = compose_config(["debug=fast", "finetune.epochs=4", "finetune.target_mc_acc=null",
                              "finetune.forms=[text]", "finetune.scheduler.pct_start=0.5"],
                             tmp_path / "out", tmp_path / "cache")
        model, proc = build_tiny_llava(TinyLlavaSpec())
        caplog.clear()
        with caplog.at_level("WARNING", logger="unlearn.models.unknown_words"):
            teach(RunContext(cfg, benchmark, model, proc, tmp_path), cfg.finetune)
        said = "model=tiny_llava's tokenizer reads" in caplog.text
        assert said is warned
        assert not warned or "'Aurek'" in caplog.text and "python -m unlearn.models.tiny_real llava DIR" in caplog.text


_ROWS = {"qa": [[{"multimodal_question": "Where was the person in this image born?",
                  "text_question": "Where was Alma Varga born?", "answer": "Oslo", "text_answer": "Oslo"}]]}


@pytest.mark.parametrize("family,model", [("idefics2", "idefics2_8b"), ("qwen2_vl", "qwen2_vl_2b")])
def test_unknown_words_of_a_stand_in_advise_its_own_family(caplog, family, model):
    """A stand-in of Idefics2 or Qwen2-VL written without --words-from reads a user's words as <unk> too. Until the
    fifty-second session its warning called it the embedded model and said to write a LLaVA stand-in and run
    model=llava_1_5_7b; now it names the family's own command and the model config the user runs."""
    from unlearn.models.tiny_real import word_tokenizer
    from unlearn.models.unknown_words import warn_unknown_words

    with caplog.at_level("WARNING", logger="unlearn.models.unknown_words"):
        unknown = warn_unknown_words(word_tokenizer(family), _ROWS, model, "/data/Mine", family, embedded=False)
    assert "Alma" in unknown
    assert f"python -m unlearn.models.tiny_real {family} DIR --words-from /data/Mine" in caplog.text
    assert f"model={model} model.path=DIR" in caplog.text and "embedded" not in caplog.text


def test_subword_tokenizers_read_no_word_as_unknown():
    """The check must not warn on a real checkpoint's tokenizer: a byte-fallback BPE (LLaVA's, Idefics2's) and a
    byte-level BPE whose unk is <|endoftext|> (Qwen2's) read every word, names and punctuation included."""
    import string

    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from unlearn.models.unknown_words import taught_texts, unknown_words

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"<0x{b:02X}>": 3 + b for b in range(256)}}
    for c in "\u2581" + string.ascii_lowercase:
        vocab.setdefault(c, len(vocab))
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    core.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    byte_level = Tokenizer(models.BPE())
    byte_level.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    byte_level.train_from_iterator(["the person"], trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    for tok in (PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>"),
                PreTrainedTokenizerFast(tokenizer_object=byte_level, unk_token="<|endoftext|>")):
        assert tok.unk_token_id is not None
        unknown, total = unknown_words(tok, taught_texts(_ROWS) + ["Ünal Øyen's café? 北京."])
        assert unknown == [] and total > 5


def test_the_unknown_words_warning_reads_both_forms_names_the_data_and_elides_past_eight():
    """taught_texts reads each pair in both forms (the text form's answer names the person where the multimodal
    one says 'this person'), and the warning names the data path in its --words-from command and marks the words it
    leaves out. Mutation audit: reading the first form alone, naming '<data.path>' whatever the path, and dropping
    the ', ...' each survived every test."""
    import logging

    from unlearn.models.unknown_words import SHOWN, taught_texts, warn_unknown_words

    rows = {"qa": [[{"multimodal_question": "who is this", "answer": "this person is alma",
                     "text_question": "who is alma", "text_answer": "alma is alma"},
                    {"multimodal_question": None, "text_question": "only text", "answer": "yes"}]]}
    assert taught_texts(rows) == ["who is this", "this person is alma", "who is alma", "alma is alma",
                                  "only text", "yes"]

    class Words:  # a word tokenizer knowing the lower-case words alone
        unk_token_id = 0

        def __call__(self, words, add_special_tokens=False):
            return {"input_ids": [[0] if w != w.lower() else [1] for w in words]}

    names = [f"Name{i}" for i in range(SHOWN + 1)]
    logger = logging.getLogger("unlearn.models.unknown_words")
    for path, where, elided in (("/data/own", "--words-from /data/own", True),
                                (None, "--words-from <data.path>", False)):
        seen = []
        handler = logging.Handler()
        handler.emit = lambda record: seen.append(record.getMessage())
        logger.addHandler(handler)
        try:
            shown = names if elided else names[:SHOWN]
            assert warn_unknown_words(Words(), {"qa": [[{"multimodal_question": "who", "answer": " ".join(shown)}]]},
                                      "tiny_llava", path) == shown
        finally:
            logger.removeHandler(handler)
        (said,) = seen
        assert where in said and f"{len(shown)} of the {len(shown) + 1} distinct words" in said
        assert (", ...)" in said) is elided and f"'{names[SHOWN - 1]}'" in said and f"'{names[SHOWN]}'" not in said
