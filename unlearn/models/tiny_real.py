"""Tiny random-weight checkpoints of the real architectures, written locally in the hub's layout.

No hub is reachable from CI, so the real-model adapters (`configs/model/llava_1_5_7b.yaml`, ...) are
tested on these: the same `transformers` classes, processors and save format as LLaVA-1.5, Idefics2 and
Qwen2-VL, at a few hundred thousand parameters, with a word-level tokenizer that knows the family's
special tokens. `python -m unlearn.models.tiny_real <family> <dir>` writes one; `--words-from SNAPSHOT` adds every
word of a local data snapshot to its vocabulary (the embedded benchmark's words are there already), so a fixture's
names and captions do not read as <unk>.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoModelForImageTextToText, PreTrainedTokenizerFast

from unlearn.data.people import vocabulary

FAMILIES = ("llava", "idefics2", "qwen2_vl")
# words of the chat templates in configs/model/*.yaml, so prompts tokenize without <unk>
TEMPLATE_WORDS = ["USER:", "ASSISTANT:", "User:", "Assistant:", "system", "user", "assistant", "You", "are",
                  "a", "helpful", "assistant.", "Answer", "with", "the", "option's", "letter", "from", "given",
                  "choices", "directly.", "Just", "give", "ONE", "representing", "answer", "A:", "B:", "C:", "D:", "A", "B", "C", "D", "Question:", "Options:"]
MARKERS = ["USER:", "ASSISTANT:", "User:", "Assistant:"]
_SPECIAL = {
    "llava": dict(bos="<s>", eos="</s>", pad="<pad>", unk="<unk>", extra=["<image>"]),
    "idefics2": dict(bos="<s>", eos="</s>", pad="<unk>", unk="<unk>",
                     extra=["<fake_token_around_image>", "<image>", "<end_of_utterance>"]),
    "qwen2_vl": dict(bos=None, eos="<|im_end|>", pad="<|endoftext|>", unk="<unk>",
                     extra=["<|endoftext|>", "<|im_start|>", "<|vision_start|>", "<|vision_end|>",
                            "<|image_pad|>", "<|video_pad|>"]),
}
TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=512)


def json_value(text: str):
    """The list or mapping a JSON string holds, else None. Why: MLLMU-Bench's ft_Data keeps its taught pairs in
    `metadata`, a JSON *string*; split as it is, its words carry the quotes and braces around them ('Varga."},'),
    so until the fifty-first session every answer's last word (a name, "Varga.") was <unk> to the stand-in."""
    import json

    if not text.lstrip().startswith(("[", "{")):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, (list, dict)) else None


def snapshot_words(root: str | Path) -> list[str]:
    """Every whitespace-separated word of every string in a data snapshot's parquet files, sorted. Why: a stand-in
    whose vocabulary lacks a dataset's names and captions reads them as <unk>, so answers it should tell apart
    tokenize alike (until 2026-12-06 the command had no way to add them; the tests patched `vocabulary`)."""
    import pyarrow.parquet as pq

    def walk(value):
        if isinstance(value, str):
            parsed = json_value(value)
            yield from (walk(parsed) if parsed is not None else value.split())
        elif isinstance(value, dict):
            for v in value.values():
                yield from walk(v)
        elif isinstance(value, list):
            for v in value:
                yield from walk(v)

    files = sorted(Path(root).rglob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"--words-from {root}: no parquet file there (a local data snapshot, as data.path)")
    return sorted({w for f in files for row in pq.read_table(f).to_pylist() for w in walk(row)})


