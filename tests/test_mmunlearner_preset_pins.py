"""Every official MMUnlearner preset value, pinned to the line of Z1zs/MMUnlearner (fa77c66) it comes from.

Why: the parity tests run the LLaVA preset (experiment=mmunlearner_official) against ports, but the CLEAR and
Qwen2-VL presets' values were read by no test: editing e.g. the CLEAR preset's clip_retain or the Qwen2-VL
preset's fisher_batch_size left the whole suite green (s42 audit, 2026-12-06)."""

import pytest

from unlearn.config import compose_config

COMMON = {  # MLLMU_manifold.py and CLEAR_manifold.py alike
    "mmunlearner.gamma": 1.0,  # MLLMU_gen_mask.py:81,84 / CLEAR_gen_mask.py:77,80 threshold=1
    "mmunlearner.mask_fraction": None,
    "mmunlearner.eligible": "proj|fc|linear|mlp|qkv",  # MLLMU_manifold.py:163-175, CLEAR_manifold.py:119-131
    "mmunlearner.fisher_labels": "all",  # train_collate_clear: labels = input_ids, pads -100
    "mmunlearner.fisher_shuffle": True,  # DataLoader(shuffle=True)
    "mmunlearner.preserve_batches": "mixed",  # ConcatDataset([text, retain]): one loader
    "mmunlearner.retain_text": False,
    "mmunlearner.retain_steps": "official",  # forget_freq = n_retain // n_forget
    "mmunlearner.epochs": 1, "mmunlearner.batch_size": 4,  # README --num_epochs 1 --batch_size 4
    "mmunlearner.clip": 1.0, "mmunlearner.clip_scope": "all",
    "mmunlearner.optimizers": "one", "mmunlearner.restore_masked": False,
    "mmunlearner.token_mean": "process", "mmunlearner.groups": "language",
    "mmunlearner.resize_embeddings": "tokenizer", "mmunlearner.sequences": "mmunlearner",
    "mmunlearner.forget_optimizer.lr": 1e-5, "mmunlearner.retain_optimizer.lr": 1e-5,  # README --lr 1e-5
    "mmunlearner.forget_optimizer.eps": 1e-6, "mmunlearner.retain_optimizer.eps": 1e-6,
    "mmunlearner.forget_optimizer.weight_decay": 0.0, "mmunlearner.retain_optimizer.weight_decay": 0.0,
    "trainer.precision": "32-true",
}
PRESETS = {
    "mmunlearner_official": {  # LLaVA: MLLMU_manifold.py:48-72, MLLMU_gen_mask.py
        "mmunlearner.apply_mask": False, "mmunlearner.lora.enabled": True, "mmunlearner.lora.r": 16,
        "mmunlearner.lora.alpha": 16, "mmunlearner.lora.dropout": 0.05, "mmunlearner.lora.init": "gaussian",
        "mmunlearner.fisher_batch_size": 4, "mmunlearner.preserve_text": "eval_mc",
        "mmunlearner.fisher_dtype": "float16", "mmunlearner.update_labels": "all",
        "mmunlearner.clip_retain": True, "mmunlearner.start_precision": "float16", "data.forget_split": "forget_5",
    },
    "mmunlearner_qwen2_vl_official": {  # MLLMU_manifold.py:84-94 (bf16, no peft)
        "mmunlearner.apply_mask": True, "mmunlearner.lora.enabled": False,
        "mmunlearner.fisher_batch_size": 4, "mmunlearner.preserve_text": "eval_mc",
        "mmunlearner.fisher_dtype": "bfloat16", "mmunlearner.update_labels": "all",
        "mmunlearner.clip_retain": True, "model.dtype": "bfloat16", "data.forget_split": "forget_5",
    },
    "mmunlearner_clear_official": {  # CLEAR_gen_mask.py:56-73 (batch 2, ans_only False), CLEAR_manifold.py
        "mmunlearner.apply_mask": True, "mmunlearner.lora.enabled": False,
        "mmunlearner.fisher_batch_size": 2, "mmunlearner.preserve_text": "train_qa",
        "mmunlearner.fisher_dtype": "bfloat16", "mmunlearner.update_labels": "answer",  # README --ans_only True
        "mmunlearner.clip_retain": False,  # CLEAR_manifold.py:207-213: no clip on the retain step
        "model.dtype": "bfloat16", "data.forget_split": "forget_5",
    },
}


def _get(cfg, dotted):
    node = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_official_preset_values_are_the_official_codes(tmp_path, preset):
    cfg = compose_config([f"experiment={preset}"], tmp_path, tmp_path / "cache")
    want = {**COMMON, **PRESETS[preset]}
    got = {k: _get(cfg, k) for k in want}
    assert got == want
    assert _get(cfg, "mmunlearner.forget_optimizer._target_") == "unlearn.optim.HFAdamW"
    assert _get(cfg, "mmunlearner.retain_optimizer._target_") == "unlearn.optim.HFAdamW"
