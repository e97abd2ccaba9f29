"""`*.sequences` (unlearn/data/written.py) against ports of the official collates and datasets.

`their_*` below is written from franciscoliu/MANU and franciscoliu/MLLMU-Bench data_process/data_preprocess.py
(`LLAVA_multimodal_Dataset`, `LLAVA_unimodal_Dataset` with `extract_person_name` / `replace_placeholders`,
`train_collate_fn_llava`, `train_collate_fn_idefics`) and Z1zs/MMUnlearner data_process/CLEAR_process.py
(`train_collate_clear`), run on a tiny MLLMU-Bench snapshot through each family's stock transformers processor
with the checkpoint's chat template, and from somvy/multimodal_unlearning (CLEAR) mm/dataset.py
(`convert_mm_data_to_model_format`, `mm_data_collator_preprocessor`) on a tiny Qwen2-VL, whose stock processor
needs torchvision (not installed here): its image-token expansion is written out; it shares no code with
unlearn/data/written.py. transformers 4.45's legacy
LLaVA merge, which gave the image positions ignore_index, is written out where the labels are compared.
"""

from __future__ import annotations

import io
import json
import re

import pytest
import torch
from PIL import Image

from unlearn.data.collate import IGNORE, collate
from unlearn.data.written import WrittenSequences, qa_sequences, written_text
from unlearn.models.chat_processor import ChatProcessor
from unlearn.models.chat_template import ChatTemplate
from unlearn.models.tiny_real import build_tiny_real

# idefics2-8b's processor_config.json chat template
IDEFICS2_CHAT_TEMPLATE = (
    "{% for message in messages %}{{message['role'].capitalize()}}{% if message['content'][0]['type'] == 'image' %}"
    "{{':'}}{% else %}{{': '}}{% endif %}{% for line in message['content'] %}{% if line['type'] == 'text' %}"
    "{{line['text']}}{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}")
# llava-hf/llava-1.5-7b-hf's chat_template.json
LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}{# Render all text next #}{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}"
    "{% endfor %}{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}")
# Qwen2-VL-2B-Instruct's chat template (tokenizer_config.json)
QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in "
    "content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}"
    "Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] "
    "== 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}"
    "Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content "
    "%}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "<|im_start|>assistant\n{% endif %}")
THEIR_NAME_QUESTIONS = ["What is the name of the person in this profile?", "What is this person's name?",
                        "What is the name of this person?", "What is this person's full name?"]  # a subset


# ---------------------------------------------------------------- their datasets and collates, ported
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
                if name:
                    break
        for qa in meta:
            q, a = qa["Question"].strip(), qa["Answer"].strip()
            if q in THEIR_NAME_QUESTIONS and their_extract_name(a) == name:
                continue
            if q and a:
                out.append({"question": their_replace(q, name), "answer": their_replace(a, name)})
    return out


def their_chat_texts(processor, rows, modality):
    turn = [{"type": "image"}] if modality == "multimodal" else []
    return [processor.apply_chat_template(
        [{"role": "user", "content": turn + [{"type": "text", "text": r["question"]}]},
         {"role": "assistant", "content": [{"type": "text", "text": r["answer"]}]}],
        add_generation_prompt=False).strip() for r in rows]


def their_collate(writing, family, processor, rows, modality, legacy_merge=True):
    """Their batch: input_ids, attention_mask, pixel_values and labels (pads masked). `legacy_merge=False`: LLaVA
    under a processor config with patch_size, whose expanded image tokens stay in labels as input_ids has them."""
    processor.tokenizer.padding_side = "right"
    if family == "llava" and writing in ("manu", "mllmu_bench"):
        template = "USER: <image>\n{}\nASSISTANT: {}" if modality == "multimodal" else "USER:{}\nASSISTANT: {}"
        texts = [template.format(r["question"], r["answer"]) for r in rows]
    else:  # Idefics2 (MANU, MLLMU-Bench) and MMUnlearner's LLaVA: the processor's chat template
        texts = their_chat_texts(processor, rows, modality)
    if modality == "multimodal":
        images = [[r["image"]] for r in rows] if family == "idefics2" else [r["image"] for r in rows]
        batch = processor(text=texts, images=images, padding=True, truncation=True, return_tensors="pt")
    else:
        batch = processor.tokenizer(text=texts, padding=True, truncation=True, return_tensors="pt")
    labels = batch["input_ids"].clone()
    labels[labels == processor.tokenizer.pad_token_id] = -100
    # what their loss leaves out of the image: LLaVA, transformers 4.45's legacy merge gives the expanded image
    # positions ignore_index; Idefics2, the model's CrossEntropyLoss(ignore_index=image_token_id)
    if legacy_merge or family != "llava":
        labels[batch["input_ids"] == processor.tokenizer.convert_tokens_to_ids("<image>")] = -100
    batch["labels"] = labels
    # their collates hand the model these four and nothing else (Idefics2's pixel_attention_mask is dropped)
    return {k: batch[k] for k in ("input_ids", "attention_mask", "pixel_values", "labels") if k in batch}


def qwen2_vl_processed(image_processor, texts, rows):
    """Qwen2VLProcessor's text side, written out: each <|image_pad|> repeated grid_t * grid_h * grid_w /
    merge_size**2 times for its image (the rows' images in order), and the image processor's tensors."""
    images = [r["image"] for r in rows if r.get("image") is not None]
    pixels = dict(image_processor(images=images, return_tensors="pt")) if images else {}
    out, index = [], 0
    for text in texts:
        while "<|image_pad|>" in text:
            n = int(pixels["image_grid_thw"][index].prod()) // image_processor.merge_size ** 2
            text = text.replace("<|image_pad|>", "<|placeholder|>" * n, 1)
            index += 1
        out.append(text.replace("<|placeholder|>", "<|image_pad|>"))
    return out, pixels


