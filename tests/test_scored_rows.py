"""data.on_bad_row=score: the questions the checks refuse but MLLMU-Bench's eval.py scores are kept and scored as
eval.py scores them, held against a small port of eval.py's scoring (written here from its reading:
franciscoliu/MLLMU-Bench eval.py, evaluate_classification 337-361, 375-377, 403-416, evaluate_generation 730-797,
evaluate_fill_in_the_blank 585, 599-646); what eval.py cannot score is dropped and named as under skip."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from types import SimpleNamespace

import pytest
from rouge_score import rouge_scorer

from tests import test_real_data as real
from tests.test_real_data import _benchmark, _rows, _set
from unlearn.data.fixtures import edit_fixture
from unlearn.data.schema import DataError
from unlearn.eval import scoring
from unlearn.eval.items import flatten
from unlearn.eval.protocol import render, render_mc
from unlearn.eval.scorers import SCORERS
from unlearn.rescore import rescore_records

# the fixtures (module-scoped snapshots; offline: nothing may reach the network), by name for pytest
mllmu_dir, clear_dir, offline = real.mllmu_dir, real.clear_dir, real.offline
MC = "Classification_Task"
IMG, TXT = "Image_Textual_Questions", "Pure_Text_Questions"


# --- the port: eval.py's reading of one question, from the row as its parquet file holds it ------------------
def port_mc_prompt(q: dict, image: bool) -> str:
    options = "\n".join(f"{key}: {value}" for key, value in q["Options"].items())
    user = "USER: <image>\n" if image else "USER:\n"
    return f"{user}{q['Question']}\n{options}\nJust give ONE letter representing the answer directly.\nASSISTANT:"


def port_mc_shot(q: dict, image: bool) -> str:
    """A question's few-shot block (eval.py:349-357, 403-411): the options A-D by name, the answer as published."""
    o = q["Options"]
    user = "USER: <image>\n" if image else "USER:\n"
    return (f"{user}Question: {q['Question']}\nA: {o['A']}\nB: {o['B']}\nC: {o['C']}\nD: {o['D']}\n"
            f"Correct Answer: {q['Correct_Answer']}\n")


def port_mc_right(q: dict, prompt: str, reply: str) -> bool:
    text = prompt + reply  # their decode holds the prompt
    answer = text.split("ASSISTANT:")[1].strip() if "ASSISTANT:" in text else text.strip()
    predicted = answer[0].upper() if answer and answer[0].upper() in q["Options"] else None
    return predicted == q["Correct_Answer"]


def port_stops(fn, *args) -> bool:
    """Whether eval.py stops on it: the port raises where eval.py's code would (`None.replace`, ...)."""
    try:
        fn(*args)
    except (AttributeError, KeyError, TypeError):
        return True
    return False


def port_gen(q: dict, reply: str) -> tuple[str, str, float]:
    """(bucket, prompt, ROUGE-L F) of a generation question: any Type but Image_Textual is Pure_Text's."""
    if q["Type"] == "Image_Textual":
        prompt = (f"USER: <image>\n{q['Question']}\nAnswer the question based on your trained knowledge in one "
                  f"sentence accurately in ENGLISH.\nASSISTANT: ")
    else:
        prompt = (f"USER: {q['Question']}\nAnswer the question based on your trained knowledge in one sentence in "
                  f"ENGLISH.\nASSISTANT:")
    text = prompt + reply
    answer = text.split("ASSISTANT:")[1].strip()
    rouge = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True).score(q["Ground_Truth"], answer)
    return ("image" if q["Type"] == "Image_Textual" else "text"), prompt, rouge["rougeL"].fmeasure


def port_cloze_question(q: dict) -> str:
    """eval.py:585 (534, 545 for a shot); it raises on a null Question, as eval.py stops there."""
    return q["Question"].replace("__", "[Blank]") + \
        "\nPlease **ONLY** provide the correct answer that should replace the [Blank]."


def port_cloze_shot(q: dict) -> str:
    """A cloze question's few-shot block (eval.py:597-604): note "USER:<image>" with no space."""
    user = "USER:<image>\n" if q["Type"] == "Image_Textual" else "USER:\n"
    return f"{user}{port_cloze_question(q)}\nCorrect Answer: {q['Ground_Truth']}\n"


def port_cloze(q: dict, reply: str) -> bool | None:
    """Right or wrong, or None where eval.py counts the question nowhere (a Type other than the two); it raises
    where eval.py stops (a null Question)."""
    question = port_cloze_question(q)
    prompt = f"USER: <image>\n{question}\nASSISTANT:" if q["Type"] == "Image_Textual" else \
        f"USER:\n{question}\nASSISTANT:"
    text = prompt + reply
    answer = text.split("ASSISTANT:")[1].strip()
    if q["Type"] not in ("Image_Textual", "Pure_Text"):
        return None
    return q["Ground_Truth"].lower() in answer.lower()


# --- the fixture ---------------------------------------------------------------------------------------------
@pytest.fixture()
def mllmu_scored(mllmu_dir, tmp_path):
    """forget_10 with each kind of question eval.py scores though the checks refuse it, and three it cannot score;
    retain_90 with a row without its image (dropped under either mode)."""
    root = shutil.copytree(mllmu_dir, tmp_path / "scored")
    edits = [(0, (MC, IMG, 0, "Correct_Answer"), "E"),  # never right
             (1, (MC, IMG, 0, "Correct_Answer"), ""),  # never right (read as A until the forty-sixth session)
             (0, (MC, TXT, 0, "Correct_Answer"), None),  # right where the reply names no letter
             (1, (MC, IMG, 1, "Options", "B"), ""),  # shown as "B: "
             (1, (MC, TXT, 1, "Options", "C"), None),  # shown as "C: None"
             (1, ("Mask_Task", 0, "Ground_Truth"), ""),  # always right
             (1, ("Generation_Task", 1, "Type"), "Text"),  # asked and scored as Pure_Text
             (0, (MC, IMG, 1, "Question"), ""),  # asked with no text before the options
             (0, (MC, TXT, 1, "Question"), None),  # asked as "None"
             (0, ("Generation_Task", 1, "Question"), None),  # asked as "None"
             (1, ("Generation_Task", 0, "Question"), ""),  # asked with no text
             (0, ("Mask_Task", 0, "Question"), ""),  # asked with the instruction alone
             (0, ("Mask_Task", 1, "Type"), "Other"),  # generated, counted nowhere: dropped
             (1, ("Mask_Task", 1, "Question"), None),  # eval.py stops on it (None.replace): dropped
             (0, ("Generation_Task", 0, "Ground_Truth"), None)]  # eval.py stops on it: dropped
    for row, path, value in edits:
        edit_fixture(root, "forget_10", _set(row, path, value))
    edit_fixture(root, "retain_90", _set(2, ("image",), None))
    return root


