"""metrics.json's `artifacts.trained`: what each Trainer of a run trained (callbacks/trained_batches.py)."""

from types import SimpleNamespace

import torch
from omegaconf import OmegaConf

from unlearn.methods.gradient import GradientUnlearning, paired_loader
from unlearn.pipeline import RunContext

TRAINER = {"_target_": "lightning.Trainer", "accelerator": "cpu", "devices": 1, "logger": False,
           "enable_progress_bar": False, "enable_model_summary": False, "enable_checkpointing": False}


def test_both_forms_train_twice_the_batches_of_one(tiny_model, small_benchmark, tmp_path):
    """`data.forget_modality=both` reads each forget question in both forms: its record says twice the batches
    and steps of image+text alone, each fit its own entry, and the epochs it ran."""
    model, proc = tiny_model
    state = {k: v.clone() for k, v in model.state_dict().items()}
    data = SimpleNamespace(benchmark=small_benchmark, processor=proc)
    ctx = RunContext(OmegaConf.create({"trainer": TRAINER}), small_benchmark, model, proc, tmp_path)
    expected = {}
    for form in ("multimodal", "both"):
        model.load_state_dict(state)
        loader = paired_loader(data, form, 4)
        expected[form] = 2 * len(loader.iterables["forget"])  # two epochs of the forget batches
        module = GradientUnlearning(model, "ga", lambda p: torch.optim.SGD(p, lr=1e-3))
        ctx.trainer(max_epochs=2).fit(module, loader)
    first, second = ctx.artifacts["trained"]
    assert expected["both"] == 2 * expected["multimodal"] > 0
    assert first == {"stage": "GradientUnlearning", "batches": expected["multimodal"],
                     "optimizer_steps": expected["multimodal"], "epochs": 2}
    assert second == {"stage": "GradientUnlearning", "batches": expected["both"],
                      "optimizer_steps": expected["both"], "epochs": 2}



def test_a_second_fit_counts_its_own_batches_and_a_finetune_stage_is_named_by_its_config_key():
    """The record's stage: FinetuneModule serves teaching and the relearning attack, told apart by `config_key`
    (mutation audit: reading the class name alone survived every test); and a second fit of one Trainer counts its
    own batches, not the first fit's as well (dropping the reset in on_fit_start survived)."""
    from callbacks.trained_batches import TrainedBatches

    record = []
    callback = TrainedBatches(record)
    trainer = SimpleNamespace(global_step=3, current_epoch=1)
    relearn = SimpleNamespace(config_key="relearn")
    for batches in (3, 2):
        callback.on_fit_start(trainer, relearn)
        for i in range(batches):
            callback.on_train_batch_end(trainer, relearn, None, None, i)
        callback.on_fit_end(trainer, relearn)
    callback.on_fit_start(trainer, object())
    callback.on_fit_end(trainer, object())
    assert [(r["stage"], r["batches"]) for r in record] == [("relearn", 3), ("relearn", 2), ("object", 0)]


def test_mmunlearners_record_counts_its_retain_batches_beside_its_forget_batches(tiny_model, small_benchmark,
                                                                                 tmp_path):
    """A MaskedUnlearning step is one forget batch and the retain batches after it: `batches` counted the forget
    batches alone (36 against 678 optimizer steps on the embedded default), the retain batches in no count,
    until 2026-12-07; `parts` counts each, this fit's."""
    from lightning.pytorch.utilities import CombinedLoader
    from torch.utils.data import DataLoader

    from unlearn.data.collate import collate
    from unlearn.data.written import QASequences
    from unlearn.methods.mmunlearner import MaskedUnlearning

    model, proc = tiny_model
    pad = proc.tokenizer.pad_token_id
    ds = QASequences(small_benchmark.train_rows("forget"), proc, "multimodal")
    loader = CombinedLoader({"forget": DataLoader(ds, batch_size=4, collate_fn=lambda b: collate(b, pad)),
                             "retain": DataLoader(ds, batch_size=4, collate_fn=lambda b: [collate(b, pad)] * 2)},
                            mode="min_size")
    ctx = RunContext(OmegaConf.create({"trainer": TRAINER}), small_benchmark, model, proc, tmp_path)
    sgd = lambda p: torch.optim.SGD(p, lr=0.0)  # noqa: E731 - nothing needs to move
    module = MaskedUnlearning(model, None, sgd, sgd)  # masks=None: mmunlearner.apply_mask=false
    for fit in range(2):  # a second fit counts its own
        ctx.trainer(max_epochs=1, limit_train_batches=3).fit(module, loader)
    first, second = ctx.artifacts["trained"]
    assert first["batches"] == 3 and first["parts"] == {"forget": 3, "retain": 6}
    assert first["optimizer_steps"] == 9 and second == first  # one forget and two retain steps each