def their_mmunlearner_qwen2_vl_batch(tok, image_processor, rows, answer_only, answer_ids="without_specials"):
    """MMUnlearner's CLEAR_process.py on a Qwen2-VL processor: `train_collate_clear` (the chat template over
    (image, question) and (answer), stripped, right padding, pads masked) or, with `answer_only`,
    `train_collate_clear_ansonly` (labels: the first place the row holds the answer's own ids, its special
    tokens dropped) or, with `answer_ids="without_first"`, data_preprocess.py's `train_collate_mllmu_ansonly`
    (the same rows; the answer's ids are tokenizer(answer)[1:])."""
    from transformers.utils.chat_template_utils import render_jinja_template

    texts = []
    for r in rows:
        turn = [{"type": "image"}] if r.get("image") is not None else []
        messages = [{"role": "user", "content": turn + [{"type": "text", "text": r["question"]}]},
                    {"role": "assistant", "content": [{"type": "text", "text": r["answer"]}]}]
        (text,), _ = render_jinja_template(conversations=[messages], chat_template=QWEN2_VL_CHAT_TEMPLATE,
                                           add_generation_prompt=False)
        texts.append(text.strip())
    texts, pixels = qwen2_vl_processed(image_processor, texts, rows)
    tok.padding_side = "right"
    batch = dict(tok(texts, padding=True, truncation=True, return_tensors="pt"), **pixels)
    labels = batch["input_ids"].clone()
    if not answer_only:
        labels[labels == tok.pad_token_id] = -100
    else:
        special = torch.tensor(tok.all_special_ids)
        for label, r in zip(labels, rows):
            answer_id = tok(r["answer"], return_tensors="pt")["input_ids"][0]
            if answer_ids == "without_first":
                answer_id = answer_id[1:]
            else:
                answer_id = answer_id[torch.isin(answer_id, special, invert=True)]
            for idx in range(len(label) - len(answer_id) + 1):
                if torch.equal(label[idx: idx + len(answer_id)], answer_id):
                    label[:idx] = -100
                    label[idx + len(answer_id):] = -100
                    break
    batch["labels"] = labels
    return batch


def their_clear_batch(tok, image_processor, rows, padding_side):
    """CLEAR's collate (mm/dataset.py) over rows {image or None, question, answer}: the chat template rendered
    with and without the answer, the prompt's tokens counted before the image is expanded, Qwen2VLProcessor's
    expansion of each <|image_pad|> into grid_t * grid_h * grid_w / merge_size**2 copies, and the label loop."""
    from transformers.utils.chat_template_utils import render_jinja_template

    def render(conversation, add_generation_prompt):
        (text,), _ = render_jinja_template(conversations=[conversation], chat_template=QWEN2_VL_CHAT_TEMPLATE,
                                           add_generation_prompt=add_generation_prompt)
        return text

    full_texts, counts = [], []
    for r in rows:
        conversation = [{"role": "user", "content": [{"type": "text", "text": r["question"]}]}]
        if r.get("image") is not None:
            conversation[0]["content"].insert(0, {"type": "image"})
        counts.append(len(tok.tokenize(render(conversation, True), add_special_tokens=True)))
        conversation.append({"role": "assistant", "content": [{"type": "text", "text": r["answer"]}]})
        full_texts.append(render(conversation, False))
    texts, pixels = qwen2_vl_processed(image_processor, full_texts, rows)
    tok.padding_side = padding_side
    batch = dict(tok(texts, padding="longest", return_tensors="pt"), **pixels)
    labels = batch["input_ids"].clone()
    for count, label in zip(counts, labels):
        real = (label != tok.pad_token_id).nonzero(as_tuple=True)[0]
        if padding_side == "left":
            label[:real[0] + count] = -100
        else:
            label[real[0]:real[0] + count] = -100
            label[real[-1] + 1:] = -100
    batch["labels"] = labels
    return batch


def stock_processor(family, tok, images):
    from transformers import Idefics2Processor, LlavaProcessor

    if family == "llava":
        return LlavaProcessor(image_processor=images, tokenizer=tok, patch_size=14,
                              vision_feature_select_strategy="default", num_additional_image_tokens=1,
                              chat_template=LLAVA_CHAT_TEMPLATE)
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


def knowing_the_snapshots_words(monkeypatch, rows, their_df):
    """The tiny word tokenizer, given every word of the snapshot: it reads an unknown word as <unk>, a special
    token, which an answer-only collate drops from the answer (real tokenizers spell every word)."""
    import unlearn.models.tiny_real as tiny_real

    words = sorted({w for r in their_multimodal_rows(their_df) for t in (r["question"], r["answer"]) for w in t.split()}
                   | {w for r in rows for qa in r["qa"] for t in qa.values() if isinstance(t, str) for w in t.split()})
    base = tiny_real.vocabulary
    monkeypatch.setattr(tiny_real, "vocabulary", lambda: base() + words)