SCORED = {"forget_10": {
    f"question scored: {IMG}[] Correct_Answer is no key of its Options: never right (eval.py compares the reply's "
    f"letter with it)": 2,
    f"question scored: {TXT}[] Correct_Answer is null: right where the reply names no option letter (eval.py: "
    f"None == None)": 1,
    f"question scored: {IMG}[] has empty Options, shown as written (eval.py reads the letter, not the option)": 1,
    f"question scored: {TXT}[] has empty Options, shown as written (eval.py reads the letter, not the option)": 1,
    "question scored: Mask_Task[] has an empty Ground_Truth: always right (eval.py: '' in reply)": 1,
    "question scored: Generation_Task[] has an unknown Type: asked and scored as text (eval.py's Pure_Text "
    "branch)": 1,
    f'question scored: {IMG}[] has an empty Question: asked with no text (eval.py writes f"{{question}}")': 1,
    f'question scored: {TXT}[] has a null Question: asked as "None" (eval.py writes f"{{question}}")': 1,
    'question scored: Generation_Task[] has a null Question: asked as "None" (eval.py writes f"{question}")': 1,
    'question scored: Generation_Task[] has an empty Question: asked with no text (eval.py writes f"{question}")': 1,
    'question scored: Mask_Task[] has an empty Question: asked with no text (eval.py writes f"{question}")': 1}}
DROPPED = {"forget_10": {"question dropped: Mask_Task[] has an unknown Type": 1,
                         "question dropped: Mask_Task[] has an empty Question": 1,
                         "question dropped: Generation_Task[] has an empty Ground_Truth": 1},
           "retain_90": {"row dropped: missing image in field 'image'": 1}}


def _with_option_keys(root, config: str, keys: str, edit=None) -> None:
    """Rewrite `config` as a file whose MC Options are keyed `keys` (its parquet schema: one set for every question,
    null where a question has no such option), then `edit(rows)`."""
    import pyarrow.parquet as pq
    from datasets import Dataset, Features, Value

    text = Value("string")
    question = {"Correct_Answer": text, "Options": {k: text for k in keys}, "Question": text}
    for path in sorted((root / config).glob("*.parquet")):
        table = pq.read_table(path)
        features = Features.from_arrow_schema(table.schema)
        features[MC] = {IMG: [question], TXT: [question]}
        rows = table.to_pylist()
        for r in rows:
            for q in r[MC][IMG] + r[MC][TXT]:
                q["Options"] = {k: q["Options"].get(k) for k in keys}
        if edit is not None:
            edit(rows)
        Dataset.from_list(rows, features=features).to_parquet(str(path))


@pytest.fixture()
def mllmu_keys(mllmu_dir, tmp_path):
    """Files whose Options keys are not A-D: forget_10 adds E (one question's answer, one more question's fifth
    option, null in the rest), retain_90 writes B, A, D, C and a lower-case e (one question's answer, which no reply
    names: eval.py upper-cases the reply's letter), Retain_Set lacks D."""
    root = shutil.copytree(mllmu_dir, tmp_path / "keys")

    def forget(rows):
        rows[0][MC][IMG][0]["Options"]["E"], rows[0][MC][IMG][0]["Correct_Answer"] = "a fifth option", "E"
        rows[0][MC][TXT][0]["Options"]["E"] = "a fifth option"

    def retain(rows):
        rows[0][MC][IMG][0]["Options"]["e"], rows[0][MC][IMG][0]["Correct_Answer"] = "a fifth option", "e"

    _with_option_keys(root, "forget_10", "ABCDE", forget)
    _with_option_keys(root, "retain_90", "BADCe", retain)
    _with_option_keys(root, "Retain_Set", "ABC")
    return root


OWN_KEYS = "has Options keys other than A-D, shown and read as written (eval.py: options.items(), `in options`)"
EMPTY = "has empty Options, shown as written (eval.py reads the letter, not the option)"
MISSING = ("Options lack one of A-D, shown and read as written where asked (eval.py: options.items()); refused as a "
           "shot (eval.py stops on few_shot_options['A'] to ['D'])")
OFF = "Correct_Answer is no key of its Options: never right (eval.py compares the reply's letter with it)"
SCORED_KEYS = {
    "forget_10": {f"question scored: {k}[] {OWN_KEYS}": 4 for k in (IMG, TXT)}
    | {f"question scored: {IMG}[] {EMPTY}": 3, f"question scored: {TXT}[] {EMPTY}": 3},
    "retain_90": {f"question scored: {k}[] {OWN_KEYS}": 36 for k in (IMG, TXT)}
    | {f"question scored: {IMG}[] {EMPTY}": 35, f"question scored: {TXT}[] {EMPTY}": 36},
    # the celebrities' MC is zero-shot: eval.py asks every question with its own keys (dropped until the forty-seventh
    # session), a D answer no key of them
    "Retain_Set": {f"question scored: {k}[] {MISSING}": 6 for k in (IMG, TXT)}
    | {f"question scored: {k}[] {OFF}": 1 for k in (IMG, TXT)}}
DROPPED_KEYS = {}


def test_score_keeps_what_eval_py_scores_and_drops_the_rest_as_skip(mllmu_scored, tmp_path):
    b = _benchmark(tmp_path / "score", "mllmu_bench", mllmu_scored, "data.on_bad_row=score")
    assert b.scored == SCORED
    assert b.skipped == DROPPED
    skip = _benchmark(tmp_path / "skip", "mllmu_bench", mllmu_scored, "data.on_bad_row=skip")
    assert skip.scored == {}  # skip as it was: every refused question dropped, nothing kept
    assert skip.skipped["retain_90"] == DROPPED["retain_90"]
    assert sum(skip.skipped["forget_10"].values()) == 15
    assert skip.skipped["forget_10"][f"question dropped: {TXT}[] has an empty Question"] == 1  # skip's reasons as were
    assert skip.skipped["forget_10"]["question dropped: Generation_Task[] has an empty Question"] == 2
    assert b.eval["retain"]["ID"] == skip.eval["retain"]["ID"] and b.train["ID"] == skip.train["ID"]
    rows = _rows(mllmu_scored, "forget_10")
    kept = b.eval["forget"]
    for k in range(2):
        assert len(kept[k][MC][IMG]) == len(rows[k][MC][IMG]) and len(kept[k][MC][TXT]) == len(rows[k][MC][TXT])
    assert len(kept[0]["Mask_Task"]) == len(kept[0]["Generation_Task"]) == len(kept[1]["Mask_Task"]) == 1
    assert len(kept[1]["Generation_Task"]) == 2


