"""`model.tokenizer`: arguments for the checkpoint's tokenizer, and why LLaVA-1.5 needs `legacy: true`.

llava-1.5-7b-hf's tokenizer.json is a legacy SentencePiece conversion: a normalizer that prepends '\u2581' and
turns spaces into it, applied to each piece of text between special tokens, so "USER: <image>\\nWhat" reads
[..., 32000 <image>, 29871 '\u2581', 13 '\\n', ...]. transformers 4.45-4.49, which the official codes run, use the
file as it is; this transformers' LlamaTokenizer drops the file's normalizer and pre-tokenizer and rebuilds them
from its `legacy` flag, whose default (false) prepends '\u2581' to the first piece only. The tokenizer here is
built the same way as that file, from a small vocabulary with byte fallback."""

import json
import logging

import pytest
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers

from unlearn.config import compose_config
from unlearn.models.loading import load_tokenizer

# the strings LLaVA reads in the official codes: MLLMU-Bench's eval.py and collate, MMUnlearner's, with shots
LLAVA_STRINGS = [
    "USER: <image>\nWhat is the job of this person?\nA: chef\nB: pilot\nC: nurse\nD: judge\n"
    "Just give ONE letter representing the answer directly.\nASSISTANT:",
    "USER:\nWhat is the job of Alara Venn?\nASSISTANT:",
    "USER: What is the job of Alara Venn?\nAnswer the question in one sentence in ENGLISH.\nASSISTANT:",
    "USER: <image>\nWhat is the job of this person?\nASSISTANT: She is a chef.",
    "USER:<image>\nShot question?\nASSISTANT: shot answer\nUSER: <image>\nWhere does she live? [Blank]\nASSISTANT:",
    "USER: <image>\nWhat is this? ASSISTANT: a chef</s>",
]


def _legacy_llama_tokenizer(tmp_path, legacy_in_config=False):
    letters = sorted({c for s in LLAVA_STRINGS for c in s if c not in "\n"} | {"\u2581"})
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    vocab.update({f"<0x{b:02X}>": 3 + b for b in range(256)})
    for c in letters:
        vocab.setdefault(c, len(vocab))
    merges = [("\u2581", "W"), ("h", "a"), ("\u2581", "\u2581")]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    core = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    core.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    core.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                      decoders.Strip(" ", 1, 0)])
    core.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ("<unk>", "<s>", "</s>")])
    core.add_tokens([AddedToken(t, special=True, normalized=False) for t in ("<image>", "<pad>")])
    core.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "pad_token": "<pad>", "legacy": legacy_in_config}))
    return core


@pytest.mark.parametrize("legacy_in_config", [False, True])
def test_legacy_true_reads_llava_strings_as_the_file_does(tmp_path, legacy_in_config):
    raw = _legacy_llama_tokenizer(tmp_path, legacy_in_config)
    ours = load_tokenizer(str(tmp_path), {"legacy": True})
    for text in LLAVA_STRINGS:
        assert ours(text, add_special_tokens=False)["input_ids"] == raw.encode(text, add_special_tokens=False).ids, text


def test_without_legacy_the_space_after_image_is_lost(tmp_path):
    raw = _legacy_llama_tokenizer(tmp_path)
    default = load_tokenizer(str(tmp_path))
    text = "USER: <image>\nWhat"
    image, space, newline = (raw.token_to_id(t) for t in ("<image>", "\u2581", "<0x0A>"))
    want = raw.encode(text, add_special_tokens=False).ids
    got = default(text, add_special_tokens=False)["input_ids"]
    assert want[want.index(image):][:3] == [image, space, newline]
    assert got[got.index(image):][:2] == [image, newline]


def test_a_setting_the_tokenizer_lacks_is_named(tmp_path, caplog):
    _legacy_llama_tokenizer(tmp_path)
    with caplog.at_level(logging.WARNING, logger="unlearn.models.loading"):
        load_tokenizer(str(tmp_path), {"legcy": True})
    assert "model.tokenizer.legcy" in caplog.text


def test_llava_reads_its_tokenizer_in_legacy_mode(tmp_path):
    cfg = compose_config(["model=llava_1_5_7b"], tmp_path / "run", tmp_path / "cache")
    assert cfg.model.tokenizer.legacy is True