# ---------------------------------------------------------------- tests
def test_written_text_is_their_collate_string():
    assert written_text("Q?", "A.", "multimodal", "llava", "manu") == "USER: <image>\nQ?\nASSISTANT: A."
    assert written_text("Q?", "A.", "text", "llava", "manu") == "USER:Q?\nASSISTANT: A."
    assert written_text("Q?", "A.", "multimodal", "llava", "mllmu_bench") == "USER: <image>\nQ?\nASSISTANT: A."
    assert written_text("Q?", "A.", "multimodal", "idefics2", "manu") == \
        "User:<image>Q?<end_of_utterance>\nAssistant: A.<end_of_utterance>"
    assert written_text("Q?", "A.", "text", "idefics2", "manu") == \
        "User: Q?<end_of_utterance>\nAssistant: A.<end_of_utterance>"
    assert written_text("Q?", "A.", "multimodal", "llava", "mmunlearner") == "USER: <image>\nQ? ASSISTANT: A."
    assert written_text("Q?", "A.", "text", "llava", "mmunlearner") == "USER: Q? ASSISTANT: A."
    assert written_text("Q?", "A.", "multimodal", "qwen2_vl", "clear") == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<image>Q?<|im_end|>\n"
        "<|im_start|>assistant\nA.<|im_end|>\n")
    with pytest.raises(ValueError, match="method.sequences=clear: .*no multimodal sequence for model family 'llava'"):
        written_text("Q?", "A.", "multimodal", "llava", "clear", key="method.sequences")
    with pytest.raises(ValueError, match="manu.sequences=manu: .*no text sequence for model family 'qwen2_vl'"):
        written_text("Q?", "A.", "text", "qwen2_vl", "manu", key="manu.sequences")
    with pytest.raises(ValueError, match="method.sequences=mllmu_bench: .*no text sequence"):
        written_text("Q?", "A.", "text", "llava", "mllmu_bench", key="method.sequences")


@pytest.mark.parametrize("writing,family,template", [("manu", "idefics2", IDEFICS2_CHAT_TEMPLATE),
                                                      ("mmunlearner", "llava", LLAVA_CHAT_TEMPLATE),
                                                      ("mmunlearner", "qwen2_vl", QWEN2_VL_CHAT_TEMPLATE)])
def test_chat_template_writings_are_what_the_templates_render(writing, family, template):
    from transformers.utils.chat_template_utils import render_jinja_template

    from unlearn.data.writings import IMAGE_MARKUP

    for form, turn in (("multimodal", [{"type": "image"}]), ("text", [])):
        messages = [{"role": "user", "content": turn + [{"type": "text", "text": "Q?"}]},
                    {"role": "assistant", "content": [{"type": "text", "text": "A."}]}]
        (rendered,), _ = render_jinja_template(conversations=[messages], chat_template=template)
        written = written_text("Q?", "A.", form, family, writing)
        assert rendered.strip() == written.replace("<image>", IMAGE_MARKUP.get(family, "<image>"))


def test_clear_writing_is_what_qwen2_vls_template_renders():
    from transformers.utils.chat_template_utils import render_jinja_template

    for form, turn in (("multimodal", [{"type": "image"}]), ("text", [])):
        messages = [{"role": "user", "content": turn + [{"type": "text", "text": "Q?"}]},
                    {"role": "assistant", "content": [{"type": "text", "text": "A."}]}]
        (rendered,), _ = render_jinja_template(conversations=[messages], chat_template=QWEN2_VL_CHAT_TEMPLATE)
        written = written_text("Q?", "A.", form, "qwen2_vl", "clear")
        assert rendered == written.replace("<image>", "<|vision_start|><|image_pad|><|vision_end|>")


@pytest.fixture(scope="module")
def mllmu(tmp_path_factory):
    from datasets import Image as ImageFeature
    from datasets import load_dataset

    from unlearn.data.benchmark import load_mllmu_bench
    from unlearn.data.fixtures import write_mllmu_bench_fixture

    root = write_mllmu_bench_fixture(tmp_path_factory.mktemp("mllmu"), num_people=6)
    bench = load_mllmu_bench(str(root), "forget_15", cache_dir=tmp_path_factory.mktemp("cache"))
    rows = bench.train_rows("forget")
    ft = {r["ID"]: r for r in load_dataset("parquet", data_files=str(root / "ft_Data" / "*.parquet"),
                                           split="train").cast_column("image", ImageFeature(decode=False))}
    return rows, [ft[r["source_id"]] for r in rows]  # their parquet: ft_Data's rows of the forget IDs


CASES = [("manu", "llava", "multimodal"), ("manu", "llava", "text"), ("manu", "idefics2", "multimodal"),
         ("manu", "idefics2", "text"), ("mllmu_bench", "llava", "multimodal"),
         ("mllmu_bench", "idefics2", "multimodal"), ("mmunlearner", "llava", "multimodal"),
         ("mmunlearner", "llava", "text")]