def _replies(monkeypatch, reply: str) -> None:
    monkeypatch.setattr(scoring, "protocol_replies", lambda model, proc, items, prompts: [reply] * len(items))


def test_score_scores_as_the_port_of_eval_py(mllmu_scored, tmp_path, monkeypatch):
    b = _benchmark(tmp_path, "mllmu_bench", mllmu_scored, "data.on_bad_row=score")
    items = flatten("forget", b.eval["forget"], lambda images: [None] * len(images))
    raw = {r["ID"]: r for r in _rows(mllmu_scored, "forget_10")}
    scorer, proc = SCORERS["mllmu_bench"], SimpleNamespace(option_letters=("a", "b", "c", "d"))

    def source(it, key):  # the question as the file holds it, by its text (the items' positions are the kept ones)
        matches = [q for q in key(raw[it.source_id]) if f"{q['Question']}" == it.question]
        assert len(matches) == 1, it.uid
        return matches[0]

    mc = [it for it in items if it.task == "mc"]
    assert len(mc) == sum(len(r[MC][IMG]) + len(r[MC][TXT]) for r in raw.values())  # every MC question counts
    for reply in ("A", "b) the second", "E", "I am not sure", "", "ASSISTANT: C", " d"):
        _replies(monkeypatch, reply)
        records = scoring.score_mc(None, proc, mc, "generate", scorer=scorer, prompts=object())
        for it, rec in zip(mc, records):
            image = it.modality == "multimodal"
            q = source(it, lambda r: r[MC][IMG if image else TXT])
            prompt = port_mc_prompt(q, image)
            assert render(it) == prompt, it.uid
            assert rec["score"] == float(port_mc_right(q, prompt, reply)), (it.uid, reply)
            # a re-scoring of the record reads it alike (`python -m unlearn.rescore`)
            assert scorer.score("mc", rec["reply"], rec["answer"], tuple(rec["options"]),
                                answer_index=rec["answer_index"]) == rec["score"]
    null = next(it for it in mc if it.answer_index == -1)
    _replies(monkeypatch, "I am not sure")
    assert scoring.score_mc(None, proc, [null], "generate", scorer=scorer, prompts=object())[0]["score"] == 1.0

    free = [it for it in items if it.task in ("gen", "cloze")]
    for reply in ("They work as a lawyer in Lyon.", "", "nothing at all"):
        _replies(monkeypatch, reply)
        for it, rec in zip(free, scoring.score_generation(None, proc, free, 50, scorer, prompts=object())):
            q = source(it, lambda r: r["Generation_Task" if it.task == "gen" else "Mask_Task"])
            if it.task == "gen":
                bucket, prompt, rouge = port_gen(q, reply)
                assert it.modality == ("multimodal" if bucket == "image" else "text"), it.uid
                assert render(it) == prompt and rec["score"] == pytest.approx(rouge), (it.uid, reply)
            else:
                right = port_cloze(q, reply)
                assert right is not None, it.uid  # eval.py counts every cloze question scored here
                assert rec["score"] == float(right), (it.uid, reply)
    # every question eval.py counts is an item: the unknown-Type cloze (counted nowhere) and the null question (eval.py
    # stops on it) are the ones left out
    counted = [(sid, q["Question"]) for sid, r in raw.items() for q in r["Mask_Task"]
               if not port_stops(port_cloze, q, "") and port_cloze(q, "") is not None]
    assert sorted(counted) == sorted((it.source_id, it.question) for it in free if it.task == "cloze")
    assert [q for r in raw.values() for q in r["Mask_Task"] if port_stops(port_cloze, q, "")]  # the null one
    asked = [(sid, f"{q['Question']}") for sid, r in raw.items() for q in r["Generation_Task"]
             if not port_stops(port_gen, q, "")]
    assert sorted(asked) == sorted((it.source_id, it.question) for it in free if it.task == "gen")


