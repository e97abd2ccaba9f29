"""data.on_bad_row: `skip` scores what it can and reports what it left out; `error` stops naming split/row/field;
CLEAR's real_world under either split name and its older columns."""

import json
import shutil

import pytest

from tests.test_real_data import (_benchmark, _each, _rows, _set, clear_dir, mllmu_dir,  # noqa: F401 (fixtures)
                                  offline)
from unlearn.data.fixtures import edit_fixture, write_clear_fixture
from unlearn.data.schema import DataError


@pytest.fixture()
def mllmu_bad(mllmu_dir, tmp_path):  # noqa: F811
    """MLLMU-Bench with one lower-case Correct_Answer (forget_10 row 1), one missing image (retain_90 row 2),
    one profile without a name question (ft_Data row 7: that person is neither taught nor scored) and one
    metadata pair without an answer (ft_Data row 8: only that pair goes)."""
    root = shutil.copytree(mllmu_dir, tmp_path / "bad")
    edit_fixture(root, "forget_10", _set(1, ("Classification_Task", "Image_Textual_Questions", 0, "Correct_Answer"),
                                         "a"))
    edit_fixture(root, "retain_90", _set(2, ("image",), None))
    no_name = json.dumps([{"Question": "Where does this person live?", "Answer": "In Lyon."}])
    edit_fixture(root, "ft_Data", _set(7, ("metadata",), no_name))

    def drop_answer(rows):
        meta = json.loads(rows[8]["metadata"])
        meta[1]["Answer"] = ""
        rows[8]["metadata"] = json.dumps(meta)
    edit_fixture(root, "ft_Data", drop_answer)
    return root


def test_mllmu_skip_reports_exact_counts_and_loads_the_rest(mllmu_bad, mllmu_dir, tmp_path, caplog):  # noqa: F811
    ft = _rows(mllmu_bad, "ft_Data")
    nameless = ft[7]["ID"]
    with caplog.at_level("INFO", logger="unlearn.data.benchmark"):
        b = _benchmark(tmp_path, "mllmu_bench", mllmu_bad, "data.on_bad_row=skip")
    in_retain = nameless in {r["ID"] for r in _rows(mllmu_dir, "retain_90")}
    assert in_retain  # the fixture's forget_10 people are 112 and 106
    assert b.skipped == {
        "ft_Data": {"row dropped: field 'metadata' has no name question": 1,
                    "question dropped: metadata[] has a missing or empty 'Answer'": 1},
        "forget_10": {"question dropped: Image_Textual_Questions[] Correct_Answer is not one of A-D with a "
                      "non-empty option": 1},
        "retain_90": {"row dropped: missing image in field 'image'": 1, "row dropped: ID has no ft_Data row": 1},
    }
    assert len(b.train) == 19 and int(nameless) not in set(b.train["ID"])
    assert len(b.eval["retain"]) == 18 - 2 and len(b.eval["forget"]) == 2
    row = b.eval["forget"][1]
    assert len(row["Classification_Task"]["Image_Textual_Questions"]) == 1  # the other question of the row stays
    assert len(row["Classification_Task"]["Pure_Text_Questions"]) == 2
    taught = next(r for r in b.train if r["source_id"] == ft[8]["ID"])
    assert len(taught["qa"]) == 4  # five pairs, the one without an answer dropped
    # the retain person whose row lost its image is still retain_90's (kept, not evaluated); the untaught is not
    unreadable = int(_rows(mllmu_bad, "retain_90")[2]["ID"])
    assert unreadable in b.retain_ids and unreadable not in set(b.eval["retain"]["ID"])
    # and the log says so of the retain split (mutation audit: naming the forget split here survived)
    assert f"they are kept, not evaluated in the retain split (IDs [{unreadable}])" in caplog.text
    assert int(nameless) not in b.retain_ids


def test_mllmu_a_dropped_profile_is_named_by_its_id_in_both_splits(mllmu_bad, tmp_path, caplog):
    """A profile dropped from ft_Data (no name question) is named by its ID, and its retain row, dropped for it, is
    not said to have no ft_Data row: until the fifty-first session the first warning named row 7 alone and the
    second "ID 'N' has no ft_Data row", which a researcher checking their ft_Data file found there."""
    nameless = _rows(mllmu_bad, "ft_Data")[7]["ID"]
    with caplog.at_level("WARNING", logger="unlearn.data.schema"):
        _benchmark(tmp_path, "mllmu_bench", mllmu_bad, "data.on_bad_row=skip")
    assert f"to take the person's name from: ID {nameless!r} is neither taught nor evaluated" in caplog.text
    assert f"ID {nameless!r} has no usable ft_Data row (none, or one dropped as a bad row, named above)" in caplog.text


