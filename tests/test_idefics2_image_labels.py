"""Idefics2's image tokens in MLLMU-Bench's all-token loss depend on the transformers version their run used:
4.40.2 (idefics_requirements.txt): `CrossEntropyLoss(ignore_index=self.image_token_id)` (modeling_idefics2.py:1854);
4.45.1 (requirements.txt, the README's first install): a plain `CrossEntropyLoss()` (modeling_idefics2.py:1641),
so the 64 image positions their collate copies from input_ids into labels (data_preprocess.py:321-329) count.
`method.image_labels=image_token` / `finetune.image_labels=image_token` is the 4.45.1 loss; null stays 4.40.2's."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from unlearn.data.collate import IGNORE, collate
from unlearn.data.written import WrittenSequences
from unlearn.models.chat_processor import ChatProcessor
from unlearn.models.chat_template import ChatTemplate
from unlearn.models.loading import with_image_labels
from unlearn.models.tiny_real import build_tiny_real

from .test_written_sequences import (mllmu, stock_processor, their_chat_texts,  # noqa: F401 (fixture)
                                     their_multimodal_rows, with_bos)


def _their_batch_445(processor, rows):
    """train_collate_fn_idefics (data_preprocess.py:269-341): chat template, labels = input_ids, pads -100; no
    ignore_index in 4.45.1's loss, so every other label counts."""
    processor.tokenizer.padding_side = "right"
    texts = their_chat_texts(processor, rows, "multimodal")
    batch = processor(text=texts, images=[[r["image"]] for r in rows], padding=True, truncation=True,
                      return_tensors="pt")
    labels = batch["input_ids"].clone()
    labels[labels == processor.tokenizer.pad_token_id] = -100
    return batch["input_ids"], batch["attention_mask"], labels


def _their_loss_445(logits, attention_mask, labels):
    """transformers 4.45.1 Idefics2ForConditionalGeneration.forward's loss (modeling_idefics2.py:1628-1642)."""
    keep = attention_mask[..., 1:] != 0
    return F.cross_entropy(logits[..., :-1, :][keep], labels[..., 1:][keep])


def test_idefics2_image_token_labels_are_transformers_4_45_loss(mllmu):
    rows, their_df = mllmu
    model, tok, images = build_tiny_real("idefics2")
    with_bos(tok)
    proc = ChatProcessor(tok, images, model.config, ChatTemplate())
    ours = WrittenSequences(rows, with_image_labels(proc, "image_token", "method.image_labels"), "multimodal",
                            "mllmu_bench")
    batch = collate([ours[i] for i in range(len(ours))], tok.pad_token_id)
    ids, mask, labels = _their_batch_445(stock_processor("idefics2", tok, images), their_multimodal_rows(their_df))
    assert batch["input_ids"].tolist() == ids.tolist()
    assert batch["labels"].tolist() == labels.tolist()
    image = tok.convert_tokens_to_ids("<image>")
    n_image = int((ids == image).sum())
    assert n_image > 0 and int((batch["labels"] == image).sum()) == n_image
    # the loss: our token mean over labelled tokens equals 4.45.1's on the same logits
    torch.manual_seed(0)
    logits = torch.randn(*ids.shape, 64).double()
    safe = labels.clamp(max=63).masked_fill(labels == IGNORE, IGNORE)  # ids into this small vocabulary
    from unlearn import losses

    assert abs(losses.mean_nll(logits, safe).item() - _their_loss_445(logits, mask, safe).item()) < 1e-9
    # null: 4.40.2's loss, which ignores the image token id: only the image positions differ
    as_loaded = collate([WrittenSequences(rows, proc, "multimodal", "mllmu_bench")[i] for i in range(len(ours))],
                        tok.pad_token_id)
    assert not (as_loaded["labels"] == image).any()
    assert int((as_loaded["labels"] != batch["labels"]).sum()) == n_image
