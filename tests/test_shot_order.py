"""eval.shot_order: the order of the drawn few-shot people's blocks, held against a port of the official eval.py.

Their eval.py (franciscoliu/MLLMU-Bench at 5762ad6; MMUnlearner's MLLMU_eval.py at fa77c66 alike, lines 120-121 and
378-379) draws `selected_ids = random.sample(id_list, k)` and then reads the shots as
`few_shot_df[few_shot_df['ID'].isin(selected_ids)]` from `--few_shot_data`, Full_Set (eval.py 275-276, 513-514):
the people follow Full_Set's row order, whatever order the draw gave them. The port below is written from those
lines (their draw is unseeded: the port is handed the IDs our seeded draw took), on the MLLMU-Bench fixture
snapshot, whose forget / retain splits shuffle Full_Set's rows as a real split may.
"""

import pyarrow.parquet as pq
import pytest
from omegaconf import OmegaConf, open_dict

from unlearn.data.benchmark import load_mllmu_bench
from unlearn.data.fixtures import write_mllmu_bench_fixture
from unlearn.eval.items import flatten
from unlearn.eval.protocol import SHOT_SOURCE, draw_shot_people, full_set_order, make_prompts

from tests.test_real_data import offline  # noqa: F401 (fixture: nothing here reaches the network)

LLAVA = type("P", (), {"family": "llava"})()


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    return write_mllmu_bench_fixture(tmp_path_factory.mktemp("mllmu") / "MLLMU-Bench")


@pytest.fixture(scope="module")
def bench(snapshot, tmp_path_factory):
    return load_mllmu_bench(str(snapshot), "forget_15", cache_dir=tmp_path_factory.mktemp("cache"))


def _rows(root, config):
    return [r for f in sorted((root / config).glob("*.parquet")) for r in pq.read_table(f).to_pylist()]


# --- A port of their few-shot lookup and prompts (eval.py 274-303, 343-361, 397-416, 509-552, 594-608) ----------
def port_shot_ids(full_set_rows, selected_ids):
    """`few_shot_df[few_shot_df['ID'].isin(selected_ids)]`: the IDs of the rows read, in Full_Set's order."""
    return [row["ID"] for row in full_set_rows if row["ID"] in set(selected_ids)]


def port_mc_prompt(full_set_rows, selected_ids, question, options, image):
    """evaluate_classification's prompt of one question after the shots of the selected IDs."""
    shots = ""
    for row in full_set_rows:
        if row["ID"] not in set(selected_ids):
            continue
        for q in row["Classification_Task"]["Image_Textual_Questions" if image else "Pure_Text_Questions"]:
            o = q["Options"]
            shots += (("USER: <image>\n" if image else "USER:\n") + f"Question: {q['Question']}\nA: {o['A']}\n"
                      f"B: {o['B']}\nC: {o['C']}\nD: {o['D']}\nCorrect Answer: {q['Correct_Answer']}\n")
    with_options = question + "\n" + "\n".join(f"{k}: {v}" for k, v in options.items())
    head = "USER: <image>\n" if image else "USER:\n"
    return f"{shots}{head}{with_options}\nJust give ONE letter representing the answer directly.\nASSISTANT:"


def port_cloze_prompt(full_set_rows, selected_ids, question, image):
    """evaluate_fill_in_the_blank's prompt of one question after the shots of the selected IDs."""
    suffix = "\nPlease **ONLY** provide the correct answer that should replace the [Blank]."
    shots = ""
    for row in full_set_rows:
        if row["ID"] not in set(selected_ids):
            continue
        for q in row["Mask_Task"]:
            if q["Type"] == ("Image_Textual" if image else "Pure_Text"):
                shown = q["Question"].replace("__", "[Blank]") + suffix
                shots += ("USER:<image>\n" if image else "USER:\n") + f"{shown}\nCorrect Answer: {q['Ground_Truth']}\n"
    question = question.replace("__", "[Blank]") + suffix
    return f"{shots}USER: <image>\n{question}\nASSISTANT:" if image else f"{shots}USER:\n{question}\nASSISTANT:"