def test_model_tokenizer_reaches_the_tokenizer_load(tmp_path, monkeypatch):
    """`model.tokenizer` travels from the config through load_configured to AutoTokenizer (the tiny stand-in's
    tokenizer class has no `legacy`, so only the arguments it was loaded with show it)."""
    import unlearn.models.loading as loading
    from unlearn.models.tiny_real import write_tiny_real
    from unlearn.pipeline import load_configured

    source = write_tiny_real("llava", tmp_path / "llava")
    seen = []
    load = loading.AutoTokenizer.from_pretrained
    monkeypatch.setattr(loading.AutoTokenizer, "from_pretrained",
                        lambda path, **kw: (seen.append(kw), load(path, **kw))[1])
    cfg = compose_config(["model=llava_1_5_7b", f"model.path={source}", "model.dtype=float32"], tmp_path,
                         tmp_path / "cache")
    load_configured(cfg, source)
    assert seen == [{"legacy": True}]


@pytest.mark.parametrize("checkpoint", [False, True])
@pytest.mark.parametrize("with_image", [False, True])
def test_template_rows_read_as_the_llava_hf_prompt_does(tmp_path, with_image, checkpoint):
    """A taught or scored row on LLaVA's template is the file's tokenization of the llava-hf prompt,
    "USER: <image>\\n{q} ASSISTANT: {a}</s>" (text-only: "USER: {q} ASSISTANT: {a}</s>"), its <image> expanded.
    Tokenized piece by piece (until 2026-12-05), text-only rows read "USER:" '\u2581' '\u2581What' and image rows
    '\\n' '\u2581What' where the file writes "USER:" '\u2581What' and '\\n' 'What'. `checkpoint`: beside a
    config.json of model_type llava, as a checkpoint holds it, this transformers loads the file as it is
    (TokenizersBackend: llava is among its models whose hub tokenizer class it overrides), whose normaliser
    prepends '\u2581' to an answer tokenized alone: until 2026-12-06 every answer read '\u2581\u2581' there."""
    from types import SimpleNamespace

    from unlearn.data.collate import IGNORE, qa_example
    from unlearn.models.chat_processor import ChatProcessor, ImageInput
    from unlearn.models.chat_template import ChatTemplate

    raw = _legacy_llama_tokenizer(tmp_path)
    if checkpoint:
        (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava"}))
    tok = load_tokenizer(str(tmp_path), {"legacy": True})
    assert (type(tok).__name__ == "TokenizersBackend") == checkpoint
    template = ChatTemplate(**compose_config(["model=llava_1_5_7b"], tmp_path / "run", tmp_path / "c").model.template)
    image_id = raw.token_to_id("<image>")
    proc = ChatProcessor(tok, None, SimpleNamespace(model_type="llava"), template)
    image = ImageInput(block=[image_id] * 3, tensors={}, image_token_id=image_id) if with_image else None
    question, answer = "What is the job of this person?", "She is a chef."

    def file_ids(text):  # bos, then the file's ids with <image> expanded as the model's processor does
        ids = [raw.token_to_id("<s>")]
        for t in raw.encode(text, add_special_tokens=False).ids:
            ids += [image_id] * 3 if t == image_id else [t]
        return ids

    row = qa_example(proc, [(question, answer)], image)
    opening = "USER: <image>\n" if with_image else "USER: "
    want, prompt = file_ids(f"{opening}{question} ASSISTANT: {answer}</s>"), file_ids(f"{opening}{question} ASSISTANT:")
    assert row.input_ids == want and want[:len(prompt)] == prompt
    assert [t for t, lab in zip(row.input_ids, row.labels) if lab != IGNORE] == want[len(prompt):]
    assert [lab for lab in row.labels if lab != IGNORE] == want[len(prompt):]

    # answer_only=false labels the question, not what precedes it
    labelled = qa_example(proc, [(question, answer)], image, answer_only=False)
    assert labelled.input_ids == want
    first = next(i for i, lab in enumerate(labelled.labels) if lab != IGNORE)
    assert tok.decode(want[first:first + 3]).strip().startswith("What")
    assert all(lab == IGNORE for lab in labelled.labels[:first])
    assert all(lab == t for t, lab in zip(want[first:], labelled.labels[first:]))


def test_the_tokenizer_file_check_finds_the_setting_that_reads_as_the_file(tmp_path):
    """bench/tokenizer_file_check.py, for checkpoints this repository never read (Idefics2-8b's): on a legacy
    conversion built as llava-1.5-7b-hf's, legacy: true (LLaVA's configured setting) reads every prompt as the file
    does, and legacy: false misreads those with an image."""
    from bench.tokenizer_file_check import main

    _legacy_llama_tokenizer(tmp_path)
    differ = main([str(tmp_path), "--model", "llava_1_5_7b"])
    assert differ["as configured"] == differ["legacy: true"] == 0 and differ["legacy: false"] >= 2
    assert differ["text row"] is None  # a tokenizer folder alone: no model type to build the processor from
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava"}))  # as a checkpoint holds it
    assert main([str(tmp_path), "--model", "llava_1_5_7b"])["text row"] is True