def word_tokenizer(family: str, extra_words: tuple[str, ...] | list[str] = ()) -> PreTrainedTokenizerFast:
    sp = _SPECIAL[family]
    specials = [t for t in (sp["pad"], sp["unk"], sp["bos"], sp["eos"]) if t] + sp["extra"]
    vocab: dict[str, int] = {}
    for w in specials + TEMPLATE_WORDS + vocabulary() + list(extra_words):
        vocab.setdefault(w, len(vocab))
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=sp["unk"]))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    # the chat markers split from the text they touch ("User:What" in Idefics2's template), as a real
    # tokenizer's subwords do; a whitespace split alone would read "User:What" as one unknown word
    core.add_tokens([AddedToken(w, normalized=False) for w in MARKERS])
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    return PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token=sp["bos"], eos_token=sp["eos"], pad_token=sp["pad"],
        unk_token=sp["unk"], additional_special_tokens=sp["extra"], clean_up_tokenization_spaces=False)


def _llava(tok):
    from transformers import CLIPImageProcessorPil, LlavaConfig

    config = LlavaConfig(
        vision_config=dict(model_type="clip_vision_model", hidden_size=32, intermediate_size=64,
                           num_hidden_layers=2, num_attention_heads=2, image_size=28, patch_size=14),
        text_config=dict(model_type="llama", vocab_size=len(tok), **TEXT),
        image_token_index=tok.convert_tokens_to_ids("<image>"), image_seq_length=4,
        vision_feature_layer=-2, vision_feature_select_strategy="default")
    return config, CLIPImageProcessorPil(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28})


def _idefics2(tok):
    from transformers import Idefics2Config, Idefics2ImageProcessorPil

    config = Idefics2Config(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=28, patch_size=14),
        perceiver_config=dict(hidden_size=64, resampler_n_latents=4, resampler_depth=1, resampler_n_heads=2,
                              resampler_head_dim=16, num_key_value_heads=1),
        text_config=dict(model_type="mistral", vocab_size=len(tok), **TEXT),
        image_token_id=tok.convert_tokens_to_ids("<image>"))
    return config, Idefics2ImageProcessorPil(do_image_splitting=False, size={"shortest_edge": 28, "longest_edge": 28})


def _qwen2_vl(tok):
    from transformers import Qwen2VLConfig, Qwen2VLImageProcessorPil

    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>",
                                                     "<|vision_end|>")}
    config = Qwen2VLConfig(
        text_config=dict(vocab_size=len(tok), rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]},
                         bos_token_id=None, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **TEXT),
        vision_config=dict(depth=2, embed_dim=32, hidden_size=64, num_heads=2, mlp_ratio=2, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2, in_chans=3),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    return config, Qwen2VLImageProcessorPil(size={"shortest_edge": 56 * 56, "longest_edge": 56 * 56})  # pixels


def build_tiny_real(family: str, seed: int = 0, extra_words: tuple[str, ...] | list[str] = ()):
    """(model, tokenizer, image processor) of `family` with random weights."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose from {FAMILIES}")
    tok = word_tokenizer(family, extra_words)
    config, images = {"llava": _llava, "idefics2": _idefics2, "qwen2_vl": _qwen2_vl}[family](tok)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = AutoModelForImageTextToText.from_config(config)
    gc = model.generation_config
    gc.bos_token_id, gc.eos_token_id, gc.pad_token_id = tok.bos_token_id, tok.eos_token_id, tok.pad_token_id
    return model, tok, images


def write_tiny_real(family: str, path: str | Path, seed: int = 0,
                    extra_words: tuple[str, ...] | list[str] = ()) -> Path:
    """A checkpoint directory as the hub has it: config, weights, tokenizer, preprocessor config."""
    path = Path(path)
    for part in build_tiny_real(family, seed, extra_words):
        part.save_pretrained(path)
    return path


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("family", choices=FAMILIES)
    ap.add_argument("path")
    ap.add_argument("--words-from", action="append", default=[], metavar="SNAPSHOT",
                    help="a local data snapshot whose words join the vocabulary (repeatable)")
    args = ap.parse_args()
    words = [w for root in args.words_from for w in snapshot_words(root)]
    print(write_tiny_real(args.family, args.path, extra_words=words))
