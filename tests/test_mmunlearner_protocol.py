"""eval.protocol=mmunlearner: MMUnlearner's MLLMU_eval.py (Z1zs/MMUnlearner at fa77c66), held against a port of
its Qwen2-VL branches (`evaluate_classification` 218-236, and 274-277 with 289-292 for text-only;
`evaluate_generation` 611-624, 634-641; `evaluate_fill_in_the_blank` 490-506) and its shot draw (`few_shots_num`,
main() 731-735).

The port renders Qwen2-VL-Instruct's chat template (tests/test_written_sequences.py) over their conversation and
expands the image as Qwen2VLProcessor does (written out there: its stock processor needs torchvision); it
shares no code with unlearn/eval/protocol.py.
"""

import pytest
from PIL import Image

from tests.test_protocol import _split, free, mc
from tests.test_written_sequences import QWEN2_VL_CHAT_TEMPLATE, qwen2_vl_processed
from unlearn.data.writings import IMAGE_MARKUP
from unlearn.eval.protocol import MllmuBenchPrompts, MmunlearnerPrompts, few_shot, make_prompts

MC_INSTRUCTION = "Just give ONE letter representing the answer directly."
CLOZE_INSTRUCTION = "\nPlease **ONLY** provide the correct answer that should replace the [Blank]."


def their_qwen2_vl_prompt(item):
    """MLLMU_eval.py's Qwen2-VL prompt for one item, zero-shot (`few_shot_prompt = ""`), and whether the
    processor is handed the item's image (True), no image (None: `processor(images=None, ...)`) or is not called
    (False: `tokenizer(prompt)`)."""
    from transformers.utils.chat_template_utils import render_jinja_template

    few_shot_prompt = ""
    multimodal = item.modality == "multimodal"

    def chat(text):  # conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", ...}]}]
        conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
        (prompt,), _ = render_jinja_template(conversations=[conversation], chat_template=QWEN2_VL_CHAT_TEMPLATE,
                                             add_generation_prompt=True)
        return prompt

    if item.task == "mc":
        options = dict(zip("ABCD", item.options))
        question_with_options = f"{item.question}\n" + "\n".join(f"{k}: {v}" for k, v in options.items())
        if multimodal:
            return chat(f"{few_shot_prompt}\n{question_with_options}\n{MC_INSTRUCTION}"), True
        return f"{few_shot_prompt}USER:\n{question_with_options}\n{MC_INSTRUCTION}\nASSISTANT:", False
    if item.task == "gen":
        if multimodal:
            return chat(f"{item.question}\nAnswer the question based on your trained knowledge in one sentence "
                        f"accurately in ENGLISH."), True
        return (f"USER: {item.question}\nAnswer the question based on your trained knowledge in one sentence in "
                f"ENGLISH.\nASSISTANT:"), False
    question = item.question.replace("__", "[Blank]") + CLOZE_INSTRUCTION
    return chat(f"{few_shot_prompt}\n{question}" if multimodal else question), (True if multimodal else None)


def their_qwen2_vl_ids(tok, image_processor, item, image):
    """Their input ids: `processor(images=..., text=prompt)` (the image pads expanded, with images=None nothing
    expanded, as Qwen2VLProcessor has no image_grid_thw then) or `tokenizer(prompt)`."""
    prompt, given = their_qwen2_vl_prompt(item)
    if given:
        (prompt,), _ = qwen2_vl_processed(image_processor, [prompt], [{"image": image}])
    return tok(prompt)["input_ids"]


def _items():
    return [mc(1, "multimodal", "What is this person's job?"), mc(1, "text", "What is Jane Doe's job?"),
            free("gen", 1, "multimodal", "Where does this person live?", "In Cork."),
            free("gen", 1, "text", "Where does Jane Doe live?", "In Cork."),
            free("cloze", 1, "multimodal", "This person lives in __.", "Cork"),
            free("cloze", 1, "text", "Jane Doe lives in __.", "Cork")]


