"""manu.inputs=official against a port of the MANU authors' statistics loaders.

`their_*` below is written from franciscoliu/MANU data_process/data_preprocess.py (`LLAVA_multimodal_Dataset`,
`LLAVA_unimodal_Dataset` with `extract_person_name` / `replace_placeholders`, `train_collate_fn_llava`,
`train_collate_fn_idefics`), run on a tiny MLLMU-Bench snapshot through each family's stock transformers
processor; it shares no code with unlearn/manu/official_inputs.py.
"""

from __future__ import annotations

import io
import json
import re

import pytest
import torch
from PIL import Image

from unlearn.data.collate import collate
from unlearn.manu.official_inputs import OfficialStatisticSequences, official_text
from unlearn.models.chat_processor import ChatProcessor, ChatTemplate
from unlearn.models.tiny_real import build_tiny_real

# idefics2-8b's processor_config.json chat template
IDEFICS2_CHAT_TEMPLATE = (
    "{% for message in messages %}{{message['role'].capitalize()}}{% if message['content'][0]['type'] == 'image' %}"
    "{{':'}}{% else %}{{': '}}{% endif %}{% for line in message['content'] %}{% if line['type'] == 'text' %}"
    "{{line['text']}}{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}")
THEIR_NAME_QUESTIONS = ["What is the name of the person in this profile?", "What is this person's name?",
                        "What is the name of this person?", "What is this person's full name?"]  # a subset


# ---------------------------------------------------------------- their loaders, ported
def their_extract_name(text):
    text = text.strip().rstrip(".")
    if "named" in text:
        return text[text.index("named") + len("named"):].strip()
    match = re.search(r"\bis\b (.+)", text)
    return match.group(1).strip() if match else text


def their_replace(text, name):
    for old, new in [("this person", name), ("the person", name), ("The person", name), ("This person", name),
                     ("this person's", f"{name}'s"), ("This person's", f"{name}'s"), ("this individual", name),
                     ("This individual", name), ("the individual", name), ("The individual", name),
                     ("this profile", name)]:
        text = text.replace(old, new)
    return text


def their_multimodal_rows(df):
    return [{"image": Image.open(io.BytesIO(row["image"]["bytes"])).convert("RGB"), "question": qa["Question"],
             "answer": qa["Answer"]} for row in df for qa in json.loads(row["metadata"])
            if qa["Question"] and qa["Answer"]]


def their_unimodal_rows(df):
    out = []
    for row in df:
        meta, name = json.loads(row["metadata"]), None
        for qa in meta:
            if qa["Question"].strip() in THEIR_NAME_QUESTIONS:
                name = their_extract_name(qa["Answer"].strip())
                break
        for qa in meta:
            q, a = qa["Question"].strip(), qa["Answer"].strip()
            if q in THEIR_NAME_QUESTIONS and their_extract_name(a) == name:
                continue
            out.append({"question": their_replace(q, name), "answer": their_replace(a, name)})
    return out


def their_collate(family, processor, rows, modality):
    processor.tokenizer.padding_side = "right"
    if family == "llava":
        if modality == "multimodal":
            texts = [f"USER: <image>\n{r['question']}\nASSISTANT: {r['answer']}" for r in rows]
            return processor(text=texts, images=[r["image"] for r in rows], padding=True, truncation=True,
                             return_tensors="pt")
        texts = [f"USER:{r['question']}\nASSISTANT: {r['answer']}" for r in rows]
        return processor.tokenizer(text=texts, padding=True, truncation=True, return_tensors="pt")
    turn = ([{"type": "image"}] if modality == "multimodal" else [])
    texts = [processor.apply_chat_template(
        [{"role": "user", "content": turn + [{"type": "text", "text": r["question"]}]},
         {"role": "assistant", "content": [{"type": "text", "text": r["answer"]}]}],
        add_generation_prompt=False).strip() for r in rows]
    if modality == "multimodal":
        return processor(text=texts, images=[[r["image"]] for r in rows], padding=True, truncation=True,
                         return_tensors="pt")
    return processor.tokenizer(text=texts, padding=True, truncation=True, return_tensors="pt")


def stock_processor(family, tok, images):
    from transformers import Idefics2Processor, LlavaProcessor

    if family == "llava":
        return LlavaProcessor(image_processor=images, tokenizer=tok, patch_size=14,
                              vision_feature_select_strategy="default", num_additional_image_tokens=1)
    return Idefics2Processor(image_processor=images, tokenizer=tok, image_seq_len=4,
                             chat_template=IDEFICS2_CHAT_TEMPLATE)


def with_bos(tok):
    """The real LLaVA and Idefics2 tokenizers put bos first whenever special tokens are added; the tiny word
    tokenizer does not until given their post-processor."""
    from tokenizers import processors

    tok._tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{tok.bos_token} $A", special_tokens=[(tok.bos_token, tok.bos_token_id)])
    assert tok("x")["input_ids"][0] == tok.bos_token_id
    return tok