def test_mllmu_a_forget_row_dropped_under_skip_leaves_its_person_unlearned(mllmu_dir, tmp_path, caplog):  # noqa: F811
    """Until 2026-12-05 a forget_P row dropped under skip (here its image unreadable) took its person out of the
    forget set: still taught, never unlearned, and taught to forget quality's reference model. The log says the
    person is not evaluated in the forget split, not "not evaluated": its test rows still are (until the
    fifty-first session)."""
    root = shutil.copytree(mllmu_dir, tmp_path / "bad")
    edit_fixture(root, "forget_10", _set(0, ("image",), None))
    person = int(_rows(mllmu_dir, "forget_10")[0]["ID"])
    with caplog.at_level("INFO", logger="unlearn.data.benchmark"):
        b = _benchmark(tmp_path, "mllmu_bench", root, "data.on_bad_row=skip")
    assert f"they are unlearned, not evaluated in the forget split (IDs [{person}])" in caplog.text
    full = _benchmark(tmp_path / "full", "mllmu_bench", mllmu_dir)
    assert person not in set(b.eval["forget"]["ID"]) and person in set(full.eval["forget"]["ID"])
    assert b.forget_ids == full.forget_ids and b.retain_ids == full.retain_ids
    assert person in set(b.train_rows("forget")["ID"]) and person not in set(b.train_rows("without_forget")["ID"])
    assert b.eval["test"]["ID"] == full.eval["test"]["ID"]  # its held-out questions are still asked


def test_mllmu_error_mode_names_split_row_and_field(mllmu_bad, tmp_path):
    """The fixture broke `rows[7]`: the message's row 7 is that row, and it says rows count from 0."""
    with pytest.raises(DataError, match=r"split 'ft_Data \(.*\)', row 7: field 'metadata' has no name question"
                                        r".*rows count from 0\)$"):
        _benchmark(tmp_path, "mllmu_bench", mllmu_bad, "data.on_bad_row=error")


def test_mllmu_skip_that_empties_a_split_names_it_and_what_it_dropped(mllmu_dir, tmp_path):  # noqa: F811
    """Until 2026-12-03 `datasets` failed on the empty split's schema ("Keys mismatch"), naming neither."""
    root = shutil.copytree(mllmu_dir, tmp_path / "no_images")

    def no_images(rows):
        for r in rows:
            r["image"] = None
    edit_fixture(root, "retain_90", no_images)
    with pytest.raises(DataError, match=r"retain_90 \(.*\) has no usable rows \(data.on_bad_row=skip dropped: "
                                        r"\{\"row dropped: missing image in field 'image'\": 18\}\)"):
        _benchmark(tmp_path, "mllmu_bench", root, "data.on_bad_row=skip")


def test_mllmu_skip_writes_nothing_when_all_is_well(mllmu_dir, tmp_path):  # noqa: F811
    assert _benchmark(tmp_path, "mllmu_bench", mllmu_dir).skipped == {}


@pytest.mark.parametrize("data", ["mllmu_bench", "clear"])
def test_unknown_on_bad_row_names_the_key(data, mllmu_dir, clear_dir, tmp_path):  # noqa: F811
    path = mllmu_dir if data == "mllmu_bench" else clear_dir
    modes = r"'error', 'skip', 'score'" if data == "mllmu_bench" else r"'error', 'skip'"  # score: MLLMU-Bench's only
    with pytest.raises(DataError, match=rf"data.on_bad_row='ignore': expected one of \[{modes}\]"):
        _benchmark(tmp_path, data, path, "data.on_bad_row=ignore")


def test_default_policies(tmp_path):
    from unlearn.config import compose_config
    for data, mode in (("mllmu_mini", "error"), ("mllmu_bench", "skip"), ("clear", "skip")):
        cfg = compose_config([f"data={data}"], tmp_path / "out", tmp_path / "cache")
        assert cfg.data.on_bad_row == mode and cfg.data.benchmark.on_bad_row == mode


@pytest.fixture()
def clear_bad(clear_dir, tmp_path):  # noqa: F811
    root = shutil.copytree(clear_dir, tmp_path / "bad")
    edit_fixture(root, "forget10", _set(1, ("image",), None))  # Orrin Crane's second image
    edit_fixture(root, "retain90", _set(4, ("caption",), ""))
    edit_fixture(root, "real_faces", _set(2, ("options",), ["Somebody Else"]))
    edit_fixture(root, "forget10_perturbed", _set(0, ("perturbed_captions",), ["fine", ""]))
    edit_fixture(root, "forget10+tofu", _each(lambda r: r.update(answer=" "),
                                              where=lambda r: r["image"] is None and "geologist" in r["answer"]))
    return root


