"""The sweep benches' runs.jsonl: a resumed sweep sees every finished run, and an append cut short reruns."""

import json

import pytest

from bench.run_log import RunLog


def test_appended_records_read_back_in_order(tmp_path):
    log = RunLog(tmp_path / "sweep")
    assert log.read() == []
    log.append({"key": "a", "x": 1.5})
    log.append({"key": "b", "x": [1, 2]})
    assert RunLog(tmp_path / "sweep").read() == [{"key": "a", "x": 1.5}, {"key": "b", "x": [1, 2]}]


def test_an_unfinished_last_line_is_a_run_not_done_and_the_next_append_replaces_it(tmp_path):
    log = RunLog(tmp_path)
    log.append({"key": "a"})
    with log.path.open("a") as f:
        f.write('{"key": "b", "x"')  # killed while writing
    assert log.read() == [{"key": "a"}]
    log.append({"key": "b", "x": 2})
    assert log.read() == [{"key": "a"}, {"key": "b", "x": 2}]
    assert [json.loads(line) for line in log.path.read_text().splitlines()] == log.read()


def test_a_bad_line_before_the_end_names_the_file_and_line(tmp_path):
    log = RunLog(tmp_path)
    log.path.write_text('{"key": "a"}\nnot json\n{"key": "c"}\n')
    with pytest.raises(ValueError, match=r"runs\.jsonl:2: not a JSON record"):
        log.read()
