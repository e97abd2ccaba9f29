"""MLLMU-Bench loader on rows and files the published snapshot may hold: the metadata entry that is not a pair,
a Test_Set row without images, unreadable parquet files, a taught person no eval config names."""

import json
import logging
import re
import shutil

import pytest

from tests.test_real_data import _rows, offline  # noqa: F401 (fixture)
from unlearn.data import mllmu_bench as M
from unlearn.data.fixtures import edit_fixture, write_mllmu_bench_fixture
from unlearn.data.schema import BadRows, DataError
from unlearn.run_dir import RANK_VARIABLES


@pytest.fixture(scope="module")
def with_additional(tmp_path_factory):
    """The fixture with the authors' `{Additional_ID, Additional_question, Additional_answer}` entry appended to
    every profile's metadata."""
    return write_mllmu_bench_fixture(tmp_path_factory.mktemp("mllmu") / "MLLMU-Bench", additional_entry=True)


def _load(root, tmp_path, mode="error"):
    bad = BadRows(mode)
    return M.load(str(root), "forget_10", cache_dir=tmp_path / "cache", bad=bad), bad


@pytest.mark.parametrize("mode", ["error", "skip"])
def test_additional_metadata_entry_is_not_a_pair(with_additional, tmp_path, mode):
    meta = json.loads(_rows(with_additional, "ft_Data")[0]["metadata"])
    assert "Additional_question" in meta[-1] and "Question" not in meta[-1]
    splits, bad = _load(with_additional, tmp_path, mode)
    assert bad.skipped == {}  # neither counted under skip nor an error under error
    first = next(r for r in splits["train"] if r["source_id"] == _rows(with_additional, "ft_Data")[0]["ID"])
    assert [qa["multimodal_question"] for qa in first["qa"]] == [m["Question"] for m in meta[:-1]]


@pytest.mark.parametrize("entry,key", [({"Question": "What does this person drink?"}, "Answer"),
                                       ({"Answer": "Tea.", "Additional_ID": "101"}, "Question")])
def test_half_filled_metadata_pair_still_counts(with_additional, tmp_path, entry, key):
    root = shutil.copytree(with_additional, tmp_path / "half")

    def edit(rows):
        rows[3]["metadata"] = json.dumps(json.loads(rows[3]["metadata"]) + [entry])
    edit_fixture(root, "ft_Data", edit)
    with pytest.raises(DataError, match=rf"split 'ft_Data \(.*\)', row 3: metadata\[6\] has a missing or empty "
                                        rf"'{key}'"):
        _load(root, tmp_path)
    _, bad = _load(root, tmp_path, "skip")
    assert bad.skipped == {"ft_Data": {f"question dropped: metadata[] has a missing or empty '{key}'": 1}}


def test_test_set_row_with_null_images_names_images(tmp_path):
    root = write_mllmu_bench_fixture(tmp_path / "MLLMU-Bench")
    person = _rows(root, "forget_10")[0]["ID"]

    def edit(rows):
        for r in rows:
            if r["ID"] == person:
                r["images"] = None
    edit_fixture(root, "Test_Set", edit)
    with pytest.raises(DataError, match=r"split 'Test_Set \(.*\)', row \d+: missing image: field 'images' is null"):
        _load(root, tmp_path)
    splits, bad = _load(root, tmp_path, "skip")
    assert bad.skipped == {"Test_Set": {"row dropped: missing image: field 'images' is null": 1}}
    assert person not in splits["test_10"]["source_id"] and len(splits["test_10"]) == 1


def _pointer(path):
    path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:" + "0" * 64 + "\nsize 336000000\n")


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _empty(path):
    import pyarrow.parquet as pq

    pq.write_table(pq.read_table(path).slice(0, 0), path)


@pytest.mark.parametrize("damage,why", [(_pointer, r"is a git-LFS pointer, .*run `git lfs pull`"),
                                        (_truncate, r"is not a readable parquet file \(ArrowInvalid: .*\): a "
                                                    r"truncated or partial download"),
                                        # `datasets` said only "An error occurred" (until 2026-12-05)
                                        (_empty, r"holds no rows \(an empty shard\)")])
def test_unreadable_local_parquet_file_is_named(tmp_path, damage, why):
    """A snapshot cloned without git-lfs (pointer texts for files) or cut short: the error names the file and
    says no word about a network (the source is a local directory)."""
    root = write_mllmu_bench_fixture(tmp_path / "MLLMU-Bench")
    damage(root / "Test_Set" / "train-00001-of-00002.parquet")
    with pytest.raises(DataError, match=r"cannot load config 'Test_Set' from data.path='.*': its file "
                                        r"\S*/Test_Set/train-00001-of-00002\.parquet " + why) as err:
        _load(root, tmp_path)
    assert "network" not in str(err.value)


_UNASSIGNED = "taught people are in neither"