def _items(bench):
    pixels = lambda images: [None for _ in images]  # noqa: E731
    by_split = {s: flatten(s, bench.eval[s], pixels) for s in ("forget", "retain", "test", "untouched")}
    return by_split, by_split.__getitem__


def _cases(bench, shot_people):
    """Every (seed, split, task) our draw takes 2+ people in: the source IDs drawn, as their id_list holds them."""
    by_split, _ = _items(bench)
    for seed in range(15):
        for split, items in by_split.items():
            people = list(dict.fromkeys(it.person for it in items))
            for task in ("mc", "cloze"):
                drawn = draw_shot_people(people, shot_people[task], seed, split, task)
                ids = {it.person: it.profile for it in items}
                yield seed, split, task, [ids[p] for p in drawn]


def _compare(bench, snapshot, order, shot_people):
    """(cases, cases whose rendered prompts differ from the port's) over every drawn case."""
    full_set = _rows(snapshot, "Full_Set")
    by_split, source = _items(bench)
    cases = differ = 0
    for seed, split, task, selected in _cases(bench, shot_people):
        if len(selected) < 2:
            continue
        prompts = make_prompts("mllmu_bench", LLAVA, by_split, source, seed, shot_people=shot_people, order=order)
        for modality in ("multimodal", "text"):
            shots = prompts.shots.get((split, task, modality))
            if shots is None:  # the celebrities' MC: no few-shot block (eval.py 346)
                continue
            cases += 1
            # the same people, and (with Full_Set's order) the same order of people, as their lookup
            pool = [it.profile for s in SHOT_SOURCE.get(split, (split,)) for it in source(s)]
            expected = [i for i in port_shot_ids(full_set, selected) if i in pool]
            assert sorted(dict.fromkeys(s.profile for s in shots)) == sorted(expected)
            # a question of the split (scored or not: the block before it is the same)
            item = next(it for it in by_split[split] if it.task == task and it.modality == modality)
            image = modality == "multimodal"
            theirs = (port_mc_prompt(full_set, selected, item.question, dict(zip("ABCD", item.options)), image)
                      if task == "mc" else port_cloze_prompt(full_set, selected, item.question, image))
            if order is not None:
                assert list(dict.fromkeys(s.profile for s in shots)) == expected, (seed, split, task, modality)
                assert prompts.text(item) == theirs, (seed, split, task, modality)
            differ += prompts.text(item) != theirs
    return cases, differ


@pytest.mark.parametrize("shot_people", [{"mc": 1, "cloze": 2}, {"mc": 2, "cloze": 3}])
def test_full_set_order_renders_every_drawn_case_as_their_eval_py(bench, snapshot, shot_people):
    """Held against the port on every case of 15 seeds that draws 2+ people (forget, retain, test, the
    celebrities; MC and cloze; both forms): the same shot people in the same order, the same prompt string."""
    assert bench.full_set == tuple(r["ID"] for r in _rows(snapshot, "Full_Set"))  # the loader read Full_Set's order
    order = full_set_order("full_set", bench.full_set)
    cases, differ = _compare(bench, snapshot, order, shot_people)
    assert cases >= 60 and differ == 0
    # the lookup order (the only one until the forty-third session) swaps blocks on this snapshot: the test
    # above could fail, and the setting is what moves it
    cases, differ = _compare(bench, snapshot, full_set_order("lookup", bench.full_set), shot_people)
    assert 0 < differ < cases