def test_score_reads_a_files_own_option_keys_as_eval_py(mllmu_keys, tmp_path, monkeypatch):
    """The prompt shows every key the file writes, in its order (eval.py:125), and a reply counts where its first
    character, upper-cased, is one of them and equals Correct_Answer (376, 432): an E answer can be right, a lower-case
    key never is; the counts name them. skip reads A-D alone, as it did."""
    b = _benchmark(tmp_path / "score", "mllmu_bench", mllmu_keys, "data.on_bad_row=score")
    assert b.scored == SCORED_KEYS
    assert b.skipped == DROPPED_KEYS
    skip = _benchmark(tmp_path / "skip", "mllmu_bench", mllmu_keys, "data.on_bad_row=skip")
    assert skip.scored == {}
    off = "Correct_Answer is not one of A-D with a non-empty option"
    celebrities = {k: [q["Correct_Answer"] for r in _rows(mllmu_keys, "Retain_Set") for q in r[MC][k]]
                   for k in (IMG, TXT)}
    assert skip.skipped == {  # the E and e answers (no letter A-D), the celebrities' missing D (an empty option)
        "forget_10": {f"question dropped: {IMG}[] {off}": 1}, "retain_90": {f"question dropped: {IMG}[] {off}": 1},
        "Retain_Set": {reason: n for k in (IMG, TXT) for reason, n in (
            (f"question dropped: {k}[] has empty Options (four options A-D are needed)", 6 - celebrities[k].count("D")),
            (f"question dropped: {k}[] {off}", celebrities[k].count("D"))) if n}}
    assert all(it.letters == tuple("ABCD") for split in skip.eval for it in
               flatten(split, skip.eval[split], lambda images: [None] * len(images)) if it.task == "mc")

    scorer, proc = SCORERS["mllmu_bench"], SimpleNamespace(option_letters=("a", "b", "c", "d"))
    prompts = SimpleNamespace(file_keys=True)  # MllmuBenchPrompts' reading, its prompts stubbed out below
    right = {}
    for split, config in (("forget", "forget_10"), ("retain", "retain_90"), ("untouched", "Retain_Set")):
        mc = [it for it in flatten(split, b.eval[split], lambda images: [None] * len(images)) if it.task == "mc"]
        raw = {r["ID"]: r for r in _rows(mllmu_keys, config)}
        assert len(mc) == sum(len(r[MC][IMG]) + len(r[MC][TXT]) for r in raw.values())
        for reply in ("A", "E", "e", "e) the fifth", "b", "", "ASSISTANT: E", " d", "None of them", "C", "D"):
            _replies(monkeypatch, reply)
            records = scoring.score_mc(None, proc, mc, "generate", scorer=scorer, prompts=prompts)
            for it, rec in zip(mc, records):
                image = it.modality == "multimodal"
                q = next(q for q in raw[it.source_id][MC][IMG if image else TXT] if q["Question"] == it.question)
                prompt = port_mc_prompt(q, image)
                assert render(it) == prompt, it.uid
                assert rec["score"] == float(port_mc_right(q, prompt, reply)), (it.uid, reply)
                right[(q["Correct_Answer"], reply)] = rec["score"]
            # a re-scoring of the records reads the file's keys they keep (`python -m unlearn.rescore`)
            assert [(r["score"], r["prediction"]) for r in rescore_records(records, scorer)] == \
                [(r["score"], r["prediction"]) for r in records], reply
    assert right[("E", "E")] == right[("E", "e) the fifth")] == 1.0
    assert right[("E", "ASSISTANT: E")] == 0.0  # eval.py keeps what lies between its prompt's and the reply's
    assert right[("e", "e")] == right[("e", "E")] == 0.0  # a lower-case key is never named
    assert right[("D", "D")] == 0.0 and right[("A", "A")] == 1.0  # the celebrities' A-C: a D answer never right
    from bench.answer_letters import letter_shares

    shares = letter_shares(b)  # an E answer is its own letter (until now: "ABCD"[4], an IndexError)
    assert shares[("forget", "multimodal")][1]["E"] > 0 and sum(shares[("forget", "multimodal")][1].values()) == \
        pytest.approx(1)


def test_a_shot_shows_the_options_a_to_d_by_name_whatever_the_files_keys(mllmu_keys, tmp_path):
    """eval.py's few-shot block writes `few_shot_options['A']` to `['D']` (352-355, 406-409): a fifth key unseen, the
    file's order not followed, an E answer written as published."""
    b = _benchmark(tmp_path, "mllmu_bench", mllmu_keys, "data.on_bad_row=score")
    for split, config in (("forget", "forget_10"), ("retain", "retain_90")):
        raw = {r["ID"]: r for r in _rows(mllmu_keys, config)}
        for shot in (it for it in flatten(split, b.eval[split], lambda images: [None] * len(images))
                     if it.task == "mc"):
            image = shot.modality == "multimodal"
            q = next(q for q in raw[shot.source_id][MC][IMG if image else TXT] if q["Question"] == shot.question)
            assert render_mc("Q?", ("1", "2", "3", "4"), image, [shot]).startswith(port_mc_shot(q, image)), shot.uid


def test_other_than_four_options_are_read_as_eval_py_reads_them_or_refused(mllmu_keys, tmp_path):
    """A file's fifth option is shown and read by eval.py's reading alone (eval.protocol=mllmu_bench): the letter
    readings ask with the processor's four letters, the likelihood's chance is not four options'; refused, naming
    the settings. The teaching probe reads skip's questions, A-D, as before."""
    from unlearn.eval.evaluator import EvaluationModule
    from unlearn.eval.items import as_checked, refused_by_checks
    from unlearn.eval.protocol import MllmuBenchPrompts

    b = _benchmark(tmp_path / "score", "mllmu_bench", mllmu_keys, "data.on_bad_row=score")
    items = [it for it in flatten("forget", b.eval["forget"], lambda images: [None] * len(images)) if it.task == "mc"]
    full = [it for it in items if all(it.options)]  # five options, none empty
    assert len(full) == 2 and all(it.letters == tuple("ABCDE") for it in full)
    for modes in ({"mc_mode": "likelihood"}, {"mc_mode": "letter"}, {"mc_mode": "generate"},
                  {"mc_mode": "generate", "mc_also": "likelihood"}):
        with pytest.raises(ValueError, match=r"has 5 options \['A', 'B', 'C', 'D', 'E'\], kept by data.on_bad_row="
                                             r"score .*eval.protocol=embedded with eval.mc_mode="):
            EvaluationModule(None, None, full, "before", **modes)
    EvaluationModule(None, None, items, "before", mc_mode="generate", prompts=MllmuBenchPrompts())
    skip = _benchmark(tmp_path / "skip", "mllmu_bench", mllmu_keys, "data.on_bad_row=skip")
    EvaluationModule(None, None, flatten("forget", skip.eval["forget"], lambda images: [None] * len(images)),
                     "before", mc_mode="likelihood")

    def probe(bench, split):
        return sorted((it.source_id, it.modality, it.question, it.options, it.answer_index, it.letters)
                      for it in flatten(split, map(as_checked, bench.eval[split]), lambda images: [None] * len(images))
                      if it.task == "mc" and not refused_by_checks(it))

    for split in ("forget", "retain"):
        assert probe(b, split) == probe(skip, split), split


def test_a_shot_shows_a_correct_answer_that_is_no_letter_as_eval_py_writes_it(mllmu_scored, tmp_path):
    b = _benchmark(tmp_path, "mllmu_bench", mllmu_scored, "data.on_bad_row=score")
    items = [it for it in flatten("forget", b.eval["forget"], lambda images: [None] * len(images)) if it.task == "mc"]
    raw = {r["ID"]: r for r in _rows(mllmu_scored, "forget_10")}
    for shot in (it for it in items if it.answer_index < 0):
        q = next(q for key in (IMG, TXT) for q in raw[shot.source_id][MC][key] if q["Question"] == shot.question)
        o = q["Options"]
        head = (f"USER:\nQuestion: {q['Question']}\nA: {o['A']}\nB: {o['B']}\nC: {o['C']}\nD: {o['D']}\n"
                f"Correct Answer: {q['Correct_Answer']}\n")  # eval.py:403-411, a text shot
        assert render_mc("Q?", ("1", "2", "3", "4"), False, [shot]).startswith(head), shot.uid