@pytest.fixture(scope="module")
def qwen2_vl():
    from unlearn.models.chat_processor import ChatProcessor
    from unlearn.models.chat_template import ChatTemplate
    from unlearn.models.tiny_real import build_tiny_real

    model, tok, images = build_tiny_real("qwen2_vl")
    return model, tok, images, ChatProcessor(tok, images, model.config, ChatTemplate())


@pytest.mark.parametrize("index", range(6))
def test_qwen2_vl_prompts_are_their_branches(qwen2_vl, index):
    model, tok, images, proc = qwen2_vl
    item = _items()[index]
    image = Image.new("RGB", (32, 32), (200, 40, 90))
    if item.modality == "multimodal":
        item.pixel_values = proc.pixel_values([image])[0]
    prompts = MmunlearnerPrompts("qwen2_vl")
    # the string (the tiny word tokenizer cannot see whitespace), then the ids
    assert prompts.text(item).replace("<image>", IMAGE_MARKUP["qwen2_vl"]) == their_qwen2_vl_prompt(item)[0]
    ex = prompts.example(proc, item)
    assert ex.input_ids == their_qwen2_vl_ids(tok, images, item, image)
    image_pad = model.config.image_token_id
    if item.modality == "multimodal":
        assert ex.pixel_values == [item.pixel_values] and ex.input_ids.count(image_pad) > 1
    else:  # the text-only cloze keeps its turn's image entry, unexpanded and with no image; the others have none
        assert ex.pixel_values is None
        assert ex.input_ids.count(image_pad) == (item.task == "cloze")


def test_qwen2_vl_generates_from_every_prompt_including_the_imageless_placeholder(qwen2_vl):
    """The text-only cloze prompt holds an <|image_pad|> with no image: the model reads it as a token, as
    Qwen2-VL's forward does without pixel_values."""
    from unlearn.data.collate import collate
    from unlearn.eval.scorers import SCORERS
    from unlearn.eval.scoring import greedy_answers, score_generation, score_mc

    model, tok, _, proc = qwen2_vl
    items = _items()
    pixels = proc.pixel_values([Image.new("RGB", (32, 32), (0, 90, 200))] * 3)
    for it, px in zip([it for it in items if it.modality == "multimodal"], pixels):
        it.pixel_values = px
    prompts = MmunlearnerPrompts("qwen2_vl")
    for group in ([it for it in items if it.modality == "multimodal"], [it for it in items if it.modality == "text"]):
        batch = collate([prompts.example(proc, it) for it in group], tok.pad_token_id, padding_side="left")
        replies = greedy_answers(model.eval(), proc, batch, [3] * len(group))
        assert len(replies) == len(group)
    assert all(prompts.limit(it) == 50 for it in items)  # max_new_tokens=50 in every Qwen2-VL branch
    # one evaluation batch of both forms: the imageless placeholder's rows are generated apart from the images
    free_items = [it for it in items if it.task != "mc"]
    records = score_generation(model, proc, free_items, 3, SCORERS["mmunlearner"], prompts)
    assert [r["uid"] for r in records] == [it.uid for it in free_items]
    mc_items = [it for it in items if it.task == "mc"]
    assert len(score_mc(model, proc, mc_items, "generate", scorer=SCORERS["mmunlearner"], prompts=prompts)) == 2


def test_one_person_per_task_and_llava_keeps_mllmu_benchs_strings(tiny_model):
    """main(): few_shots_num = 1 for MC and cloze alike (MLLMU-Bench draws 2 cloze people on LLaVA); the LLaVA
    strings are MLLMU-Bench's."""
    _, proc = tiny_model
    people = list(range(10, 30))
    by_split = {"forget": _split("forget", people), "retain": []}
    ours = make_prompts("mmunlearner", proc, by_split, lambda s: by_split[s], seed=0)
    theirs = make_prompts("mllmu_bench", proc, by_split, lambda s: by_split[s], seed=0)
    assert isinstance(ours, MmunlearnerPrompts) and ours.name == "mmunlearner"
    count = lambda prompts, task: len({s.person for s in prompts.shots[("forget", task, "text")]})  # noqa: E731
    assert (count(ours, "mc"), count(ours, "cloze")) == (1, 1)
    assert (count(theirs, "mc"), count(theirs, "cloze")) == (1, 2)
    assert few_shot(by_split, lambda s: by_split[s], "llava", 0, {"mc": 1, "cloze": 1}) == ours.shots
    item = mc(1, "multimodal", "What is this person's job?")
    assert ours.text(item) == MllmuBenchPrompts("llava", ours.shots).text(item)
    zero = make_prompts("mmunlearner", proc, by_split, lambda s: by_split[s], seed=0, shot_people={"mc": 0})
    assert count(zero, "mc") == 0 and count(zero, "cloze") == 1  # a partial eval.shot_people keeps the other's 1