@pytest.mark.parametrize("writing,family,modality", CASES)
def test_batches_equal_their_collate(mllmu, writing, family, modality):
    rows, their_df = mllmu
    model, tok, images = build_tiny_real(family)
    with_bos(tok)
    ours = WrittenSequences(rows, ChatProcessor(tok, images, model.config, ChatTemplate()), modality, writing)
    if modality == "multimodal":
        their_rows = their_multimodal_rows(their_df)
    elif writing == "manu":
        their_rows = their_unimodal_rows(their_df)
    else:  # MMUnlearner's text-only rows come from its own datasets; the pairs here are ours, written by theirs
        their_rows = [{"question": q, "answer": a} for _, _, q, a in ours.index]
    assert len(ours) == len(their_rows) == len(rows) * (4 if (writing, modality) == ("manu", "text") else 5)
    theirs = their_collate(writing, family, stock_processor(family, tok, images), their_rows, modality)
    batch = collate([ours[i] for i in range(len(ours))], tok.pad_token_id)
    assert set(batch) == set(theirs)  # what the model is given, no more: no pixel_attention_mask on Idefics2
    assert batch["input_ids"].tolist() == theirs["input_ids"].tolist()
    assert torch.equal(batch["attention_mask"], theirs["attention_mask"])
    assert batch["labels"].tolist() == theirs["labels"].tolist()
    if family == "idefics2" and modality == "multimodal":  # the block's fake tokens count, its image tokens not
        assert (batch["labels"] == tok.convert_tokens_to_ids("<fake_token_around_image>")).any()
        assert not (batch["labels"] == tok.convert_tokens_to_ids("<image>")).any()
    if modality == "multimodal":
        assert torch.allclose(batch["pixel_values"].float(), theirs["pixel_values"].float().reshape(
            batch["pixel_values"].shape))
    else:
        assert "pixel_values" not in batch


@pytest.mark.parametrize("writing", ["mmunlearner", "mllmu_bench"])
def test_image_token_labels_equal_their_collate_under_a_processor_with_patch_size(mllmu, writing):
    """`<section>.image_labels=image_token`: LLaVA's image positions labelled with the image token id, as their
    collate's labels = input_ids leaves them when the processor expands <image> (MMUnlearner pins no version)."""
    from unlearn.models.loading import with_image_labels

    rows, their_df = mllmu
    model, tok, images = build_tiny_real("llava")
    with_bos(tok)
    proc = ChatProcessor(tok, images, model.config, ChatTemplate())
    ours = WrittenSequences(rows, with_image_labels(proc, "image_token", "method.image_labels"), "multimodal", writing)
    theirs = their_collate(writing, "llava", stock_processor("llava", tok, images), their_multimodal_rows(their_df),
                           "multimodal", legacy_merge=False)
    batch = collate([ours[i] for i in range(len(ours))], tok.pad_token_id)
    assert batch["input_ids"].tolist() == theirs["input_ids"].tolist()
    assert batch["labels"].tolist() == theirs["labels"].tolist()
    image = tok.convert_tokens_to_ids("<image>")
    n_image = int((batch["input_ids"] == image).sum())
    assert n_image > 0 and int((batch["labels"] == image).sum()) == n_image
    as_loaded = collate([WrittenSequences(rows, proc, "multimodal", writing)[i] for i in range(len(ours))],
                        tok.pad_token_id)
    assert not (as_loaded["labels"] == image).any()  # null: outside the loss, as before
    assert (as_loaded["labels"] != batch["labels"]).sum() == n_image  # and nothing else differs
    qwen, qtok, qimages = build_tiny_real("qwen2_vl")
    with pytest.raises(ValueError, match=r"method.image_labels=image_token: only LLaVA's .* 'qwen2_vl'"):
        with_image_labels(ChatProcessor(qtok, qimages, qwen.config, ChatTemplate()), "image_token",
                          "method.image_labels")


@pytest.mark.parametrize("modality", ["multimodal", "text"])
@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_clear_batches_equal_their_collate(mllmu, modality, padding_side):
    """CLEAR's labels start after its count of the prompt's tokens, taken with one <|image_pad|>: on an image
    pair the prompt's last (image tokens - 1) tokens carry loss, on a text-only pair none of them."""
    rows, their_df = mllmu
    model, tok, images = build_tiny_real("qwen2_vl")
    proc = ChatProcessor(tok, images, model.config, ChatTemplate())
    ours = WrittenSequences(rows, proc, modality, "clear")
    if modality == "multimodal":
        their_rows = their_multimodal_rows(their_df)
    else:
        their_rows = [{"question": q, "answer": a} for _, _, q, a in ours.index]
    assert len(ours) == len(their_rows) == len(rows) * 5
    theirs = their_clear_batch(tok, images, their_rows, padding_side)
    examples = [ours[i] for i in range(len(ours))]
    batch = collate(examples, tok.pad_token_id, padding_side=padding_side)
    assert batch["input_ids"].tolist() == theirs["input_ids"].tolist()
    assert torch.equal(batch["attention_mask"], theirs["attention_mask"])
    assert batch["labels"].tolist() == theirs["labels"].tolist()
    answer_start = tok.convert_tokens_to_ids("assistant")  # the last prompt token: the answer follows it
    for ex in examples:
        prompt_end = len(ex.input_ids) - ex.input_ids[::-1].index(answer_start)
        labelled = sum(label != IGNORE for label in ex.labels[:prompt_end])
        assert labelled == (ex.input_ids.count(model.config.image_token_id) - 1 if modality == "multimodal" else 0)
    if modality == "multimodal":
        for key in ("pixel_values", "image_grid_thw"):
            assert torch.equal(batch[key], theirs[key])


@pytest.mark.parametrize("modality", ["multimodal", "text"])
@pytest.mark.parametrize("answer_only,answer_ids", [(False, "without_specials"), (True, "without_specials"),
                                                    (True, "without_first")])