def test_a_shot_asks_an_empty_or_null_question_as_eval_py_writes_it(mllmu_scored, tmp_path):
    """MC: "Question: " or "Question: None" (eval.py:351, 405); cloze: the instruction alone (534, 545, 599-604)."""
    b = _benchmark(tmp_path, "mllmu_bench", mllmu_scored, "data.on_bad_row=score")
    items = flatten("forget", b.eval["forget"], lambda images: [None] * len(images))
    raw = {r["ID"]: r for r in _rows(mllmu_scored, "forget_10")}
    shots = [it for it in items if it.task in ("mc", "cloze") and it.question in ("", "None")]
    assert sorted(it.task for it in shots) == ["cloze", "mc", "mc"]
    for shot in shots:
        image = shot.modality == "multimodal"
        if shot.task == "mc":
            q = next(q for key in (IMG, TXT) for q in raw[shot.source_id][MC][key] if q["Question"] in ("", None)
                     and f"{q['Question']}" == shot.question)
            assert render_mc("Q?", ("1", "2", "3", "4"), image, [shot]).startswith(port_mc_shot(q, image)), shot.uid
        else:
            q = next(q for q in raw[shot.source_id]["Mask_Task"] if q["Question"] == "")
            assert render(replace(shot, question="Q __"), [shot]).startswith(port_cloze_shot(q)), shot.uid


def test_the_teaching_probe_reads_the_questions_skip_keeps(mllmu_scored, tmp_path):
    """score reuses skip's vanilla model, so its teaching probe (finetune.target_mc_acc) reads skip's MC questions,
    as skip reads them; MMUnlearner's text preserve set asks no empty or null question."""
    from unlearn.eval.items import as_checked, refused_by_checks
    from unlearn.methods.mmunlearner import eval_mc_text_pairs

    def probe(b, split):
        return sorted((it.source_id, it.modality, it.question, it.options, it.answer_index)
                      for it in flatten(split, map(as_checked, b.eval[split]), lambda images: [None] * len(images))
                      if it.task == "mc" and not refused_by_checks(it))

    score = _benchmark(tmp_path / "score", "mllmu_bench", mllmu_scored, "data.on_bad_row=score")
    skip = _benchmark(tmp_path / "skip", "mllmu_bench", mllmu_scored, "data.on_bad_row=skip")
    for split in ("forget", "retain"):
        assert probe(score, split) == probe(skip, split), split
    assert all(q for q, _ in eval_mc_text_pairs(score))


def test_an_empty_option_has_no_likelihood_reading(mllmu_scored, tmp_path):
    """An empty option is no tokens: log-probability 0, chosen every time. Refused where the evaluator is built
    under eval.mc_mode or eval.mc_also = likelihood; the generated-letter reading (eval.py's) takes it."""
    from unlearn.eval.evaluator import EvaluationModule

    b = _benchmark(tmp_path, "mllmu_bench", mllmu_scored, "data.on_bad_row=score")
    items = flatten("forget", b.eval["forget"], lambda images: [None] * len(images))
    for modes in ({"mc_mode": "likelihood"}, {"mc_mode": "generate", "mc_also": "likelihood"}):
        key = "eval.mc_mode" if modes["mc_mode"] == "likelihood" else "eval.mc_also"
        with pytest.raises(ValueError, match=rf"has an empty option, which {key}=likelihood would choose every time"):
            EvaluationModule(None, None, items, "before", **modes)
    EvaluationModule(None, None, items, "before", mc_mode="generate", mc_also="letter")
    off = [it for it in items if it.task == "mc" and all((o or "").strip() for o in it.options)]
    EvaluationModule(None, None, off, "before", mc_mode="likelihood")  # an answer that is no letter: never right


def test_answer_letter_shares_count_an_answer_that_is_no_letter_apart(mllmu_scored, tmp_path):
    """bench/answer_letters.py over kept questions: a null or off-letter Correct_Answer (answer_index -1, -2) is no
    letter, not "ABCD"[-1] (D) and "ABCD"[-2] (C); the shares still sum to 1 over the cell's questions."""
    from bench.answer_letters import letter_shares

    NO_LETTER = "none"  # the key of the answers that are no letter

    b = _benchmark(tmp_path, "mllmu_bench", mllmu_scored, "data.on_bad_row=score")
    shares = letter_shares(b)
    for (split, modality), (n, share) in shares.items():
        items = [it for it in flatten(split, b.eval[split], lambda images: [None] * len(images))
                 if it.task == "mc" and it.modality == modality]
        assert n == len(items) and sum(share.values()) == pytest.approx(1)
        for k, letter in enumerate("ABCD"):
            assert share[letter] == sum(it.answer_index == k for it in items) / n, (split, modality, letter)
        assert share.get(NO_LETTER, 0) == sum(it.answer_index < 0 for it in items) / n
    assert shares[("forget", "multimodal")][1][NO_LETTER] > 0 and shares[("forget", "text")][1][NO_LETTER] > 0


@pytest.mark.parametrize("data", ["clear", "mllmu_mini"])
def test_score_is_refused_where_the_loader_cannot_honour_it(data, clear_dir, tmp_path):
    from unlearn.config import compose_config
    from unlearn.settings import check_run_settings

    path = [f"data.path={clear_dir}"] if data == "clear" else []
    cfg = compose_config([f"data={data}", *path, "data.on_bad_row=score"], tmp_path / "out", tmp_path / "cache")
    with pytest.raises(ValueError, match=rf"data.on_bad_row=score keeps the rows MLLMU-Bench's eval.py scores .*"
                                         rf"only data=mllmu_bench can \(data={data} "):
        check_run_settings(cfg)
    if data == "clear":  # and the loader, called on its own
        with pytest.raises(DataError, match=r"data.on_bad_row='score' .* only data=mllmu_bench's loader can; "
                                            r"expected one of \['error', 'skip'\] here"):
            _benchmark(tmp_path, data, clear_dir, "data.on_bad_row=score")


