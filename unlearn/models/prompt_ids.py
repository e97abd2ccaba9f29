"""A rendered prompt's token ids, as the checkpoint's own processor makes them: the whole string tokenized at
once, each image placeholder expanded into that image's tokens.

Why one string: SentencePiece tokenizers (LLaVA's, Idefics2's) put a '\u2581' at the start of every piece they
are given, so a prompt tokenized piece by piece reads otherwise at each boundary ("USER: " + "What" gives
"USER:" '\u2581' '\u2581What' where the template's string gives "USER:" '\u2581What').
"""

from __future__ import annotations

IMAGE_PLACEHOLDER = "<image>"


def encode_prompt(proc, text: str, images: list) -> list[int]:
    """Token ids of a rendered prompt, as their processor makes them: the whole string tokenized, bos first,
    each `<image>` expanded into its image's tokens (`proc.image_ids`). A tokenizer without an `<image>`
    token (Qwen2-VL) gets the text between placeholders tokenized piece by piece."""
    if text.count(IMAGE_PLACEHOLDER) != len(images):
        raise ValueError(f"prompt has {text.count(IMAGE_PLACEHOLDER)} {IMAGE_PLACEHOLDER} placeholders for "
                         f"{len(images)} images")
    tok = proc.tokenizer
    bos = [tok.bos_token_id] if proc.adds_bos and tok.bos_token_id is not None else []
    placeholder = tok.convert_tokens_to_ids(IMAGE_PLACEHOLDER)
    if placeholder is not None and placeholder != tok.unk_token_id:
        pieces, ids = iter(images), []
        for t in tok.encode(text, add_special_tokens=False):
            ids += proc.image_ids(next(pieces)) if t == placeholder else [t]
        return bos + ids
    parts = text.split(IMAGE_PLACEHOLDER)
    ids = proc.words(parts[0])
    for image, part in zip(images, parts[1:]):
        ids += proc.image_ids(image) + proc.words(part)
    return bos + ids
