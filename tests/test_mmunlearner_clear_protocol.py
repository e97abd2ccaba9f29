"""eval.protocol=mmunlearner_clear: MMUnlearner's CLEAR_eval.py (Z1zs/MMUnlearner at fa77c66), held against a port of
its prompts (`eval_classification` 44-99 with `formulate_prompt_with_options` 196-211, `eval_classification_real`
213-248, `eval_generation` 102-193) and of the tasks CLEAR_eval.sh runs. The port renders Qwen2-VL-Instruct's chat
template (tests/test_written_sequences.py) over their conversations and shares no code with unlearn/eval/protocol.py.
"""

from __future__ import annotations

import pytest
from PIL import Image

from tests.test_written_sequences import QWEN2_VL_CHAT_TEMPLATE, qwen2_vl_processed
from unlearn.data.writings import IMAGE_MARKUP
from unlearn.eval.items import EvalItem
from unlearn.eval.protocol import MmunlearnerClearPrompts, make_prompts

NAMES = ("Ann Lee", "Bo Tran", "Cy Ford", "Di Park")


def _item(task, attribute, modality="multimodal", split="forget", question="What is the name of the person in the "
          "image?", answer="Bo Tran"):
    options = NAMES if task == "mc" else ()
    return EvalItem(f"{split}/1/{task}/{modality}/{attribute}", split, modality, task, 1, attribute, question, answer,
                    options, NAMES.index(answer) if task == "mc" else -1)


def their_prompt(item):
    """CLEAR_eval.py's prompt of `item` and whether the processor is handed its image."""
    from transformers.utils.chat_template_utils import render_jinja_template

    def chat(content):
        (prompt,), _ = render_jinja_template(conversations=[[{"role": "user", "content": content}]],
                                             chat_template=QWEN2_VL_CHAT_TEMPLATE, add_generation_prompt=True)
        return prompt

    if item.task == "mc":  # formulate_prompt_with_options(question, options, answer), options in the item's order
        options_str = "\n".join([f"{chr(ord('A') + i)}. {value}" for i, value in enumerate(item.options)])
        prompt = f"{item.question}\n{options_str}\n"
        return chat([{"type": "image"}, {"type": "text", "text": prompt}]), True
    if item.modality == "multimodal":  # the VQA loop: a caption question with its image
        return chat([{"type": "image"}, {"type": "text", "text": item.question}]), True
    return chat([{"type": "text", "text": item.question}]), False  # the QA loop: the TOFU question alone


CASES = [_item("mc", "name"), _item("mc", "untouched", split="untouched", question="Which city is this?",
                                    answer="Cy Ford"),
         _item("gen", "caption", question="Describe the image in detail.", answer="A man in a hat."),
         _item("gen", "tofu", modality="text", question="Where was Bo Tran born?", answer="In Oslo.")]


@pytest.fixture(scope="module")
def qwen2_vl():
    from unlearn.models.chat_processor import ChatProcessor
    from unlearn.models.chat_template import ChatTemplate
    from unlearn.models.tiny_real import build_tiny_real

    model, tok, images = build_tiny_real("qwen2_vl")
    return model, tok, images, ChatProcessor(tok, images, model.config, ChatTemplate())


@pytest.mark.parametrize("index", range(len(CASES)))
def test_prompts_are_clear_evals(qwen2_vl, index):
    model, tok, images, proc = qwen2_vl
    item = CASES[index]
    image = Image.new("RGB", (32, 32), (20, 140, 90))
    if item.modality == "multimodal":
        item.pixel_values = proc.pixel_values([image])[0]
    prompts = MmunlearnerClearPrompts("qwen2_vl")
    theirs, given = their_prompt(item)
    assert prompts.text(item).replace("<image>", IMAGE_MARKUP["qwen2_vl"]) == theirs  # the string, then the ids
    if given:
        (theirs,), _ = qwen2_vl_processed(images, [theirs], [{"image": image}])
    ex = prompts.example(proc, item)
    assert ex.input_ids == tok(theirs)["input_ids"]
    assert (ex.pixel_values is not None) == given
    assert prompts.limit(item) == 50 and MmunlearnerClearPrompts("qwen2_vl", 7).limit(item) == 7