def test_score_keys_its_own_before_evaluation(tmp_path):
    """What is scored differs from skip's: another before-evaluation, another seed group; error's and skip's keys
    are as they were (the value enters the key through the data config, unlearn/pipeline.py keyed_data)."""
    from unlearn.config import compose_config
    from unlearn.pipeline import before_cache_path
    from unlearn.report import setting_of
    from unlearn.settings import check_run_settings

    def cfg(*overrides):
        return compose_config(["logger=none", "data=mllmu_bench", "data.path=/data/MLLMU-Bench",
                               "eval.cache_before=true", *overrides], tmp_path / "out", tmp_path / "cache")

    from unlearn.data.schema import BadRows

    check_run_settings(cfg("data.on_bad_row=score"))  # accepted where the loader honours it
    assert BadRows("score", scores=True).mode == "score"  # MLLMU-Bench's loader (load_mllmu_bench) asks for it
    keys = {mode: before_cache_path(cfg(f"data.on_bad_row={mode}"), "/cache/vanilla/x").name
            for mode in ("error", "skip", "score")}
    assert len(set(keys.values())) == 3 and keys["skip"] == before_cache_path(cfg(), "/cache/vanilla/x").name
    # the teaching reads none of what score keeps (the probe reads skip's questions): skip's vanilla model, not a
    # re-teaching of the same one (hours at 7B); error's stays its own
    from unlearn.pipeline import vanilla_key

    vanilla = {m: vanilla_key(cfg(f"data.on_bad_row={m}", "model=tiny_llava")) for m in ("error", "skip", "score")}
    assert vanilla["score"] == vanilla["skip"] != vanilla["error"]
    from omegaconf import OmegaConf
    settings = {m: setting_of(OmegaConf.to_container(cfg(f"data.on_bad_row={m}"), resolve=True))
                for m in ("skip", "score")}
    assert settings["skip"] != settings["score"]


def test_a_before_evaluation_cached_under_an_older_score_reading_is_not_reused(tmp_path, monkeypatch):
    """score's items changed in the forty-sixth session (empty and null questions asked, a file's own Options keys
    read, a Correct_Answer matched whole), so a before-evaluation cached under score by the code before holds other
    items than the after-evaluation it would be compared with: score keys its reading (pipeline.SCORE_READING);
    error's and skip's keys do not read it."""
    import unlearn.pipeline as pipeline
    from unlearn.config import compose_config

    def key(*overrides):
        cfg = compose_config(["logger=none", "data=mllmu_bench", "data.path=/data/MLLMU-Bench",
                              "eval.cache_before=true", *overrides], tmp_path / "out", tmp_path / "cache")
        return pipeline.before_cache_path(cfg, "/cache/vanilla/x").name

    modes = [("data.on_bad_row=error",), ("data.on_bad_row=skip",), ("data.on_bad_row=score",),
             ("data.on_bad_row=skip", "data.benchmark.on_bad_row=score")]
    keys = {m: key(*m) for m in modes}
    monkeypatch.setattr(pipeline, "SCORE_READING", pipeline.SCORE_READING + 1)
    assert key(*modes[0]) == keys[modes[0]] and key(*modes[1]) == keys[modes[1]]
    assert key(*modes[2]) != keys[modes[2]] and key(*modes[3]) != keys[modes[3]]


@pytest.mark.slow
def test_a_run_writes_what_score_kept_and_what_it_dropped(mllmu_scored, tmp_path, monkeypatch):
    """metrics.json names both: `scored_rows` (kept, scored as eval.py does) beside `skipped_rows` (dropped); a run
    under skip writes no `scored_rows` key, so its file is as before the setting existed."""
    import json

    import unlearn.models.tiny_real as tiny_real
    from unlearn.config import compose_config
    from unlearn.models.tiny_real import snapshot_words
    from unlearn.pipeline import run

    base = tiny_real.vocabulary
    monkeypatch.setattr(tiny_real, "vocabulary", lambda: base() + snapshot_words(mllmu_scored))
    model, tok, images = tiny_real.build_tiny_real("llava")
    for part in (model, tok, images):
        part.save_pretrained(tmp_path / "llava")
    common = ["method=ga", "model=llava_1_5_7b", "model.dtype=float32", f"model.path={tmp_path / 'llava'}",
              "data=mllmu_bench", f"data.path={mllmu_scored}", "logger=none", "eval.max_people=2",
              "eval.max_new_tokens=2", "eval.tasks=[mc]", "method.batch_size=2", "+trainer.max_steps=1"]
    summaries = {}
    for mode in ("score", "skip"):
        run(compose_config([*common, f"data.on_bad_row={mode}"], tmp_path / mode, tmp_path / "cache"))
        summaries[mode] = json.loads((tmp_path / mode / "metrics.json").read_text())
    assert summaries["score"]["scored_rows"] == SCORED
    assert summaries["score"]["skipped_rows"] == DROPPED
    assert "scored_rows" not in summaries["skip"]
    assert sum(summaries["skip"]["skipped_rows"]["forget_10"].values()) == 15
    # the reading the report tells score's runs apart by (unlearn/report.py with_score_reading); none under skip
    from unlearn.pipeline import SCORE_READING

    assert summaries["score"]["score_reading"] == SCORE_READING and "score_reading" not in summaries["skip"]


@pytest.mark.parametrize("preset", ["mllmu_baselines", "manu_official"])
def test_the_official_presets_score_as_their_eval_py(preset, tmp_path):
    """MLLMU-Bench's eval.py and MANU's copy of it score the questions the checks refuse: their presets say score,
    which the settings accept (data=mllmu_bench's loader)."""
    from unlearn.config import compose_config
    from unlearn.settings import check_run_settings

    cfg = compose_config([f"experiment={preset}", "data.path=/data/MLLMU-Bench"], tmp_path / "o", tmp_path / "c")
    assert cfg.data.on_bad_row == "score" and cfg.data.benchmark.on_bad_row == "score"
    check_run_settings(cfg)


@pytest.fixture()
def mllmu_abc(mllmu_dir, tmp_path):
    """forget_10 written as a file whose MC Options are keyed A-C (its schema lacks D: every question does)."""
    root = shutil.copytree(mllmu_dir, tmp_path / "abc")
    _with_option_keys(root, "forget_10", "ABC")
    return root


def _score_cfg(tmp_path, root, *overrides):
    from unlearn.config import compose_config

    return compose_config(["logger=none", "data=mllmu_bench", f"data.path={root}", "data.on_bad_row=score",
                           *overrides], tmp_path / "out", tmp_path / "cache")