def test_families_and_shots_their_code_cannot_run_are_refused(qwen2_vl):
    from unlearn.models.chat_processor import ChatProcessor
    from unlearn.models.chat_template import ChatTemplate
    from unlearn.models.tiny_real import build_tiny_real

    *_, proc = qwen2_vl
    by_split = {"forget": _split("forget", [1, 2, 3])}
    with pytest.raises(ValueError, match="Qwen2-VL with shots .*eval.few_shot=false"):
        make_prompts("mmunlearner", proc, by_split, lambda s: by_split[s], seed=0)
    assert make_prompts("mmunlearner", proc, by_split, lambda s: by_split[s], seed=0, use_few_shot=False).shots == {}
    zero = make_prompts("mmunlearner", proc, by_split, lambda s: by_split[s], seed=0,
                        shot_people={"mc": 0, "cloze": 0})
    assert not any(zero.shots.values())
    model, tok, images = build_tiny_real("idefics2")
    with pytest.raises(ValueError, match="not model family 'idefics2': use eval.protocol=mllmu_bench"):
        make_prompts("mmunlearner", ChatProcessor(tok, images, model.config, ChatTemplate()), by_split,
                     lambda s: by_split[s], seed=0, use_few_shot=False)


@pytest.mark.slow
def test_the_qwen2_vl_preset_runs_on_their_collate_and_prompts(tmp_path, monkeypatch):
    """experiment=mmunlearner_qwen2_vl_official through train.py's path on a tiny Qwen2-VL and a tiny MLLMU-Bench
    snapshot: the mask pass and the update read MMUnlearner's chat-template rows, the mask covers the language
    group's eligible tensors and is applied (full parameters, no LoRA), and every item is asked with MLLMU_eval.py's
    Qwen2-VL prompts, zero-shot."""
    import torch
    from safetensors.torch import load_file

    import unlearn.data.written as written
    import unlearn.eval.protocol as protocol
    from unlearn.config import compose_config
    from unlearn.data.fixtures import write_mllmu_bench_fixture
    from unlearn.models.tiny_real import write_tiny_real
    from unlearn.pipeline import run

    rows, asked = set(), set()
    write, render = written.written_text, protocol.render_mmunlearner_qwen2_vl
    monkeypatch.setattr(written, "written_text", lambda q, a, form, family, w, key="sequences": (
        rows.add((key, w, family, form)), write(q, a, form, family, w, key))[1])
    monkeypatch.setattr(protocol, "render_mmunlearner_qwen2_vl", lambda item: (
        asked.add((item.task, item.modality)), render(item))[1])
    source = write_tiny_real("qwen2_vl", tmp_path / "qwen2_vl")
    root = write_mllmu_bench_fixture(tmp_path / "mllmu", num_people=6)
    cfg = compose_config(["experiment=mmunlearner_qwen2_vl_official", f"data.path={root}", f"model.path={source}",
                          "data.forget_split=forget_15", "model.portrait_size=32", "logger=none", "eval.max_people=2",
                          "eval.max_new_tokens=2", "eval.tasks=[mc,gen,cloze]"], tmp_path / "run", tmp_path / "cache")
    assert (cfg.mmunlearner.lora.enabled, cfg.mmunlearner.apply_mask, cfg.eval.few_shot) == (False, True, False)
    metrics = run(cfg)
    assert rows == {("mmunlearner.sequences", "mmunlearner", "qwen2_vl", form) for form in ("multimodal", "text")}
    assert asked == {(task, modality) for task in ("mc", "gen", "cloze") for modality in ("multimodal", "text")}
    masks = load_file(str(next((tmp_path / "run").rglob("*mask*.safetensors"))))
    assert masks and all(n.startswith("model.language_model.") for n in masks)
    before = load_file(str(source / "model.safetensors"))
    after = {k: v for f in (tmp_path / "run" / "model").glob("*.safetensors") for k, v in load_file(f).items()}
    # it unlearned (as theirs, tensors outside the mask take unmasked ascent, and every tensor the retain descent)
    assert any(k in after and not torch.equal(before[k].to(after[k].dtype), after[k]) for k in before)
    assert {"after/forget/multimodal/mc_acc", "after/forget/text/cloze_acc"} <= set(metrics)
    # as theirs (MLLMU_manifold.py: a bfloat16 load, AdamW on it), the update writes its steps into bfloat16 weights,
    # and the run records and says how many of them cannot take a step of lr (callbacks/lost_updates.py)
    import json

    (lost,) = json.loads((tmp_path / "run" / "metrics.json").read_text())["artifacts"]["lost_steps"]
    assert list(lost["dtypes"]) == ["bfloat16"] and lost["lrs"] == [1e-5]  # their README: --lr 1e-5
    assert lost["fraction"] > 0.25


