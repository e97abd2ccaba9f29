"""eval.protocol: MLLMU-Bench's own prompts, few-shot and limits, held against its eval.py string for string.

The expected strings are written out by hand from the official eval.py (franciscoliu/MLLMU-Bench, read
through its copy YokeYao/MLLMU-Bench eval.py at 5762ad6); each cites the lines it comes from.
"""

import pytest
from PIL import Image

from unlearn.eval.items import EvalItem
from unlearn.eval.protocol import (EmbeddedPrompts, MllmuBenchPrompts, draw_shot_people, encode_prompt, few_shot,
                                   make_prompts, official_max_new_tokens, render)

OPTS = ("Doctor", "Nurse", "Pilot", "Chef")


def mc(pid, modality, question, answer_index=1, split="forget", j=0):
    return EvalItem(f"{split}/{pid}/mc/{modality}/{j}", split, modality, "mc", pid, "", question,
                    OPTS[answer_index], OPTS, answer_index)


def free(task, pid, modality, question, answer, split="forget", j=0):
    return EvalItem(f"{split}/{pid}/{task}/{modality}/{j}", split, modality, task, pid, "", question, answer)


# --- LLaVA-1.5 prompts, character for character ------------------------------------------------------------
CASES = {
    # eval.py 359-361 (`evaluate_classification`, image-textual), options from `formulate_prompt_with_options` 113-128
    "mc image+text": (
        mc(1, "multimodal", "What is this person's job?"), [],
        "USER: <image>\nWhat is this person's job?\nA: Doctor\nB: Nurse\nC: Pilot\nD: Chef\n"
        "Just give ONE letter representing the answer directly.\nASSISTANT:"),
    # eval.py 413-416 (pure-text)
    "mc text": (
        mc(1, "text", "What is Jane Doe's job?"), [],
        "USER:\nWhat is Jane Doe's job?\nA: Doctor\nB: Nurse\nC: Pilot\nD: Chef\n"
        "Just give ONE letter representing the answer directly.\nASSISTANT:"),
    # eval.py 348-357 (one shot per few-shot question) then 359-361
    "mc image+text few-shot": (
        mc(2, "multimodal", "Where was this person born?"), [mc(1, "multimodal", "What is this person's job?", 2)],
        "USER: <image>\nQuestion: What is this person's job?\nA: Doctor\nB: Nurse\nC: Pilot\nD: Chef\n"
        "Correct Answer: C\n"
        "USER: <image>\nWhere was this person born?\nA: Doctor\nB: Nurse\nC: Pilot\nD: Chef\n"
        "Just give ONE letter representing the answer directly.\nASSISTANT:"),
    # eval.py 402-411 then 413-416
    "mc text few-shot": (
        mc(2, "text", "Where was Max born?"), [mc(1, "text", "What is Jane's job?", 0), mc(1, "text", "Age?", 3, j=1)],
        "USER:\nQuestion: What is Jane's job?\nA: Doctor\nB: Nurse\nC: Pilot\nD: Chef\nCorrect Answer: A\n"
        "USER:\nQuestion: Age?\nA: Doctor\nB: Nurse\nC: Pilot\nD: Chef\nCorrect Answer: D\n"
        "USER:\nWhere was Max born?\nA: Doctor\nB: Nurse\nC: Pilot\nD: Chef\n"
        "Just give ONE letter representing the answer directly.\nASSISTANT:"),
    # eval.py 731 (`evaluate_generation`, Image_Textual): note the trailing space after "ASSISTANT:"
    "generation image+text": (
        free("gen", 1, "multimodal", "Where does this person live?", "Oslo"), [],
        "USER: <image>\nWhere does this person live?\nAnswer the question based on your trained knowledge in one "
        "sentence accurately in ENGLISH.\nASSISTANT: "),
    # eval.py 751 (Pure_Text): "USER: " on one line, no "accurately"
    "generation text": (
        free("gen", 1, "text", "Where does Jane live?", "Oslo"), [],
        "USER: Where does Jane live?\nAnswer the question based on your trained knowledge in one sentence in "
        "ENGLISH.\nASSISTANT:"),
    # eval.py 585 (blank and instruction), 606-607 (Image_Textual prompt)
    "cloze image+text": (
        free("cloze", 1, "multimodal", "This person works as a __.", "nurse"), [],
        "USER: <image>\nThis person works as a [Blank].\n"
        "Please **ONLY** provide the correct answer that should replace the [Blank].\nASSISTANT:"),
    # eval.py 585, 608 (Pure_Text prompt)
    "cloze text": (
        free("cloze", 1, "text", "Jane works as a __.", "nurse"), [],
        "USER:\nJane works as a [Blank].\n"
        "Please **ONLY** provide the correct answer that should replace the [Blank].\nASSISTANT:"),
    # eval.py 534 (shot question), 597-600 (image shots: "USER:<image>", no space), 606-607
    "cloze image+text few-shot": (
        free("cloze", 2, "multimodal", "This person lives in __.", "Oslo"),
        [free("cloze", 1, "multimodal", "This person works as a __.", "nurse"),
         free("cloze", 3, "multimodal", "This person was born in __.", "Rome")],
        "USER:<image>\nThis person works as a [Blank].\n"
        "Please **ONLY** provide the correct answer that should replace the [Blank].\nCorrect Answer: nurse\n"
        "USER:<image>\nThis person was born in [Blank].\n"
        "Please **ONLY** provide the correct answer that should replace the [Blank].\nCorrect Answer: Rome\n"
        "USER: <image>\nThis person lives in [Blank].\n"
        "Please **ONLY** provide the correct answer that should replace the [Blank].\nASSISTANT:"),
    # eval.py 545 (shot question), 601-604 (text shots), 608
    "cloze text few-shot": (
        free("cloze", 2, "text", "Max lives in __.", "Oslo"), [free("cloze", 1, "text", "Jane works as a __.", "nurse")],
        "USER:\nJane works as a [Blank].\n"
        "Please **ONLY** provide the correct answer that should replace the [Blank].\nCorrect Answer: nurse\n"
        "USER:\nMax lives in [Blank].\n"
        "Please **ONLY** provide the correct answer that should replace the [Blank].\nASSISTANT:"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_llava_prompts_are_the_official_strings(case):
    item, shots, expected = CASES[case]
    assert render(item, shots) == expected
    key = (item.split, item.task, item.modality)
    assert MllmuBenchPrompts("llava", {key: shots}).text(item) == expected


def test_official_generation_limits():
    """eval.py: max_new_tokens=50 in every generate call (367, 372, 428, 615, 622, 743, 754), except
    Idefics2's pure-text classification (423): 5."""
    text_mc, image_mc = mc(1, "text", "q"), mc(1, "multimodal", "q")
    gen, cloze = free("gen", 1, "text", "q", "a"), free("cloze", 1, "multimodal", "q", "a")
    for it in (text_mc, image_mc, gen, cloze):
        assert official_max_new_tokens("llava", it) == 50
        assert official_max_new_tokens("qwen2_vl", it) == 50
    assert official_max_new_tokens("idefics2", text_mc) == 5
    assert [official_max_new_tokens("idefics2", it) for it in (image_mc, gen, cloze)] == [50, 50, 50]
    assert MllmuBenchPrompts("idefics2", {}, max_new_tokens=7).limit(text_mc) == 7  # eval.max_new_tokens wins
    assert EmbeddedPrompts().limit(gen) == 12 and EmbeddedPrompts(3).limit(gen) == 3


def test_replies_stop_where_their_generate_stops(tiny_model):
    """Their `model.generate(..., do_sample=False)` sets no eos: the checkpoint's generation config decides."""
    model, proc = tiny_model
    model.generation_config.eos_token_id = [proc.tokenizer.eos_token_id, 7]
    assert MllmuBenchPrompts().stop(model, proc) == [proc.tokenizer.eos_token_id, 7]
    assert EmbeddedPrompts().stop(model, proc) == proc.stop_token_id
    model.generation_config.eos_token_id = None
    assert MllmuBenchPrompts().stop(model, proc) == proc.stop_token_id


# --- Few-shot: drawn, seeded, excluded from scoring ----------------------------------------------------------
def _split(split, people, n_mc=2, n_cloze=1):
    items = []
    for p in people:
        for modality in ("multimodal", "text"):
            items += [mc(p, modality, f"q{p}{j}", split=split, j=j) for j in range(n_mc)]
            items += [free("cloze", p, modality, f"c{p}{j} __", "x", split=split, j=j) for j in range(n_cloze)]
            items.append(free("gen", p, modality, f"g{p}", "y", split=split))
    return items


def test_few_shot_draw_is_seeded_and_follows_the_official_counts():
    people = list(range(10, 30))
    assert draw_shot_people(people, 2, 0, "forget", "cloze") == draw_shot_people(people, 2, 0, "forget", "cloze")
    draws = {tuple(draw_shot_people(people, 2, s, "forget", "cloze")) for s in range(10)}
    assert len(draws) > 5  # the seed moves the draw
    by_split = {"forget": _split("forget", people), "retain": [], "untouched": _split("untouched", [1, 2, 3])}
    shots = few_shot(by_split, lambda s: by_split[s], "llava", 0)
    people_of = {k: {s.person for s in v} for k, v in shots.items()}
    # eval.py 262-265: one MC person (LLaVA and Idefics2); 500-503: two cloze people on LLaVA, one on Idefics2
    assert len(people_of[("forget", "mc", "multimodal")]) == 1
    assert len(people_of[("forget", "cloze", "multimodal")]) == 2
    assert people_of[("forget", "mc", "multimodal")] == people_of[("forget", "mc", "text")]
    # every MC question of the shot person is a shot (eval.py 288-303), in order, with its modality
    assert [s.uid for s in shots[("forget", "mc", "text")]] == [
        f"forget/{p}/mc/text/{j}" for p in people_of[("forget", "mc", "text")] for j in range(2)]
    # the celebrities: cloze few-shot (mode retain_celebrity is in eval.py 596's list), MC none (346's list)
    assert ("untouched", "mc", "multimodal") not in shots and ("untouched", "cloze", "text") in shots
    idefics = few_shot(by_split, lambda s: by_split[s], "idefics2", 0)
    assert len({s.person for s in idefics[("forget", "cloze", "text")]}) == 1


def test_celebrity_cloze_shots_are_looked_up_among_the_fictitious_profiles():
    """eval.py 501-514: the celebrity IDs drawn are looked up in --few_shot_data, Full_Set (the fictitious
    profiles): no profile with such an ID, no shot and every celebrity item scored; a profile sharing the ID
    gives its cloze questions, and the celebrity items of those indices are not scored (keyed by ID)."""
    fictitious = _split("forget", [10, 11]) + _split("retain", [12, 13])
    split_of = {"forget": [it for it in fictitious if it.split == "forget"],
                "retain": [it for it in fictitious if it.split == "retain"]}
    proc = type("P", (), {"family": "llava"})()
    apart = {"untouched": _split("untouched", [1, 2, 3])}
    prompts = make_prompts("mllmu_bench", proc, apart, lambda s: {**split_of, **apart}[s], seed=0)
    assert prompts.shots[("untouched", "cloze", "text")] == []  # zero-shot
    assert prompts.scored(apart["untouched"]) == apart["untouched"]
    shared = {"untouched": _split("untouched", [12, 13, 3])}  # two celebrities share a profile's ID
    prompts = make_prompts("mllmu_bench", proc, shared, lambda s: {**split_of, **shared}[s], seed=0)
    shots = prompts.shots[("untouched", "cloze", "text")]
    chosen = set(draw_shot_people([12, 13, 3], 2, 0, "untouched", "cloze"))
    assert chosen & {12, 13}  # the draw reaches a shared ID, so the lookup is exercised
    assert {s.person for s in shots} == chosen & {12, 13} and all(s.split == "retain" for s in shots)
    kept = {it.uid for it in prompts.scored(shared["untouched"])}
    dropped = [it for it in shared["untouched"] if it.uid not in kept]
    assert {(it.person, it.task) for it in dropped} == {(p, "cloze") for p in chosen & {12, 13}}


def _bench_row(source_id, cloze_types):
    """A row as MLLMU-Bench's parquet holds it: a string ID, a portrait, MC and cloze lists."""
    import io

    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG")
    mcq = [{"Question": f"q{k}", "Options": dict(zip("ABCD", OPTS)), "Correct_Answer": "A"} for k in range(2)]
    return {"ID": source_id, "image": {"bytes": buf.getvalue(), "path": None},
            "Classification_Task": {"Image_Textual_Questions": mcq, "Pure_Text_Questions": mcq},
            "Generation_Task": [{"Question": "g", "Ground_Truth": "y", "Type": "Pure_Text"}],
            "Mask_Task": [{"Question": f"{source_id} c{k} __", "Ground_Truth": "x", "Type": t}
                          for k, t in enumerate(cloze_types)]}


def test_celebrity_cloze_shots_through_the_loader_match_by_the_files_id_and_skip_by_list_position():
    """The loader renumbers celebrities (their IDs may repeat the fictitious ones), so the lookup of
    eval.py 501-514 must match the file's own ID, not the renumbered person; and 588-592 skip a celebrity's
    question by its index in the whole Mask_Task list, here a different question than the per-form index."""
    from unlearn.data import mllmu_bench as mb
    from unlearn.eval.items import flatten

    fictitious = mb.convert_eval([_bench_row("1", ["Image_Textual", "Pure_Text"]),
                                  _bench_row("2", ["Image_Textual", "Pure_Text"])], "retain_95", {})
    celebrities = mb.convert_eval([_bench_row(s, ["Pure_Text", "Pure_Text", "Image_Textual"]) for s in "129"],
                                  "Retain_Set", {}, untouched=True)
    assert not {r["ID"] for r in celebrities} & {r["ID"] for r in fictitious}  # renumbered apart
    pixels = lambda images: [None for _ in images]
    split_of = {"forget": [], "retain": flatten("retain", fictitious, pixels),
                "untouched": flatten("untouched", celebrities, pixels)}
    proc = type("P", (), {"family": "llava"})()
    prompts = make_prompts("mllmu_bench", proc, {"untouched": split_of["untouched"]}, split_of.__getitem__, seed=0)
    drawn = draw_shot_people([r["ID"] for r in celebrities], 2, 0, "untouched", "cloze")
    shared = {r["source_id"] for r in celebrities if r["ID"] in drawn} & {"1", "2"}
    assert shared  # the seed's draw reaches a celebrity that shares a profile's ID
    for modality in ("multimodal", "text"):
        shots = prompts.shots[("untouched", "cloze", modality)]
        assert shots and {s.split for s in shots} == {"retain"} and {s.source_id for s in shots} == shared
    cloze = [it for it in split_of["untouched"] if it.task == "cloze"]
    kept = {it.uid for it in prompts.scored(cloze)}
    dropped = {(it.source_id, it.modality, it.position) for it in cloze if it.uid not in kept}
    # a shot profile's text question sits at position 1 of its list, its image one at 0; the celebrity's
    # position 1 is text (dropped), its position 0 is text and its image question is at 2 (both kept)
    assert dropped == {(sid, "text", 1) for sid in shared}


def test_shot_questions_are_not_scored_and_test_shots_come_from_the_forget_rows():
    forget, test = _split("forget", [1, 2, 3, 4]), _split("test", [1, 2, 3, 4])
    by_split = {"forget": forget, "test": test}
    prompts = make_prompts("mllmu_bench", type("P", (), {"family": "llava"})(), by_split,
                           lambda s: {"forget": forget, "test": test}[s], seed=3)
    shot_people = prompts.shot_people()
    kept = prompts.scored(forget + test)
    for split in ("forget", "test"):
        for task in ("mc", "cloze"):
            out = shot_people[f"{split}/{task}"]
            assert not [it for it in kept if it.split == split and it.task == task and it.person in out]
            assert [it for it in kept if it.split == split and it.task == task]  # the others are scored
        gen = [it for it in kept if it.split == split and it.task == "gen"]
        assert len(gen) == 8  # generation has no few-shot and skips nothing (eval.py 660-)
    # test prompts show the forget people's original questions (their few-shot file, not the paraphrases)
    assert all(s.split == "forget" for s in prompts.shots[("test", "mc", "multimodal")])
    off = make_prompts("mllmu_bench", type("P", (), {"family": "llava"})(), by_split, None, 3, use_few_shot=False)
    assert off.scored(forget + test) == forget + test and off.shots == {}
    # eval.shot_people: MMUnlearner's MLLMU_eval.py draws one person for cloze too, where LLaVA's official is two
    assert {k: len(v) for k, v in shot_people.items()} == {"forget/mc": 1, "forget/cloze": 2, "test/mc": 1,
                                                           "test/cloze": 2}
    one = make_prompts("mllmu_bench", type("P", (), {"family": "llava"})(), by_split,
                       lambda s: {"forget": forget, "test": test}[s], seed=3, shot_people={"mc": 1, "cloze": 1})
    assert {k: len(v) for k, v in one.shot_people().items()} == {"forget/mc": 1, "forget/cloze": 1, "test/mc": 1,
                                                                 "test/cloze": 1}
    assert len(one.scored(forget + test)) > len(kept)  # fewer shot people, fewer questions left unscored
    with pytest.raises(ValueError, match="eval.protocol='chat'"):
        make_prompts("chat", None)


# --- Model input: the rendered string, each <image> expanded as the stock processors do -------------------
def _image(color):
    return Image.new("RGB", (32, 32), color)


def test_embedded_model_gets_the_rendered_string_and_one_image_block_per_placeholder(tiny_model):
    _, proc = tiny_model
    pixels = proc.pixel_values([_image((200, 0, 0)), _image((0, 200, 0))])
    item = mc(2, "multimodal", "where was this person born ?")
    item.pixel_values = pixels[1]
    shot = mc(1, "multimodal", "what is the occupation of this person ?")
    shot.pixel_values = pixels[0]
    prompts = MllmuBenchPrompts("llava", {("forget", "mc", "multimodal"): [shot]})
    ex = prompts.example(proc, item)
    assert ex.input_ids[0] == proc.tokenizer.bos_token_id
    assert ex.input_ids.count(proc.image_token_id) == 2 * proc.num_image_tokens
    assert len(ex.pixel_values) == 2 and ex.pixel_values[0] is shot.pixel_values  # shot images first
    words = proc.tokenizer.encode(prompts.text(item), add_special_tokens=False)
    assert len(ex.input_ids) == 1 + len(words) + 2 * (proc.num_image_tokens - 1)
    with pytest.raises(ValueError, match="1 <image> placeholders for 2 images"):
        encode_prompt(proc, "USER: <image>\nq", [pixels[0], pixels[1]])


@pytest.mark.parametrize("family,split", [("llava", False), ("idefics2", False), ("idefics2", True)])
def test_real_families_tokenize_like_their_stock_processor(family, split):
    """A few-shot prompt with two images: the ids equal LlavaProcessor / Idefics2Processor's on the same string
    (split: Idefics2's image splitting on, as its checkpoints' processor evaluates)."""
    from tests.test_model_adapters import stock_processor
    from unlearn.models.chat_processor import ChatProcessor
    from unlearn.models.chat_template import ChatTemplate
    from unlearn.models.tiny_real import build_tiny_real

    model, tok, images = build_tiny_real(family)
    if split:
        images.do_image_splitting = True
    stock = stock_processor(family, tok, images)
    proc = ChatProcessor(tok, images, model.config, ChatTemplate())
    pics = [_image((200, 0, 0)), _image((0, 0, 200))]
    text = render(mc(2, "multimodal", "Where was this person born?"),
                  [mc(1, "multimodal", "What is this person's job?")])
    ours = encode_prompt(proc, text, proc.pixel_values(pics))
    expected = stock(text=[text], images=pics, return_tensors="pt", add_special_tokens=False)["input_ids"][0]
    assert ours[0] == tok.bos_token_id and ours[1:] == expected.tolist()


@pytest.mark.parametrize("family", ["llava", "idefics2", "qwen2_vl"])
def test_real_families_generate_from_a_two_image_few_shot_prompt(family):
    from unlearn.data.collate import collate
    from unlearn.eval.scoring import greedy_answers
    from unlearn.models.chat_processor import ChatProcessor
    from unlearn.models.chat_template import ChatTemplate
    from unlearn.models.tiny_real import build_tiny_real

    model, tok, images = build_tiny_real(family)
    proc = ChatProcessor(tok, images, model.config, ChatTemplate())
    pics = proc.pixel_values([_image((200, 0, 0)), _image((0, 0, 200)), _image((0, 200, 0))])
    shot, a, b = mc(1, "multimodal", "q1"), mc(2, "multimodal", "q2"), mc(3, "text", "q3")
    shot.pixel_values, a.pixel_values = pics[0], pics[1]
    prompts = MllmuBenchPrompts(family, {("forget", "mc", "multimodal"): [shot], ("forget", "mc", "text"): [b]})
    batch = collate([prompts.example(proc, it) for it in (a, b)], tok.pad_token_id, padding_side="left")
    replies = greedy_answers(model.eval(), proc, batch, [3, 2])
    assert len(replies) == 2 and all(len(r.split()) <= n for r, n in zip(replies, [3, 2]))


# --- End to end: the pipeline's evaluation of the tiny model under eval.protocol=mllmu_bench ----------------
def test_pipeline_evaluates_the_tiny_model_under_the_mllmu_bench_protocol(tiny_model, small_benchmark, tmp_path):
    from unlearn.config import compose_config
    from unlearn.pipeline import RunContext, evaluate

    cfg = compose_config(["eval.protocol=mllmu_bench", "eval.mc_mode=generate", "eval.mc_also=null",
                          "eval.max_people=4", "eval.max_new_tokens=3", "logger=none",
                          "eval.tasks=[mc,gen,cloze]"], tmp_path / "run",
                         tmp_path / "cache")
    assert cfg.eval.scorer == "mllmu_bench"  # the protocol brings its scorer
    model, proc = tiny_model
    ctx = RunContext(cfg, small_benchmark, model, proc, tmp_path)
    metrics, records = evaluate(ctx, "before", ["retain", "test"])
    by = {(r["split"], r["task"]) for r in records}
    # the small benchmark's one forget (test) person is drawn as the MC and cloze shot: as in eval.py,
    # nothing of theirs is left to score but the generation questions
    assert len(small_benchmark.eval["test"]) == 1
    assert by == {("retain", "mc"), ("retain", "gen"), ("retain", "cloze"), ("test", "gen")}
    assert all("reply" in r for r in records)
    # the shots' people are not scored: one MC person and two cloze people of the four
    retain_people = {r["person"] for r in records if r["split"] == "retain" and r["task"] == "gen"}
    assert len({r["person"] for r in records if r["split"] == "retain" and r["task"] == "mc"}) == 3
    assert len({r["person"] for r in records if r["split"] == "retain" and r["task"] == "cloze"}) == 2
    assert len(retain_people) == 4
    assert "before/retain/multimodal/mc_acc" in metrics
    again, _ = evaluate(ctx, "before", ["retain", "test"])
    assert again == metrics  # seeded shots, greedy replies

    bad = compose_config(["eval.protocol=mllmu_bench", "logger=none"], tmp_path / "run", tmp_path / "cache")
    with pytest.raises(ValueError, match="eval.mc_mode=generate and eval.mc_also=null"):
        evaluate(RunContext(bad, small_benchmark, model, proc, tmp_path), "before", ["retain"])


def test_celebrity_mc_shows_no_shot_but_skips_a_shared_profiles_questions():
    """eval.py runs the MC lookup in every mode (263-303) and skips the looked-up indices (334, 389); only the
    few-shot block is limited to forget / retain / test (346). A celebrity sharing the drawn ID with a
    fictitious profile loses those MC questions, unshown; the others are all scored."""
    from unlearn.data import mllmu_bench as mb
    from unlearn.eval.items import flatten

    fictitious = mb.convert_eval([_bench_row("1", ["Pure_Text"]), _bench_row("2", ["Pure_Text"])], "retain_95", {})
    celebrities = mb.convert_eval([_bench_row(s, ["Pure_Text"]) for s in "129"], "Retain_Set", {}, untouched=True)
    pixels = lambda images: [None for _ in images]
    split_of = {"forget": [], "retain": flatten("retain", fictitious, pixels),
                "untouched": flatten("untouched", celebrities, pixels)}
    proc = type("P", (), {"family": "llava"})()
    mc_items = [it for it in split_of["untouched"] if it.task == "mc"]
    for seed, drawn in ((1, "2"), (0, "9")):  # draw_shot_people: seed 1 draws the second celebrity, 0 the third
        prompts = make_prompts("mllmu_bench", proc, {"untouched": split_of["untouched"]}, split_of.__getitem__,
                               seed=seed)
        drawn_ids = draw_shot_people([r["ID"] for r in celebrities], 1, seed, "untouched", "mc")
        assert [r["source_id"] for r in celebrities if r["ID"] in drawn_ids] == [drawn]
        assert ("untouched", "mc", "multimodal") not in prompts.shots  # no few-shot block in celebrity MC
        dropped = [it for it in mc_items if it not in prompts.scored(mc_items)]
        if drawn == "9":  # no profile has the ID: every celebrity MC question is scored
            assert dropped == []
        else:  # the profile's MC questions, both forms, at their positions in the celebrity sharing its ID
            assert {(it.source_id, it.modality, it.position) for it in dropped} == {
                (drawn, m, j) for m in ("multimodal", "text") for j in range(2)}


@pytest.mark.parametrize("split, untouched, ids", [("ft_Data", None, ("112", "0112")),
                                                    ("forget_5", False, ("112", "0112")),
                                                    ("Retain_Set", True, ("7", "7"))])
def test_a_person_twice_in_one_split_is_a_bad_row_named_by_its_id(split, untouched, ids):
    """A person is one row per split: in ft_Data and the fictitious splits by number ('0112' is person 112, as
    the forget/retain overlap check reads it), among the renumbered celebrities by source ID."""
    from unlearn.data import mllmu_bench as mb
    from unlearn.data.manu_text_rule import MANU_NAME_QUESTIONS
    from unlearn.data.schema import BadRows, RowError

    if untouched is None:
        def rows():
            return [{"ID": s, "image": _bench_row(s, [])["image"], "metadata": [
                {"Question": MANU_NAME_QUESTIONS[4], "Answer": f"P{s}"}]} for s in ids]

        def convert(bad=None):
            return mb.convert_train(rows(), split, bad=bad)
    else:
        def convert(bad=None):
            return mb.convert_eval([_bench_row(s, ["Pure_Text"]) for s in ids], split, {}, untouched=untouched,
                                   bad=bad)
    with pytest.raises(RowError, match=rf"row 1.*ID '{ids[1]}' appears twice"):
        convert()
    bad = BadRows("skip")
    kept = convert(bad)
    assert [r["source_id"] for r in kept] == [ids[0]]
    assert bad.skipped == {split: {"row dropped: ID appears twice": 1}}


def test_a_split_whose_every_question_is_a_shot_is_warned(caplog):
    """Its cells read "-" without a word (eval.max_people=2 under debug=fast, until 2026-12-05)."""
    import logging
    from types import SimpleNamespace

    from unlearn.pipeline import warn_all_shots

    item = lambda split, task, person: SimpleNamespace(split=split, task=task, modality="text",  # noqa: E731
                                                       person=person)
    evaluated = [item("retain", "cloze", 101), item("retain", "cloze", 102), item("retain", "mc", 101),
                 item("forget", "mc", 1)]
    with caplog.at_level(logging.WARNING, logger="unlearn.pipeline"):
        assert warn_all_shots(evaluated, [evaluated[2], evaluated[3]]) == ["retain/cloze/text"]
    assert "no question left to score in retain/cloze/text" in caplog.text
    assert warn_all_shots(evaluated, evaluated) == []
    # a kind the protocol never scores (MMUnlearner's CLEAR evaluation: no test split) is not called shots
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="unlearn.pipeline"):
        assert warn_all_shots(evaluated, [evaluated[2], evaluated[3]], SimpleNamespace(name="x", shots={})) == []
    assert "not scored under eval.protocol=x" in caplog.text and "few-shot" not in caplog.text
    shots = SimpleNamespace(name="mllmu_bench", shots={("retain", "cloze", "text"): [evaluated[0]]})
    assert warn_all_shots(evaluated, [evaluated[2], evaluated[3]], shots) == ["retain/cloze/text"]


def test_a_protocol_refused_for_a_family_names_only_what_that_family_has():
    """eval.protocol=mmunlearner_clear on Idefics2 named eval.protocol=clear as the way out, which Idefics2 refuses
    too (until 2026-12-05)."""
    from types import SimpleNamespace

    from unlearn.eval.protocol import make_prompts

    for family in ("idefics2", "llava"):
        with pytest.raises(ValueError, match=r"has none: use eval.protocol=embedded$"):
            make_prompts("mmunlearner_clear", SimpleNamespace(family=family))
        with pytest.raises(ValueError, match=r"has none: use eval.protocol=embedded$"):
            make_prompts("clear", SimpleNamespace(family=family))


def test_every_cloze_blank_is_shown_as_blank_as_their_str_replace_does():
    """eval.py 534, 545, 585: `question.replace("__", "[Blank]")` replaces every blank, not the first alone."""
    from unlearn.data.mllmu_prompts import format_cloze_question

    question = "Born in __ on __, this person works as a ___."
    assert format_cloze_question(question) == (
        "Born in [Blank] on [Blank], this person works as a [Blank]_."
        "\nPlease **ONLY** provide the correct answer that should replace the [Blank].")