def test_full_set_order_is_refused_where_the_data_has_none(snapshot, tmp_path):
    """A snapshot without Full_Set (its README names none) loads, and Full_Set's order is refused naming the
    setting; the lookup order runs; the embedded benchmark's stand-in is its fictitious people in ID order."""
    import shutil

    from unlearn.data.mllmu_bench import full_set_ids

    partial = tmp_path / "partial"
    shutil.copytree(snapshot, partial)
    shutil.rmtree(partial / "Full_Set")
    readme = (partial / "README.md").read_text().replace(
        "- config_name: Full_Set\n  data_files:\n  - split: train\n    path: Full_Set/train-*\n", "")
    (partial / "README.md").write_text(readme)
    assert full_set_ids(str(partial), tmp_path / "cache") is None
    with pytest.raises(ValueError, match=r"eval.shot_order=full_set .* has no Full_Set .* eval.shot_order=lookup"):
        full_set_order("full_set", None, "data=mllmu_bench")
    assert full_set_order("lookup", None) is None
    with pytest.raises(ValueError, match=r"eval.shot_order='by_id': expected one of \['full_set', 'lookup'\]"):
        full_set_order("by_id", ("1",))


def test_the_embedded_full_set_is_its_fictitious_people_in_id_order(small_benchmark):
    train = small_benchmark.train
    fictitious = sorted(i for i, g in zip(train["ID"], train["group"]) if g == "fictitious")
    assert small_benchmark.full_set == tuple(str(i) for i in fictitious)
    forget = [str(i) for i in small_benchmark.eval["forget"]["ID"]]
    assert set(forget) < set(small_benchmark.full_set) and not set(small_benchmark.full_set) & {
        str(i) for i in small_benchmark.eval["untouched"]["ID"]}


def test_a_forget_or_retain_person_missing_from_full_set_is_refused_before_the_run(bench):
    from unlearn.pipeline import shot_order

    cfg = OmegaConf.create({"data": {"name": "mllmu_bench"},
                            "eval": {"protocol": "mllmu_bench", "few_shot": True, "shot_order": "full_set"}})
    assert shot_order(cfg, bench) == bench.full_set
    bench_short = type("B", (), {"name": "mllmu_bench", "eval": bench.eval, "full_set": bench.full_set[1:]})()
    with pytest.raises(ValueError, match=rf"Full_Set has no row for the IDs \['{bench.full_set[0]}'\]"):
        shot_order(cfg, bench_short)
    cfg.eval.shot_order = "lookup"
    assert shot_order(cfg, bench_short) is None
    cfg.eval.shot_order, cfg.eval.few_shot = "full_set", False  # zero-shot: nothing to order, nothing refused
    assert shot_order(cfg, type("B", (), {"name": "x", "eval": bench.eval, "full_set": None})()) is None


def test_shot_order_keys_the_before_evaluation_only_where_shots_are_drawn(tmp_path):
    """The before-evaluation cache key moves with eval.shot_order under a protocol with shots, and not elsewhere
    (the embedded default keeps its key); the report's seed groups read it the same way."""
    from unlearn.config import compose_config
    from unlearn.pipeline import before_cache_path
    from unlearn.report import setting_of

    def key(*overrides):
        cfg = compose_config(["eval.cache_before=true", "logger=none", *overrides], tmp_path / "run",
                             tmp_path / "cache")
        return before_cache_path(cfg, tmp_path / "vanilla"), OmegaConf.to_container(cfg, resolve=True)

    assert key("data=mllmu_bench")[1]["eval"]["shot_order"] == "full_set"  # their eval.py's order by default
    shots = ["eval.protocol=mllmu_bench", "eval.mc_mode=generate", "eval.mc_also=null"]
    (full, full_cfg), (lookup, lookup_cfg) = key(*shots), key(*shots, "eval.shot_order=lookup")
    assert full != lookup
    assert setting_of(full_cfg)["eval.shot_order"] == "full_set" and "eval.shot_order" not in setting_of(lookup_cfg)
    assert key(*shots, "eval.few_shot=false")[0] == key(*shots, "eval.few_shot=false", "eval.shot_order=lookup")[0]
    # one person per task: no order to keep (MMUnlearner's protocol by default; shot_people of 1 for both tasks)
    one = [*shots, "eval.shot_people={mc: 1, cloze: 1}"]
    assert key(*one)[0] == key(*one, "eval.shot_order=lookup")[0] != key(*shots, "eval.shot_people={mc: 1, cloze: 2}")[0]
    mm = ["eval.protocol=mmunlearner", "eval.mc_mode=generate", "eval.mc_also=null"]
    assert key(*mm)[0] == key(*mm, "eval.shot_order=lookup")[0] and "eval.shot_order" not in setting_of(key(*mm)[1])
    assert key(*mm, "eval.shot_people={cloze: 2}")[0] != key(*mm, "eval.shot_people={cloze: 2}",
                                                              "eval.shot_order=lookup")[0]
    (embedded, embedded_cfg), (other, _) = key(), key("eval.shot_order=lookup")
    assert embedded == other and "eval.shot_order" not in setting_of(embedded_cfg)
    # and a config without the key (the code before it) keys the embedded and the lookup-order runs alike
    for overrides, expected in (((), embedded), (shots, lookup)):
        cfg = compose_config(["eval.cache_before=true", "logger=none", *overrides], tmp_path / "run", tmp_path / "cache")
        with open_dict(cfg):
            del cfg.eval["shot_order"]
        assert before_cache_path(cfg, tmp_path / "vanilla") == expected