def test_under_fsdp_a_rank_without_one_kind_of_row_still_generates_for_it(qwen2_vl, monkeypatch):
    """FSDP gathers weights in every forward, so ranks must run the same forwards: a rank whose batch holds rows
    of one kind (with or without an image) still generates for the other kind (another rank has it) on a
    stand-in row of that kind, so the vision blocks run or not as on the other ranks, and drops the reply.
    Simulated: `sharded` true, the ranks' agreement answering that some rank has each kind, and a generation
    that names its call and row."""
    import unlearn.eval.scoring as scoring

    model, tok, _, proc = qwen2_vl
    free_items = [it for it in _items() if it.task != "mc"]
    images = [it for it in free_items if it.modality == "multimodal"]
    for it, px in zip(images, proc.pixel_values([Image.new("RGB", (32, 32), (0, 90, 200))] * len(images))):
        it.pixel_values = px
    texts = [it for it in free_items if it.modality == "text"]
    prompts = MmunlearnerPrompts("qwen2_vl")
    calls, asked = [], []

    def generate(model, proc, batch, limits, stop=None):
        calls.append(batch)
        return [f"call {len(calls)} row {j}" for j in range(len(limits))]

    monkeypatch.setattr(scoring, "greedy_answers", generate)
    monkeypatch.setattr(scoring, "sharded", lambda m: True)
    monkeypatch.setattr(scoring, "in_step", lambda n, sync: asked.append((n, sync)) or 1)
    # image rows only: its rows, then a stand-in without an image
    replies = scoring.protocol_replies(model, proc, images, prompts)
    assert asked == [(1, True), (0, True)]  # every rank asks about both kinds, in the same order
    assert [len(b["input_ids"]) for b in calls] == [len(images), 1]
    assert "pixel_values" in calls[0] and "pixel_values" not in calls[1]
    assert replies == [f"call 1 row {j}" for j in range(len(images))]  # the stand-in's reply is dropped
    # rows without an image only: a stand-in with a blank image first, then its rows
    calls.clear()
    asked.clear()
    replies = scoring.protocol_replies(model, proc, texts, prompts)
    assert asked == [(0, True), (1, True)]
    assert [len(b["input_ids"]) for b in calls] == [1, len(texts)]
    assert "pixel_values" in calls[0] and "pixel_values" not in calls[1]
    assert replies == [f"call 2 row {j}" for j in range(len(texts))]
    # one process: the kind it lacks is skipped
    monkeypatch.setattr(scoring, "sharded", lambda m: False)
    monkeypatch.setattr(scoring, "in_step", lambda n, sync: n)
    calls.clear()
    assert scoring.protocol_replies(model, proc, images, prompts) == [f"call 1 row {j}" for j in range(len(images))]
    assert len(calls) == 1