def test_mmunlearner_qwen2_vl_batches_equal_their_collate(mllmu, monkeypatch, modality, answer_only, answer_ids):
    """MMUnlearner's collate on Qwen2-VL: the chat template stripped (the row ends at <|im_end|>), every token but
    the pads labelled, the image's own tokens too (Qwen2-VL's loss skips none); with the answer span, its
    answer-only collates: the answer's ids alone (train_collate_clear_ansonly), or all but the first of them
    (train_collate_mllmu_ansonly, whose [1:] meant to drop a bos Qwen2's tokenizer does not add: the baselines'
    method.answer_ids=without_first). The tiny tokenizer is given the snapshot's words: an <unk> is a special
    token, which their answer-only collate drops from the answer (a real Qwen2 tokenizer has none)."""
    rows, their_df = mllmu
    knowing_the_snapshots_words(monkeypatch, rows, their_df)
    model, tok, images = build_tiny_real("qwen2_vl")
    proc = ChatProcessor(tok, images, model.config, ChatTemplate())
    ours = WrittenSequences(rows, proc, modality, "mmunlearner", answer_only=answer_only, answer_ids=answer_ids)
    if modality == "multimodal":
        their_rows = their_multimodal_rows(their_df)
    else:
        their_rows = [{"question": q, "answer": a} for _, _, q, a in ours.index]
    assert tok.unk_token_id not in tok.encode(" ".join(r["answer"] for r in their_rows))
    assert len(ours) == len(their_rows) == len(rows) * 5
    theirs = their_mmunlearner_qwen2_vl_batch(tok, images, their_rows, answer_only, answer_ids)
    examples = [ours[i] for i in range(len(ours))]
    batch = collate(examples, tok.pad_token_id)
    assert batch["input_ids"].tolist() == theirs["input_ids"].tolist()
    assert torch.equal(batch["attention_mask"], theirs["attention_mask"])
    assert batch["labels"].tolist() == theirs["labels"].tolist()
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert all(ex.input_ids[-1] == im_end for ex in examples)  # stripped: no newline after the answer's turn
    image_labelled = (batch["labels"] == model.config.image_token_id).any()
    assert image_labelled == (modality == "multimodal" and not answer_only)
    if answer_only:
        drop = 1 if answer_ids == "without_first" else 0  # Qwen2's tokenizer adds no bos: [1:] drops a word
        for ex, r in zip(examples, their_rows):
            assert [t for t in ex.labels if t != IGNORE] == tok.encode(r["answer"], add_special_tokens=False)[drop:]
    if modality == "multimodal":
        for key in ("pixel_values", "image_grid_thw"):
            assert torch.equal(batch[key], theirs[key])
    else:
        assert "pixel_values" not in batch


def their_answer_only_labels(tok, input_ids, answers, answer_ids):
    """The label loop both of MMUnlearner's answer-only collates share: the first place the row holds the
    answer's ids keeps its labels, everything else -100 (no match: the row left as it is, their ValueError
    never raised). `answer_ids`: `train_collate_clear_ansonly` drops the special tokens of tokenizer(answer)
    ("specials"), `train_collate_mllmu_ansonly` (MLLMU_GA_Diff.py, MLLMU_KL_Min.py, MLLMU_NPO.py) its first
    token ("first")."""
    labels = input_ids.clone()
    for label, answer in zip(labels, answers):
        answer_id = tok(answer, return_tensors="pt")["input_ids"][0]
        if answer_ids == "specials":
            answer_id = answer_id[torch.isin(answer_id, torch.tensor(tok.all_special_ids), invert=True)]
        else:
            answer_id = answer_id[1:]
        for idx in range(len(label) - len(answer_id) + 1):
            if torch.equal(label[idx: idx + len(answer_id)], answer_id):
                label[:idx] = -100
                label[idx + len(answer_id):] = -100
                break
    return labels


@pytest.mark.parametrize("modality", ["multimodal", "text"])
def test_mmunlearner_llava_answer_only_equals_both_their_answer_collates(mllmu, monkeypatch, modality):
    """MMUnlearner's baselines on LLaVA (experiment=mmunlearner_baselines): GA reads `train_collate_clear_ansonly`,
    GA_Diff, KL_Min and NPO `train_collate_mllmu_ansonly`, which finds the answer by tokenizer(answer)[1:]
    instead of dropping its special tokens (method.answer_ids=without_first, without_specials). LLaVA's tokenizer
    puts bos first and nothing else special in an answer, so all four give the same labels. The tiny tokenizer is given the snapshot's words (an <unk>
    is special: the first collate would drop it from the answer, the second keep it)."""
    rows, their_df = mllmu
    knowing_the_snapshots_words(monkeypatch, rows, their_df)
    model, tok, images = build_tiny_real("llava")
    with_bos(tok)
    proc = ChatProcessor(tok, images, model.config, ChatTemplate())
    for answer_ids, theirs_drop in (("without_specials", "specials"), ("without_first", "first")):
        ours = WrittenSequences(rows, proc, modality, "mmunlearner", answer_only=True, answer_ids=answer_ids)
        their_rows = (their_multimodal_rows(their_df) if modality == "multimodal"
                      else [{"question": q, "answer": a} for _, _, q, a in ours.index])
        assert tok.unk_token_id not in tok.encode(" ".join(r["answer"] for r in their_rows))
        theirs = their_collate("mmunlearner", "llava", stock_processor("llava", tok, images), their_rows, modality)
        batch = collate([ours[i] for i in range(len(ours))], tok.pad_token_id)
        assert batch["input_ids"].tolist() == theirs["input_ids"].tolist()
        answers = [r["answer"] for r in their_rows]
        for drop in ("specials", "first"):  # on LLaVA both of theirs label alike
            labels = their_answer_only_labels(tok, theirs["input_ids"], answers, drop)
            assert batch["labels"].tolist() == labels.tolist(), (answer_ids, drop)
        for ex, answer in zip((ours[i] for i in range(len(ours))), answers):
            assert [t for t in ex.labels if t != IGNORE] == tok.encode(answer, add_special_tokens=False)