def test_idefics2_draws_one_person_a_task_so_its_shot_order_keys_nothing(tmp_path):
    """Under data=mllmu_bench Idefics2 draws one shot person per task (SHOT_PEOPLE), so eval.shot_order cannot
    move its records: its model config's families (model.model_types) say so, and its before-evaluation key and
    seed group are the same for full_set and lookup (until the forty-seventh session a change re-evaluated it);
    LLaVA's cloze draws two, and stays keyed; eval.shot_people of two is keyed on Idefics2 too."""
    from unlearn.config import compose_config
    from unlearn.pipeline import before_cache_path
    from unlearn.report import setting_of

    ckpt = tmp_path / "checkpoint"
    ckpt.mkdir()
    (ckpt / "config.json").write_text("{}")

    def key(model, *overrides):
        cfg = compose_config(["eval.cache_before=true", "logger=none", "data=mllmu_bench", "data.path=/data/MLLMU",
                              f"model={model}", f"model.path={ckpt}", *overrides], tmp_path / "run", tmp_path / "c")
        return before_cache_path(cfg, ckpt), setting_of(OmegaConf.to_container(cfg, resolve=True))

    (full, full_setting), (lookup, _) = key("idefics2_8b"), key("idefics2_8b", "eval.shot_order=lookup")
    assert full == lookup and "eval.shot_order" not in full_setting
    two = "eval.shot_people={mc: 1, cloze: 2}"
    assert key("idefics2_8b", two)[0] != key("idefics2_8b", two, "eval.shot_order=lookup")[0]
    (full, full_setting), (lookup, _) = key("llava_1_5_7b"), key("llava_1_5_7b", "eval.shot_order=lookup")
    assert full != lookup and full_setting["eval.shot_order"] == "full_set"


def test_full_set_is_read_only_where_eval_shot_order_full_set_reads_it(tmp_path, monkeypatch):
    """A Full_Set that cannot be read (a hub id offline, never cached) stops only the runs that order shots by
    it: eval.shot_order=lookup (the refusal's own advice), the embedded protocol and zero-shot runs load."""
    import unlearn.data.mllmu_bench as mllmu_bench
    from unlearn.data.benchmark import load_mllmu_bench
    from unlearn.data.fixtures import write_mllmu_bench_fixture
    from unlearn.pipeline import shot_order

    snapshot = write_mllmu_bench_fixture(tmp_path / "MLLMU-Bench")

    def unreachable(*a, **k):
        raise RuntimeError("Full_Set unreachable")

    monkeypatch.setattr(mllmu_bench, "full_set_ids", unreachable)
    bench = load_mllmu_bench(str(snapshot), "forget_15", cache_dir=tmp_path / "cache")
    cfg = OmegaConf.create({"data": {"name": "mllmu_bench"},
                            "eval": {"protocol": "mllmu_bench", "few_shot": True, "shot_order": "lookup"}})
    assert shot_order(cfg, bench) is None
    cfg.eval.shot_order = "full_set"
    with pytest.raises(RuntimeError, match="Full_Set unreachable"):
        shot_order(cfg, bench)