# ---------------------------------------------------------------- tests
def test_official_text_is_their_collate_string():
    assert official_text("Q?", "A.", "multimodal", "llava") == "USER: <image>\nQ?\nASSISTANT: A."
    assert official_text("Q?", "A.", "text", "llava") == "USER:Q?\nASSISTANT: A."
    assert official_text("Q?", "A.", "multimodal", "idefics2") == \
        "User:<image>Q?<end_of_utterance>\nAssistant: A.<end_of_utterance>"
    assert official_text("Q?", "A.", "text", "idefics2") == \
        "User: Q?<end_of_utterance>\nAssistant: A.<end_of_utterance>"
    with pytest.raises(ValueError, match="manu.inputs=official.*qwen2_vl"):
        official_text("Q?", "A.", "text", "qwen2_vl")


def test_idefics2_strings_are_what_its_chat_template_renders():
    from jinja2 import Template

    template = Template(IDEFICS2_CHAT_TEMPLATE)
    for form, turn in (("multimodal", [{"type": "image"}]), ("text", [])):
        rendered = template.render(messages=[
            {"role": "user", "content": turn + [{"type": "text", "text": "Q?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "A."}]}], add_generation_prompt=False)
        assert rendered.strip() == official_text("Q?", "A.", form, "idefics2")


@pytest.fixture(scope="module")
def mllmu(tmp_path_factory):
    from datasets import load_dataset

    from unlearn.data.benchmark import load_mllmu_bench
    from unlearn.data.fixtures import write_mllmu_bench_fixture

    root = write_mllmu_bench_fixture(tmp_path_factory.mktemp("mllmu"), num_people=6)
    bench = load_mllmu_bench(str(root), "forget_15", cache_dir=tmp_path_factory.mktemp("cache"))
    rows = bench.train_rows("forget")
    ft = {r["ID"]: r for r in load_dataset("parquet", data_files=str(root / "ft_Data" / "*.parquet"),
                                           split="train").cast_column("image", _raw_image())}
    their_df = [ft[r["source_id"]] for r in rows]  # their parquet: ft_Data's rows of the forget IDs
    return rows, their_df


def _raw_image():
    from datasets import Image as ImageFeature

    return ImageFeature(decode=False)


@pytest.mark.parametrize("family", ["llava", "idefics2"])
@pytest.mark.parametrize("modality", ["multimodal", "text"])
def test_statistics_batches_equal_their_collate(mllmu, family, modality):
    rows, their_df = mllmu
    model, tok, images = build_tiny_real(family)
    with_bos(tok)
    ours_proc = ChatProcessor(tok, images, model.config, ChatTemplate())
    ours = OfficialStatisticSequences(rows, ours_proc, modality, family)
    their_rows = (their_multimodal_rows if modality == "multimodal" else their_unimodal_rows)(their_df)
    assert len(ours) == len(their_rows) == len(rows) * (5 if modality == "multimodal" else 4)
    theirs = their_collate(family, stock_processor(family, tok, images), their_rows, modality)
    batch = collate([ours[i] for i in range(len(ours))], tok.pad_token_id)
    assert batch["input_ids"].tolist() == theirs["input_ids"].tolist()
    assert torch.equal(batch["attention_mask"], theirs["attention_mask"])
    if modality == "multimodal":
        assert torch.allclose(batch["pixel_values"].float(), theirs["pixel_values"].float().reshape(
            batch["pixel_values"].shape))
    else:
        assert "pixel_values" not in batch


def test_text_rows_name_the_person_and_drop_the_name_question(mllmu):
    rows, _ = mllmu
    model, tok, images = build_tiny_real("llava")
    ours = OfficialStatisticSequences(rows, ChatProcessor(tok, images, model.config, ChatTemplate()), "text", "llava")
    name = rows[0]["name"]
    mine = [(q, a) for r, _, q, a in ours.index if r == 0]
    assert len(mine) == len(rows[0]["qa"]) - 1
    assert all("name of" not in q for q, _ in mine)
    assert any(a.startswith(f"{name} works as") for _, a in mine)  # the answer names the person too


def test_unknown_inputs_and_family_are_refused(tmp_path, small_benchmark):
    from types import SimpleNamespace

    from unlearn.methods.manu import statistics_datasets

    model, tok, images = build_tiny_real("qwen2_vl")
    ctx = SimpleNamespace(processor=ChatProcessor(tok, images, model.config, ChatTemplate()),
                          benchmark=small_benchmark)
    with pytest.raises(ValueError, match="manu.inputs='bogus'"):
        statistics_datasets(ctx, inputs="bogus")
    with pytest.raises(ValueError, match="manu.inputs=official.*qwen2_vl"):
        statistics_datasets(ctx, inputs="official")


def test_official_preset_reads_their_inputs(tmp_path):
    from unlearn.config import compose_config

    assert compose_config(["experiment=manu_official"], tmp_path, tmp_path).manu.inputs == "official"
    assert compose_config([], tmp_path, tmp_path).manu.inputs == "template"