def test_clear_skip_reports_exact_counts_and_loads_the_rest(clear_bad, clear_dir, tmp_path):  # noqa: F811
    b = _benchmark(tmp_path, "clear", clear_bad, "data.retain_images=all")  # skip is CLEAR's default
    assert b.skipped == {
        "forget10": {"row dropped: missing image in field 'image'": 1},
        "retain90": {"row dropped: field 'caption' is empty": 1},
        "forget10_perturbed": {"row dropped: field 'perturbed_captions' has an empty or non-text entry": 1},
        "forget10+tofu": {"row dropped: field 'answer' is empty": 1},
        "real_faces": {"row dropped: field 'options' has fewer than 3 wrong options besides the answer": 1},
        # the dropped retain90 image's perturbations, a row of another config, now perturb nothing
        "retain_perturbed": {"row not used: a perturbation whose caption matches no image of its person in the "
                             "plain config": 1},
    }
    assert len(b.eval["forget"]) == 3 and len(b.eval["retain"]) == 35 and len(b.eval["untouched"]) == 4
    orrin = [r for r in b.eval["forget"] if r["name"] == "Orrin Crane"]
    assert [r["Image_Index"] for r in orrin] == [0]
    assert len([g for g in orrin[0]["Generation_Task"] if g["Type"] == "Pure_Text"]) == 2  # 3 TOFU QA, one bad


def test_clear_error_mode_names_split_row_and_field(clear_bad, tmp_path):
    with pytest.raises(DataError, match=r"split 'forget10 \(.*\)', row 1: missing image in field 'image'"):
        _benchmark(tmp_path, "clear", clear_bad, "data.on_bad_row=error")


@pytest.mark.parametrize("split", ["train", "test"])
def test_clear_real_world_under_either_split_name(split, tmp_path):
    root = write_clear_fixture(tmp_path / "CLEAR", real_world_split=split)
    assert (root / "real_world" / f"{split}-00000-of-00001.parquet").is_file()
    b = _benchmark(tmp_path, "clear", root, "data.on_bad_row=error")
    assert b.eval["untouched"]["source_id"][3:] == ["real_world/0", "real_world/1"]


def test_clear_older_columns(clear_dir, tmp_path):  # noqa: F811
    """The first revisions: _perturbed configs without name / perturbed_names, and (here) a plain config
    without name. Names come back through the captions; wrong names fall back to other people's, seeded."""
    root = shutil.copytree(clear_dir, tmp_path / "old")
    for config in ("forget10_perturbed", "retain_perturbed"):
        edit_fixture(root, config, drop=("name", "perturbed_names"))
    edit_fixture(root, "retain90", drop=("name",))
    new = _benchmark(tmp_path / "new", "clear", clear_dir, "data.on_bad_row=error")
    old = _benchmark(tmp_path / "old", "clear", root, "data.on_bad_row=error")
    assert old.skipped == {} and old.forget_ids == new.forget_ids and old.retain_ids == new.retain_ids
    assert old.eval["retain"]["name"] == new.eval["retain"]["name"]
    for a, b in zip(old.eval["forget"], new.eval["forget"], strict=True):
        # paraphrase and perturbed captions joined by caption; no perturbed names: no face recognition item
        assert a["Generation_Task"] == [g for g in b["Generation_Task"] if g["attribute"] != "name"]
        name_mc = a["Classification_Task"]["Image_Textual_Questions"][0]
        assert name_mc["Options"][name_mc["Correct_Answer"]] == a["name"]
        assert len(set(name_mc["Options"].values())) == 4


def test_clear_without_any_name_skips_with_a_reason(clear_dir, tmp_path):  # noqa: F811
    root = shutil.copytree(clear_dir, tmp_path / "old")
    for config in ("full", "forget10", "forget10_perturbed", "retain_perturbed"):
        edit_fixture(root, config, drop=("name", "perturbed_names") if "perturbed" in config else ("name",))
    with pytest.raises(DataError, match=r"split 'forget10 \(.*\)' has no usable rows \(data.on_bad_row=skip "
                                        r"dropped: \{\"row dropped: no field 'name' and no other config names the "
                                        r"person of this caption\": \d+\}\)"):
        _benchmark(tmp_path, "clear", root)
    with pytest.raises(DataError, match=r"split 'forget10 \(.*\)', row 0: no field 'name' and no other config "
                                        r"names the person of this caption"):
        _benchmark(tmp_path, "clear", root, "data.on_bad_row=error")