def test_only_clear_evals_tasks_are_scored():
    """CLEAR_eval.sh runs forget, retain, realface and realworld: face-recognition and real_* MC, caption and TOFU
    generation; nothing of the test split, no caption MC, no name or real_* generation, no likelihoods."""
    kept = [_item("mc", "name"), _item("mc", "name", split="retain"), _item("mc", "untouched", split="untouched"),
            _item("gen", "caption"), _item("gen", "tofu", modality="text", split="retain")]
    dropped = [_item("mc", "caption"), _item("mc", "name", split="test"), _item("gen", "caption", split="test"),
               _item("gen", "name"), _item("gen", "untouched", split="untouched"), _item("prob", "caption"),
               _item("prob", "name")]
    assert MmunlearnerClearPrompts("qwen2_vl").scored(kept + dropped) == kept


def test_other_families_and_other_data_are_refused(tmp_path, qwen2_vl):
    from unlearn.config import compose_config
    from unlearn.models.processor import VLProcessor
    from unlearn.settings import check_run_settings

    *_, proc = qwen2_vl
    assert isinstance(make_prompts("mmunlearner_clear", proc), MmunlearnerClearPrompts)
    embedded = VLProcessor.__new__(VLProcessor)  # the embedded model: a LLaVA-like family with no chat template
    with pytest.raises(ValueError, match=r"eval.protocol=mmunlearner_clear .* family 'llava'"):
        make_prompts("mmunlearner_clear", embedded)
    cfg = compose_config(["data=mllmu_bench", "eval.protocol=mmunlearner_clear"], tmp_path, tmp_path / "cache")
    with pytest.raises(ValueError, match=r"eval.protocol=mmunlearner_clear .* data=mllmu_bench"):
        check_run_settings(cfg)
    # chosen by hand on data=clear, whose default scorer is mllmu_bench's: a reply "(B)" would read as no letter
    by_hand = ["data=clear", "model=qwen2_vl_7b", "eval.protocol=mmunlearner_clear", "eval.mc_mode=generate",
               "eval.mc_also=null", "eval.splits=[forget, retain, untouched]", "eval.tasks=[mc, gen]"]
    with pytest.raises(ValueError, match=r"set eval.scorer=mmunlearner \(got 'mllmu_bench'"):
        check_run_settings(compose_config(by_hand, tmp_path, tmp_path / "cache"))
    check_run_settings(compose_config([*by_hand, "eval.scorer=mmunlearner"], tmp_path, tmp_path / "cache"))
    preset = ["experiment=mmunlearner_clear_official"]
    check_run_settings(compose_config(preset, tmp_path, tmp_path / "cache"))
    check_run_settings(compose_config([*preset, "eval.relearn.splits=[forget, test]"], tmp_path, tmp_path / "c"))
    for override, match in (("eval.splits=[forget, test]", r"eval.splits has test"),
                            ("eval.relearn.enabled=true", r"eval.relearn.splits has test"),
                            ("eval.tasks=[mc, gen, prob]", r"eval.tasks has \['prob'\]"),
                            ("eval.mc_mode=likelihood", r"set eval.mc_mode=generate"),
                            ("eval.scorer=mllmu_bench", r"set eval.scorer=mmunlearner")):
        cfg = compose_config([*preset, override], tmp_path, tmp_path / "cache")
        with pytest.raises(ValueError, match=match):
            check_run_settings(cfg)


def test_mmunlearners_clear_presets_evaluate_with_it(tmp_path):
    from unlearn.config import compose_config

    for preset in ("mmunlearner_clear_official", "mmunlearner_clear_baselines"):
        cfg = compose_config([f"experiment={preset}"], tmp_path, tmp_path / "cache")
        assert (cfg.eval.protocol, cfg.eval.scorer, cfg.eval.mc_mode, cfg.eval.mc_also) == (
            "mmunlearner_clear", "mmunlearner", "generate", None)
        assert list(cfg.eval.splits) == ["forget", "retain", "untouched"] and list(cfg.eval.tasks) == ["mc", "gen"]