def test_taught_person_in_neither_forget_nor_retain_is_warned(tmp_path, caplog):
    root = write_mllmu_bench_fixture(tmp_path / "MLLMU-Bench")
    person = _rows(root, "retain_90")[-1]["ID"]
    edit_fixture(root, "retain_90", lambda rows: rows[:-1])
    with caplog.at_level(logging.WARNING, logger="unlearn.data.mllmu_bench"):
        splits, bad = _load(root, tmp_path)
    warned = [r.getMessage() for r in caplog.records if _UNASSIGNED in r.getMessage()]
    assert len(warned) == 1 and re.search(rf"ft_Data \(.*\): 1 taught people are in neither forget_10 \(.*\) nor "
                                          rf"retain_90 \(.*\): trained on, never evaluated \(IDs \['{person}'\]\)",
                                          warned[0])
    assert person in splits["train"]["source_id"] and bad.skipped == {}  # still taught; no row is bad


def test_an_unassigned_person_is_warned_by_rank_0_alone(tmp_path, caplog, monkeypatch):
    """Every DDP process loads the benchmark: a launched rank 1 loads the same people and says nothing (each
    process said it until 2026-12-07)."""
    root = write_mllmu_bench_fixture(tmp_path / "MLLMU-Bench")
    edit_fixture(root, "retain_90", lambda rows: rows[:-1])
    for v in RANK_VARIABLES:
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv("LOCAL_RANK", "1")
    with caplog.at_level(logging.WARNING, logger="unlearn.data.mllmu_bench"):
        _load(root, tmp_path / "rank1")
    assert not [r for r in caplog.records if _UNASSIGNED in r.getMessage()]


def test_intact_snapshot_warns_of_no_unassigned_person(tmp_path, caplog):
    root = write_mllmu_bench_fixture(tmp_path / "MLLMU-Bench")
    with caplog.at_level(logging.WARNING, logger="unlearn.data.mllmu_bench"):
        _load(root, tmp_path)
    assert not [r for r in caplog.records if _UNASSIGNED in r.getMessage()]


_EMPTY = "is not scored, absent from the run's table"


@pytest.mark.parametrize("config,keep,split,modality,key", [
    ("forget_10", "Image_Textual", "forget", "text", "Pure_Text_Questions"),
    ("retain_90", "Pure_Text", "retain", "multimodal", "Image_Textual_Questions")])
def test_eval_config_without_a_modality_is_warned(tmp_path, caplog, config, keep, split, modality, key):
    """A config whose rows hold no question of one modality loses that cell: until the fifty-second session its row
    vanished from the table and metrics.json without a word. Now the load names the config, the keys and the cell."""
    root = write_mllmu_bench_fixture(tmp_path / "MLLMU-Bench")

    def edit(rows):
        for r in rows:
            r["Classification_Task"] = {k: (v if k == keep + "_Questions" else [])
                                        for k, v in r["Classification_Task"].items()}
            for task in ("Generation_Task", "Mask_Task"):
                r[task] = [q for q in r[task] if q["Type"] == keep]
    edit_fixture(root, config, edit)
    with caplog.at_level(logging.WARNING, logger="unlearn.data.empty_modalities"):
        _load(root, tmp_path)
    warned = [r.getMessage() for r in caplog.records if _EMPTY in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith(f"{config} (")
    assert f"Classification_Task.{key} empty" in warned[0] and f"{split}/{modality} is not scored" in warned[0]


def test_intact_snapshot_warns_of_no_empty_modality(tmp_path, caplog):
    root = write_mllmu_bench_fixture(tmp_path / "MLLMU-Bench")
    with caplog.at_level(logging.WARNING, logger="unlearn.data.empty_modalities"):
        _load(root, tmp_path)
    assert not [r for r in caplog.records if _EMPTY in r.getMessage()]


@pytest.mark.parametrize("variable", RANK_VARIABLES)
def test_an_empty_modality_is_warned_by_rank_0_alone(monkeypatch, caplog, variable):
    """Every DDP process loads the benchmark: under trainer=ddp on 2 processes the warning was printed twice (until
    2026-12-07). A rank a launcher started (its rank variable set, no process group yet) or a process group's rank 1
    finds the same empty modality and says nothing; rank 0 says it once."""
    import torch.distributed as dist

    from unlearn.data.empty_modalities import warn_empty_modalities

    rows = [{"Classification_Task": {"Image_Textual_Questions": [{}], "Pure_Text_Questions": []},
             "Generation_Task": [{"Type": "Image_Textual"}], "Mask_Task": []}]

    def warned(rank: str) -> int:
        monkeypatch.setenv(variable, rank)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="unlearn.data.empty_modalities"):
            assert warn_empty_modalities(rows, "forget_10 (forget.parquet)", "forget") == ["text"]
        return len([r for r in caplog.records if _EMPTY in r.getMessage()])

    for v in RANK_VARIABLES:
        monkeypatch.delenv(v, raising=False)
    assert warned("1") == 0
    assert warned("0") == 1
    monkeypatch.setattr(dist, "is_initialized", lambda: True)  # the group's rank, whatever the variables say
    monkeypatch.setattr(dist, "get_rank", lambda *a, **k: 1)
    assert warned("0") == 0
    monkeypatch.setattr(dist, "get_rank", lambda *a, **k: 0)
    assert warned("1") == 1