def test_embedded_benchmark_policies(cache_dir):
    """mllmu_mini: `error` validates as before; `skip` keeps every (sound) generated row and reports nothing."""
    from tests.conftest import SMALL
    from unlearn.data.benchmark import load_mllmu_mini
    strict = load_mllmu_mini(SMALL, "forget_10", cache_dir)
    lenient = load_mllmu_mini(SMALL, "forget_10", cache_dir, on_bad_row="skip")
    assert strict.skipped == lenient.skipped == {}
    assert len(lenient.train) == len(strict.train) and len(lenient.eval["retain"]) == len(strict.eval["retain"])
    with pytest.raises(DataError, match=r"data.on_bad_row='warn'"):
        load_mllmu_mini(SMALL, "forget_10", cache_dir, on_bad_row="warn")


def test_embedded_skip_drops_a_bad_generated_row(small_splits):
    from unlearn.data.benchmark import _keep_good
    from unlearn.data.schema import BadRows
    retain = small_splits["retain_90"]
    rows = retain.to_list()
    rows[0]["Generation_Task"][0]["Ground_Truth"] = ""
    bad = BadRows("skip")
    kept = _keep_good("retain_90", retain.from_list(rows, features=retain.features), bad)
    assert len(kept) == len(retain) and len(kept[0]["Generation_Task"]) == len(retain[0]["Generation_Task"]) - 1
    assert bad.skipped == {"retain_90": {"question dropped: Generation_Task[] has an empty Ground_Truth": 1}}


def test_a_bad_row_names_its_parquet_shard_and_row(tmp_path):
    """Test_Set ships as two shards; the loader numbers rows across them, the message also says which file."""
    import pyarrow.parquet as pq

    from unlearn.data import mllmu_bench
    from unlearn.data.fixtures import edit_fixture, write_mllmu_bench_fixture
    from unlearn.data.schema import BadRows

    root = tmp_path / "mllmu"
    write_mllmu_bench_fixture(root)
    second = sorted((root / "Test_Set").glob("*.parquet"))[1]
    victim = pq.read_table(second).column("ID").to_pylist()[1]  # row 1 of the second shard

    def bad(rows):
        for r in rows:
            if r["ID"] == victim:
                r["Classification_Task"]["Image_Textual_Questions"][0]["Correct_Answer"] = "b"

    edit_fixture(root, "Test_Set", bad)
    first_rows = pq.ParquetFile(sorted((root / "Test_Set").glob("*.parquet"))[0]).metadata.num_rows
    forget = next(s for s in ("forget_5", "forget_10", "forget_15")
                  if victim in pq.read_table(next((root / s).glob("*.parquet"))).column("ID").to_pylist())
    with pytest.raises(DataError, match=rf"row {first_rows + 1}: Image_Textual_Questions.* \(in {second.name}, row 1; rows count from 0\)$"):
        mllmu_bench.load(str(root), forget, bad=BadRows("error"))


@pytest.mark.parametrize("on_bad_row", ["error", "skip"])
def test_a_missing_shard_is_named_not_read_as_a_smaller_split(tmp_path, on_bad_row):
    """Test_Set ships as two shards; with one deleted `datasets` loaded the other, and the forget people's test
    rows silently shrank (reported, under skip, as 'no usable row for a forget ID ... row -1' of the other file)."""
    from unlearn.data import mllmu_bench
    from unlearn.data.fixtures import write_mllmu_bench_fixture
    from unlearn.data.schema import BadRows

    root = tmp_path / "mllmu"
    write_mllmu_bench_fixture(root)
    second = sorted((root / "Test_Set").glob("*.parquet"))[1]
    second.unlink()
    with pytest.raises(DataError, match=rf"config 'Test_Set' of data.path=.*: 1 of its 2 shards are there, "
                                        rf"{second.name} missing"):
        mllmu_bench.load(str(root), "forget_10", bad=BadRows(on_bad_row))


def test_a_bad_test_row_is_counted_once():
    """Under skip, a forget person's Test_Set row dropped as bad (here every one of its images unreadable) is
    one row dropped; until 2026-12-05 it was counted again as 'no usable row for a forget ID' (2 for 1)."""
    import tempfile
    from pathlib import Path

    import pyarrow.parquet as pq

    from unlearn.data import mllmu_bench
    from unlearn.data.fixtures import edit_fixture, write_mllmu_bench_fixture
    from unlearn.data.schema import BadRows

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "mllmu"
        write_mllmu_bench_fixture(root)
        victim = pq.read_table(next((root / "forget_10").glob("*.parquet"))).column("ID").to_pylist()[0]

        def unreadable(rows):
            for r in rows:
                if r["ID"] == victim:
                    r["images"] = [{"bytes": b"not an image", "path": None} for _ in r["images"]]

        edit_fixture(root, "Test_Set", unreadable)
        bad = BadRows("skip")
        mllmu_bench.load(str(root), "forget_10", bad=bad)
        assert sum(bad.skipped["Test_Set"].values()) == 1, bad.skipped
        assert all("not a readable image" in reason for reason in bad.skipped["Test_Set"]), bad.skipped