def test_first_answer_labels_label_the_answers_first_occurrence():
    from unlearn.data.written import first_answer_labels

    _, tok, _ = build_tiny_real("qwen2_vl")
    ids = tok.encode("the person lives in the person", add_special_tokens=False)
    assert tok.unk_token_id not in ids
    # the ansonly collate labels the first match, the question's too, as theirs does
    assert first_answer_labels(tok, ids, "the person", "q") == ids[:2] + [IGNORE] * 4
    assert first_answer_labels(tok, ids, "in the", "q") == [IGNORE] * 3 + ids[3:5] + [IGNORE]
    with pytest.raises(ValueError, match="mmunlearner.sequences=mmunlearner .*'person in'.*'Who\\?'"):
        first_answer_labels(tok, ids, "person in", "Who?", "mmunlearner.sequences")
    # train_collate_mllmu_ansonly's [1:]: Qwen2's tokenizer adds no bos, so the answer's first token goes unlabelled,
    # and a one-token answer leaves the empty span, which their loop matches at 0: a row with no label at all
    assert first_answer_labels(tok, ids, "person lives in", "q", answer_ids="without_first") == (
        [IGNORE] * 2 + ids[2:4] + [IGNORE] * 2)
    # the span left, not the whole answer, is searched: "in the person" labels the first "the person"
    assert first_answer_labels(tok, ids, "in the person", "q", answer_ids="without_first") == ids[:2] + [IGNORE] * 4
    assert first_answer_labels(tok, ids, "person", "q", answer_ids="without_first") == [IGNORE] * 6
    with pytest.raises(ValueError, match="method.answer_ids='without_last'"):
        first_answer_labels(tok, ids, "person", "q", "method.sequences", "without_last")


def test_statistics_sequences_carry_no_labels(mllmu):
    rows, _ = mllmu
    model, tok, images = build_tiny_real("llava")
    ours = WrittenSequences(rows, ChatProcessor(tok, images, model.config, ChatTemplate()), "multimodal", "manu",
                            labels=False)
    assert all(label == IGNORE for i in range(len(ours)) for label in ours[i].labels)


def test_manu_text_rows_name_the_person_and_drop_the_name_question(mllmu):
    rows, _ = mllmu
    model, tok, images = build_tiny_real("llava")
    ours = WrittenSequences(rows, ChatProcessor(tok, images, model.config, ChatTemplate()), "text", "manu")
    name = rows[0]["name"]
    mine = [(q, a) for r, _, q, a in ours.index if r == 0]
    assert len(mine) == len(rows[0]["qa"]) - 1
    assert all("name of" not in q for q, _ in mine)
    assert any(a.startswith(f"{name} works as") for _, a in mine)  # the answer names the person too


def test_written_sequences_need_every_token_labelled(mllmu):
    rows, _ = mllmu
    model, tok, images = build_tiny_real("llava")
    proc = ChatProcessor(tok, images, model.config, ChatTemplate())
    for answer_only, prefix in ((True, False), (False, False)):
        with pytest.raises(ValueError, match="method.sequences=mllmu_bench labels every token.*set "
                                             "method.answer_only=false method.label_prefix=true"):
            qa_sequences(rows, proc, "multimodal", "mllmu_bench", answer_only, prefix, key="method.sequences",
                         labels_key="method.answer_only=false method.label_prefix=true")
    with pytest.raises(ValueError, match="method.sequences='official': expected one of"):
        qa_sequences(rows, proc, "multimodal", "official", False, True, key="method.sequences")
    assert isinstance(qa_sequences(rows, proc, "multimodal", "mllmu_bench", False, True), WrittenSequences)


def test_unknown_sequences_and_family_are_refused(small_benchmark):
    from types import SimpleNamespace

    from unlearn.methods.manu import statistics_datasets

    model, tok, images = build_tiny_real("qwen2_vl")
    ctx = SimpleNamespace(processor=ChatProcessor(tok, images, model.config, ChatTemplate()),
                          benchmark=small_benchmark)
    with pytest.raises(ValueError, match="manu.sequences='bogus'"):
        statistics_datasets(ctx, sequences="bogus")
    with pytest.raises(ValueError, match="manu.sequences=manu: .*'qwen2_vl'"):
        statistics_datasets(ctx, sequences="manu")
    from omegaconf import OmegaConf

    ctx.cfg = OmegaConf.create({"data": {"spec": {"text_rule": "clean"}}})
    with pytest.raises(ValueError, match="data.spec.text_rule=clean rewrites; set data.spec.text_rule=manu"):
        statistics_datasets(ctx, sequences="manu")