def _checked_before_run(tmp_path, root, *overrides) -> None:
    from unlearn.pipeline import check_mc_options_before_run, load_benchmark, shot_order

    cfg = _score_cfg(tmp_path, root, *overrides)
    b = load_benchmark(cfg)
    check_mc_options_before_run(cfg, b, shot_order(cfg, b))


def test_a_question_lacking_a_letter_is_asked_where_eval_py_asks_it(mllmu_abc, tmp_path, monkeypatch):
    """eval.py reads `few_shot_options['A']` to `['D']` only in a shot's block (352-355, 406-409); a question it asks
    is shown with its own keys (125): kept, and asked and scored as the port does where it is no shot. Until the
    forty-seventh session the loader dropped it everywhere."""
    b = _benchmark(tmp_path, "mllmu_bench", mllmu_abc, "data.on_bad_row=score")
    raw = {r["ID"]: r for r in _rows(mllmu_abc, "forget_10")}
    assert b.scored["forget_10"] == {f"question scored: {k}[] {MISSING}": sum(len(r[MC][k]) for r in raw.values())
                                     for k in (IMG, TXT)}
    assert "forget_10" not in b.skipped
    mc = [it for it in flatten("forget", b.eval["forget"], lambda images: [None] * len(images)) if it.task == "mc"]
    assert len(mc) == sum(len(r[MC][IMG]) + len(r[MC][TXT]) for r in raw.values())
    scorer, proc = SCORERS["mllmu_bench"], SimpleNamespace(option_letters=("A", "B", "C", "D"))
    for reply in ("A", "C", "D", "d) none", ""):
        _replies(monkeypatch, reply)
        for it, rec in zip(mc, scoring.score_mc(None, proc, mc, "generate", scorer=scorer,
                                                 prompts=SimpleNamespace(file_keys=True))):
            image = it.modality == "multimodal"
            q = next(q for q in raw[it.source_id][MC][IMG if image else TXT] if q["Question"] == it.question)
            assert not port_stops(port_mc_prompt, q, image) and render(it) == port_mc_prompt(q, image), it.uid
            assert rec["score"] == float(port_mc_right(q, port_mc_prompt(q, image), reply)), (it.uid, reply)
            # as a shot, eval.py stops; so does the refusal below
            assert port_stops(port_mc_shot, q, image), it.uid


def test_a_shot_lacking_a_letter_is_refused_as_eval_py_stops_before_the_run(mllmu_abc, tmp_path):
    """Where such a question is a shot shown before an asked question (forget's own shots; test's, looked up in
    forget), eval.py stops on a KeyError: refused before the run, naming the way out. Zero-shot (eval.few_shot=false)
    it asks them all; a split whose shots have A-D (retain) is not refused."""
    for splits in ("[forget]", "[test]"):
        with pytest.raises(ValueError, match=r"has Options \['A', 'B', 'C'\], lacking \['D'\], kept by data.on_bad_row="
                                             r"score .* few-shot example of the (forget|test) .* eval.few_shot=false"):
            _checked_before_run(tmp_path, mllmu_abc, f"eval.splits={splits}")
    _checked_before_run(tmp_path, mllmu_abc, "eval.few_shot=false")
    _checked_before_run(tmp_path, mllmu_abc, "eval.splits=[retain,untouched]")
    _checked_before_run(tmp_path, mllmu_abc, "eval.tasks=[gen,cloze]")


def test_a_shot_lacking_a_letter_is_refused_where_the_prompts_are_made(mllmu_abc, tmp_path):
    """As eval.py stops where it builds a shot block of such a question before a question it asks."""
    from unlearn.eval.protocol import check_shot_options, make_prompts

    b = _benchmark(tmp_path / "b", "mllmu_bench", mllmu_abc, "data.on_bad_row=score")
    items = {"forget": flatten("forget", b.eval["forget"], lambda images: [None] * len(images))}
    prompts = make_prompts("mllmu_bench", SimpleNamespace(family="llava"), items, items.get, seed=0)
    with pytest.raises(ValueError, match=r"lacking \['D'\]"):
        check_shot_options(prompts.shots, prompts.scored(items["forget"]))
    check_shot_options(prompts.shots, [])  # a block before no asked question is never built


def test_mc_the_reading_refuses_is_refused_before_the_run(mllmu_keys, mllmu_scored, tmp_path):
    """Other than four options under a reading other than eval.py's, and an empty option under the likelihood, are
    refused before any work (until the forty-seventh session where the evaluator was built: after the teaching)."""
    for overrides in (["eval.protocol=embedded", "eval.mc_mode=generate"], ["eval.protocol=embedded", "eval.mc_mode=letter"]):
        with pytest.raises(ValueError, match=r"has 5 options \['A', 'B', 'C', 'D', 'E'\], kept by data.on_bad_row"):
            _checked_before_run(tmp_path, mllmu_keys, *overrides, "eval.splits=[forget]")
    with pytest.raises(ValueError, match=r"has an empty option, which eval.mc_mode=likelihood would choose"):
        _checked_before_run(tmp_path, mllmu_scored, "eval.protocol=embedded", "eval.mc_mode=likelihood")
    _checked_before_run(tmp_path, mllmu_keys, "eval.splits=[forget]")  # eval.py's reading takes them
    _checked_before_run(tmp_path, mllmu_scored, "eval.protocol=embedded", "eval.mc_mode=letter")
    _checked_before_run(tmp_path, mllmu_keys, "eval.protocol=embedded", "eval.mc_mode=likelihood",
                        "eval.tasks=[gen]")  # no MC asked


@pytest.mark.parametrize("method", ["finetune", "ga"])
def test_a_run_bound_to_be_refused_is_refused_before_the_teaching(method, mllmu_keys, tmp_path, monkeypatch):
    """method=finetune teaches the vanilla model and an unlearning run with none cached teaches it first (minutes to
    hours on a real model); a question the configured reading refuses is refused before either starts, printed alone
    as the other refusals before the run."""
    import unlearn.pipeline as pipeline
    from unlearn.settings import refused_before_run

    def taught(*args, **kwargs):
        raise AssertionError("the model was built or taught before the refusal")

    for step in ("initial_model", "ensure_vanilla", "load_configured", "check_teaching_schedule_before_model"):
        monkeypatch.setattr(pipeline, step, taught)
    cfg = _score_cfg(tmp_path, mllmu_keys, f"method={method}", "model=tiny_llava", "eval.protocol=embedded",
                     "eval.mc_mode=generate")
    with pytest.raises(ValueError, match=r"has 5 options \['A', 'B', 'C', 'D', 'E'\]") as refused:
        pipeline.run(cfg)
    assert refused_before_run(refused.value)
    assert not (tmp_path / "out" / "metrics.json").exists()


