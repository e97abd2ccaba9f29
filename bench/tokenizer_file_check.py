"""Does this transformers read a checkpoint's prompts as its tokenizer.json does, under each `model.tokenizer`?

Why: the official codes run transformers 4.45-4.49, which use a checkpoint's tokenizer.json as it is; this
transformers rebuilds a Llama-class tokenizer's normalizer from its `legacy` flag, so the '\u2581' after a special
token (`<image>`, `<end_of_utterance>`) may differ from the file's. LLaVA-1.5's file is a legacy conversion
(configs/model/llava_1_5_7b.yaml: `tokenizer: {legacy: true}`, tests/test_tokenizer_settings.py); Idefics2-8b's file
is not in this repository and was never read here (no hub): this prints, for a local checkpoint, which setting
gives the file's ids on the model config's own prompts (a text-only and an image turn, with an answer).

`python -m bench.tokenizer_file_check CHECKPOINT_DIR --model idefics2_8b` (any model config with a template)
"""

from __future__ import annotations

import argparse
from pathlib import Path


def prompts(template) -> list[str]:
    """The model config's turns as one string each, with an image placeholder where the turn has an image."""
    question, answer = "What is the job of Alara Venn?", "She is a chef in Lyon."
    image = template.get("image", "<image>")
    turn = template.question.format(question=question) + template.answer.format(answer=answer)
    return [template.get("text_prefix", template.prefix) + turn,
            template.prefix + image + template.get("after_image", "") + turn,
            template.prefix + image + template.get("after_image", "") + "\n" + turn]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--model", default="idefics2_8b", help="the model config whose template renders the prompts")
    args = ap.parse_args(argv)
    from omegaconf import OmegaConf
    from tokenizers import Tokenizer

    from unlearn.config import CONFIG_DIR
    from unlearn.models.loading import load_tokenizer

    model = OmegaConf.load(CONFIG_DIR / "model" / f"{args.model}.yaml")
    raw = Tokenizer.from_file(str(Path(args.checkpoint) / "tokenizer.json"))
    texts = prompts(model.template)
    out = {}
    for name, settings in (("as configured", model.get("tokenizer") or {}), ("legacy: true", {"legacy": True}),
                           ("legacy: false", {"legacy": False})):
        tok = load_tokenizer(args.checkpoint, dict(settings))
        differ = [t for t in texts if tok(t, add_special_tokens=False)["input_ids"]
                  != raw.encode(t, add_special_tokens=False).ids]
        out[name] = len(differ)
        print(f"{name:<14} {len(texts) - len(differ)} of {len(texts)} prompts read as tokenizer.json reads them"
              + (f"; first that differs: {differ[0]!r}" if differ else ""))
    out["text row"] = text_row_matches(args.checkpoint, model, raw)
    if out["text row"] is not None:
        print("a text-only row as the processor builds it (prompt, then the answer) "
              f"{'reads' if out['text row'] else 'does NOT read'} as tokenizer.json reads the whole string")
    return out


def text_row_matches(checkpoint: str, model, raw) -> bool | None:
    """Whether a text-only taught row, the prompt's ids then the answer's (ChatProcessor.answer_ids), is the file's
    tokenization of the whole row's string (until 2026-12-06 LLaVA's answers read an extra '\u2581' there); None
    without the checkpoint's config.json (a tokenizer folder alone)."""
    import json
    from types import SimpleNamespace

    from unlearn.models.chat_processor import ChatProcessor

    from unlearn.models.chat_template import ChatTemplate
    from unlearn.models.loading import load_tokenizer

    if not (Path(checkpoint) / "config.json").is_file():
        return None
    config = SimpleNamespace(**json.loads((Path(checkpoint) / "config.json").read_text()))
    tok = load_tokenizer(checkpoint, dict(model.get("tokenizer") or {}))
    proc = ChatProcessor(tok, None, config, ChatTemplate(**model.template))
    question, answer = "What is the job of Alara Venn?", "She is a chef in Lyon."
    ids, _ = proc.opening_ids(question, None)
    text = (model.template.get("text_prefix") or model.template.prefix) + model.template.question.format(
        question=question) + model.template.answer.format(answer=answer)
    whole = ([tok.bos_token_id] if proc.adds_bos else []) + raw.encode(text, add_special_tokens=False).ids
    return ids + proc.answer_ids(answer)[:-1] == whole


if __name__ == "__main__":
    main()