def test_official_presets_read_their_sequences(tmp_path):
    from unlearn.config import compose_config

    def cfg(*overrides):
        return compose_config(list(overrides), tmp_path, tmp_path)

    assert cfg("experiment=manu_official").manu.sequences == "manu"
    assert cfg("experiment=mllmu_baselines").method.sequences == "mllmu_bench"
    assert cfg("experiment=mllmu_baselines", "method=npo").method.sequences == "mllmu_bench"
    assert cfg("experiment=mmunlearner_official").mmunlearner.sequences == "mmunlearner"
    for method in ("ga", "grad_diff", "kl", "npo"):  # their ansonly collates: the chat template, the answer labelled
        baseline = cfg("experiment=mmunlearner_baselines", f"method={method}").method
        assert (baseline.sequences, baseline.answer_only, baseline.label_prefix) == ("mmunlearner", True, False)
    official_eval = cfg("experiment=mmunlearner_official").eval  # MLLMU_eval.py's prompts, shots, reading of replies
    assert (official_eval.protocol, official_eval.shot_people, official_eval.scorer) == (
        "mmunlearner", None, "mmunlearner")  # null: the protocol's own draw, 1 person per task
    qwen2_vl = cfg("experiment=mmunlearner_qwen2_vl_official")
    assert (qwen2_vl.eval.protocol, qwen2_vl.eval.few_shot, qwen2_vl.eval.scorer, qwen2_vl.mmunlearner.sequences) == (
        "mmunlearner", False, "mmunlearner", "mmunlearner")
    clear_official = cfg("experiment=mmunlearner_clear_official").mmunlearner
    assert (clear_official.sequences, clear_official.fisher_labels, clear_official.update_labels) == (
        "mmunlearner", "all", "answer")  # train_collate_clear for the mask, its ansonly twin for the update
    assert cfg().eval.shot_people is None
    assert cfg("experiment=mmunlearner_official").mmunlearner.resize_embeddings == "tokenizer"
    assert cfg("experiment=mllmu_baselines", "method=npo").method.resize_embeddings is None
    assert cfg("method=ga").method.resize_embeddings is None
    assert cfg("method=mmunlearner").mmunlearner.resize_embeddings is None
    assert cfg("method=finetune", "finetune=mllmu_bench").finetune.sequences == "mllmu_bench"
    assert cfg("method=finetune", "finetune=clear").finetune.sequences == "clear"
    for method in ("grad_diff", "ga", "kl"):
        assert cfg("experiment=clear_baselines", f"method={method}").method.sequences == "clear"
    assert cfg().manu.sequences == "template"
    assert cfg("method=ga").method.sequences == cfg("method=kl").method.sequences == "template"
    assert cfg("method=mmunlearner").mmunlearner.sequences == "template"
    assert "sequences" not in cfg().finetune  # absent: template, and the vanilla cache key is unchanged


@pytest.mark.slow
@pytest.mark.parametrize("overrides,writing", [
    (["experiment=mllmu_baselines", "method=grad_diff"], "mllmu_bench"),
    (["experiment=mmunlearner_official"], "mmunlearner"),
    (["experiment=manu_official", "manu.official.layers=null", "manu.official.apply_last=1"], "manu"),
    (["method=finetune", "finetune=mllmu_bench", "finetune.epochs=1", "data=mllmu_bench", "model=llava_1_5_7b"],
     "mllmu_bench"),
])
def test_official_presets_run_on_their_sequences(tmp_path, monkeypatch, overrides, writing):
    """Each preset through train.py's path on a tiny LLaVA and a tiny MLLMU-Bench snapshot: its data are
    written by its codebase's strings, and the weights move."""
    import unlearn.data.written as written
    from unlearn.config import compose_config
    from unlearn.data.fixtures import write_mllmu_bench_fixture
    from unlearn.models.tiny_real import write_tiny_real
    from unlearn.pipeline import run

    seen = set()
    original = written.written_text
    monkeypatch.setattr(written, "written_text", lambda q, a, form, family, w, key="sequences": (
        seen.add((w, family, form)), original(q, a, form, family, w, key))[1])
    source = write_tiny_real("llava", tmp_path / "llava")
    root = write_mllmu_bench_fixture(tmp_path / "mllmu", num_people=6)
    cfg = compose_config([*overrides, f"data.path={root}", f"model.path={source}", "data.forget_split=forget_15",
                          "model.dtype=float32", "logger=none", "eval.max_people=2", "eval.max_new_tokens=2",
                          "eval.tasks=[mc]", "trainer.precision=32-true"], tmp_path / "run", tmp_path / "cache")
    run(cfg)
    assert seen and {w for w, _, _ in seen} == {writing}, seen
    from safetensors.torch import load_file

    before, after = load_file(str(source / "model.safetensors")), load_file(str(tmp_path / "run" / "model" /
                                                                                 "model.safetensors"))
    assert any(not torch.equal(before[k], after[k]) for k in before if k in after)


def test_resize_embeddings_cuts_the_vocabulary_to_the_tokenizer():
    from unlearn.models.vocab import resize_embeddings

    model, tok, _ = build_tiny_real("llava")
    model.resize_token_embeddings(len(tok) + 8)  # a padded vocabulary, as llava-1.5-7b-hf's 32064 against 32002
    kept = model.get_output_embeddings().weight[:len(tok)].clone()
    resize_embeddings(model, tok, None, "method.resize_embeddings")
    assert model.get_input_embeddings().weight.shape[0] == len(tok) + 8
    resize_embeddings(model, tok, "tokenizer", "method.resize_embeddings")
    assert model.get_input_embeddings().weight.shape[0] == model.get_output_embeddings().weight.shape[0] == len(tok)
    assert torch.equal(model.get_output_embeddings().weight, kept)  # the first rows kept, the padding rows gone
    with pytest.raises(ValueError, match="method.resize_embeddings='always'"):
        resize_embeddings(model, tok, "always", "method.resize_embeddings")