def port_mmunlearner_right(q: dict, reply: str, image: bool) -> bool:
    """MMUnlearner's MLLMU_eval.py MC reading of the new tokens: image+text (239-244) counts the letter where it is a
    key of the Options, as eval.py; text-only (295-301) compares it with Correct_Answer as it is, " " for no letter."""
    response = re.sub(r"[^a-zA-Z0-9]", "", reply)
    if image:
        predicted = response[0].upper() if response and response[0].upper() in q["Options"] else None
    else:
        response += " "
        predicted = response[0].upper()
    return predicted == q["Correct_Answer"]


def test_the_mmunlearner_scorer_reads_mc_as_its_mllmu_eval_py(mllmu_scored, mllmu_keys, tmp_path, monkeypatch):
    """eval.scorer=mmunlearner against the port: the text-only MC reads no `in options`, so a Correct_Answer that is
    no key of the Options (a D among A-C, an E among A-D) is right where the reply's letter equals it, a null one
    never (eval.py: where the reply names no letter); image+text reads as eval.py. A re-scoring reads alike."""
    scorer, proc = SCORERS["mmunlearner"], SimpleNamespace(option_letters=("A", "B", "C", "D"))
    differs = set()
    for root, configs in ((mllmu_scored, (("forget", "forget_10"),)),
                          (mllmu_keys, (("forget", "forget_10"), ("retain", "retain_90"), ("untouched", "Retain_Set")))):
        b = _benchmark(tmp_path / root.name, "mllmu_bench", root, "data.on_bad_row=score")
        for split, config in configs:
            mc = [it for it in flatten(split, b.eval[split], lambda images: [None] * len(images)) if it.task == "mc"]
            raw = {r["ID"]: r for r in _rows(root, config)}
            for reply in ("A", "(E)", "e", "D", "", "I am not sure", "**B**", "None", "1"):
                _replies(monkeypatch, reply)
                records = scoring.score_mc(None, proc, mc, "generate", scorer=scorer,
                                           prompts=SimpleNamespace(file_keys=True))
                eval_py = scoring.score_mc(None, proc, mc, "generate", scorer=SCORERS["mllmu_bench"],
                                           prompts=SimpleNamespace(file_keys=True))
                for it, rec, other in zip(mc, records, eval_py):
                    image = it.modality == "multimodal"
                    q = next(q for q in raw[it.source_id][MC][IMG if image else TXT]
                             if f"{q['Question']}" == it.question)
                    assert rec["score"] == float(port_mmunlearner_right(q, reply, image)), (it.uid, reply)
                    if rec["score"] != other["score"] and reply.strip("()*") == reply:
                        differs.add((it.modality, q["Correct_Answer"], reply))
                assert [r["score"] for r in rescore_records(records, scorer)] == [r["score"] for r in records]
    # where it differs from eval.py's reading: text-only questions whose answer is no key of their Options
    assert {("text", "D", "D"), ("text", None, ""), ("text", None, "I am not sure")} <= differs
    assert all(modality == "text" for modality, _, _ in differs)


def port_mmunlearner_text_set(rows) -> list[tuple[str, str]]:
    """MMUnlearner's text preserve set (data_process/MLLMU_process.py MLLMU_text_Dataset.flatten_dataset): every
    Pure_Text question with `options[correct_answer]` (a KeyError where it is no key: their script stops)."""
    return [(q["Question"], q["Options"][q["Correct_Answer"]]) for row in rows for q in row[MC].get(TXT, [])]


def test_mmunlearners_text_preserve_set_reads_the_rows_as_theirs(mllmu_dir, tmp_path):
    """Under score, an empty wrong option is kept (theirs reads the correct one alone; skip drops it), and so is an
    answer keyed E in a file with a fifth key; where their script stops (a null or off-key answer) the question is
    left out, as is one with no question or answer text. skip's set is the port's over skip's questions."""
    from unlearn.methods.mmunlearner import eval_mc_text_pairs

    root = shutil.copytree(mllmu_dir, tmp_path / "preserve")

    def forget(rows):
        rows[0][MC][TXT][0]["Options"]["E"], rows[0][MC][TXT][0]["Correct_Answer"] = "a fifth option", "E"
        rows[0][MC][TXT][1]["Options"]["B" if rows[0][MC][TXT][1]["Correct_Answer"] != "B" else "C"] = ""
        rows[1][MC][TXT][0]["Correct_Answer"] = None  # their script stops
        rows[1][MC][TXT][1]["Correct_Answer"] = "Z"  # their script stops

    _with_option_keys(root, "forget_10", "ABCDE", forget)
    edit_fixture(root, "retain_90", _set(0, (MC, TXT, 0, "Options", "A" if _rows(root, "retain_90")[0][MC][TXT][0][
        "Correct_Answer"] != "A" else "D"), None))  # an empty (null) wrong option
    score = eval_mc_text_pairs(_benchmark(tmp_path / "score", "mllmu_bench", root, "data.on_bad_row=score"))
    raw = _rows(root, "forget_10") + _rows(root, "retain_90")
    assert port_stops(port_mmunlearner_text_set, raw)  # on forget row 1's two questions
    stops = {raw[1][MC][TXT][k]["Question"] for k in (0, 1)}
    theirs = port_mmunlearner_text_set([{MC: {TXT: [q for q in r[MC][TXT] if q["Question"] not in stops]}}
                                        for r in raw])
    assert sorted(score) == sorted(theirs)
    assert (raw[0][MC][TXT][0]["Question"], "a fifth option") in score
    assert raw[0][MC][TXT][1]["Question"] in {q for q, _ in score}  # its empty wrong option
    skip = eval_mc_text_pairs(_benchmark(tmp_path / "skip", "mllmu_bench", root, "data.on_bad_row=skip"))
    assert len(skip) == len(score) - 3  # the E answer and the two empty wrong options