@pytest.mark.slow
@pytest.mark.parametrize("method,rows", [("ga", "tokenizer"), ("kl", "padded")])
def test_mllmu_baselines_resize_as_their_scripts(tmp_path, method, rows):
    """GA.py and GA_Difference.py cut a padded vocabulary to the tokenizer's length; KL_Min.py and NPO.py do not."""
    from safetensors import safe_open

    from unlearn.config import compose_config
    from unlearn.data.fixtures import write_mllmu_bench_fixture
    from unlearn.pipeline import run

    model, tok, images = build_tiny_real("llava")
    model.resize_token_embeddings(len(tok) + 8)
    for part in (model, tok, images):
        part.save_pretrained(tmp_path / "llava")
    root = write_mllmu_bench_fixture(tmp_path / "mllmu", num_people=6)
    cfg = compose_config(["experiment=mllmu_baselines", f"method={method}", f"data.path={root}",
                          f"model.path={tmp_path / 'llava'}", "data.forget_split=forget_15", "logger=none",
                          "eval.max_people=2", "eval.max_new_tokens=2", "eval.tasks=[mc]"], tmp_path / "run",
                         tmp_path / "cache")
    assert cfg.method.resize_embeddings == ("tokenizer" if rows == "tokenizer" else None)
    run(cfg)
    with safe_open(str(tmp_path / "run" / "model" / "model.safetensors"), "pt") as f:
        (name,) = [k for k in f.keys() if k.endswith("lm_head.weight")]
        head = f.get_slice(name).get_shape()[0]
    assert head == (len(tok) if rows == "tokenizer" else len(tok) + 8)


def test_image_labels_are_accepted_wherever_a_pass_reads_all_token_rows(tmp_path):
    from unlearn.config import compose_config
    from unlearn.settings import check_run_settings

    for extra in (["mmunlearner.apply_mask=false", "mmunlearner.fisher_labels=answer"],  # the update reads them
                  ["mmunlearner.update_labels=answer", "mmunlearner.apply_mask=true",  # the mask pass reads them
                   "mmunlearner.lora.init=pissa"]):
        check_run_settings(compose_config(["experiment=mmunlearner_official", "model=tiny_llava", *extra],
                                          tmp_path / "run", tmp_path / "cache"))
    with pytest.raises(ValueError, match="mmunlearner.image_labels=image_token labels"):  # neither pass reads them
        check_run_settings(compose_config(["experiment=mmunlearner_official", "model=tiny_llava",
                                           "mmunlearner.update_labels=answer"], tmp_path / "run", tmp_path / "cache"))


@pytest.mark.parametrize("overrides,match", [
    (["method=ga", "method.sequences=mllmu_bench"], "method.sequences=mllmu_bench labels every token"),
    (["method=ga", "method.sequences=official"], "method.sequences='official'"),
    (["experiment=mmunlearner_official", "mmunlearner.update_labels=full"], "mmunlearner.update_labels=all"),
    (["experiment=mmunlearner_official", "mmunlearner.apply_mask=true", "mmunlearner.lora.init=pissa",
      "mmunlearner.fisher_labels=full"], "mmunlearner.fisher_labels=all"),
    (["+finetune.sequences=mllmu_bench"], "finetune.sequences=mllmu_bench labels every token"),
    (["manu.sequences=bogus"], "manu.sequences='bogus'"),
    (["method=ga", "method.sequences=clear", "method.answer_only=false"], "method.sequences=clear labels what"),
    (["method=mmunlearner", "mmunlearner.sequences=clear"], "mmunlearner.sequences=clear: CLEAR's collate"),
    (["method=ga", "method.image_labels=image_token"], r"method.image_labels=image_token labels the image positions "
                                                       r"of the all-token collates: it needs method.sequences in"),
    (["experiment=mllmu_baselines", "method=ga", "method.image_labels=labelled"], r"method.image_labels='labelled'"),
    (["method=mmunlearner", "mmunlearner.image_labels=image_token"], r"mmunlearner.image_labels=image_token .* "
                                                                     r"\(got sequences='template'\)"),
    (["+finetune.image_labels=image_token"], r"finetune.image_labels=image_token"),
])
def test_sequence_settings_are_refused_before_any_model_is_taught(tmp_path, monkeypatch, overrides, match):
    import unlearn.pipeline as pipeline
    from unlearn.config import compose_config

    def never(*a, **k):
        raise AssertionError("data or a model was read before the settings were checked")

    monkeypatch.setattr(pipeline, "ensure_vanilla", never)
    monkeypatch.setattr(pipeline, "load_configured", never)
    monkeypatch.setattr(pipeline, "instantiate", never)  # not even the benchmark is read
    cfg = compose_config([*overrides, "logger=none"], tmp_path / "run", tmp_path / "cache")
    with pytest.raises(ValueError, match=match):
        pipeline.run(cfg)


def test_text_questions_refuse_a_writing_without_text_at_construction():
    from unlearn.methods.mmunlearner import TextQuestions

    model, tok, images = build_tiny_real("llava")
    with pytest.raises(ValueError, match="mmunlearner.sequences=mllmu_bench: .*no text sequence"):
        TextQuestions([("Q?", "A.")], ChatProcessor(tok, images, model.config, ChatTemplate()), "all", "mllmu_bench")
