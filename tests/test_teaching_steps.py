"""The teaching's step count, made before any model is built (unlearn/teaching_steps.py), is Lightning's
estimated_stepping_batches, on one process and on two; a finetune.scheduler warm-up too short for it is refused
before the model it teaches is built or loaded. Until the forty-third session FinetuneModule.configure_optimizers
refused it as teaching started (under method=finetune after the before-evaluation)."""

import functools

import lightning as L
import pytest
import torch

from unlearn.config import compose_config
from unlearn.teaching_steps import optimizer_steps


class _Stop(Exception):
    pass


class _Counted(L.LightningModule):
    """Reads Lightning's count where FinetuneModule reads it, then stops the fit."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.steps = None

    def training_step(self, batch, batch_idx):
        return self.w.sum()

    def configure_optimizers(self):
        self.steps = self.trainer.estimated_stepping_batches
        raise _Stop


# (sequences, batch size, epochs, accumulate_grad_batches, max_steps, limit_train_batches)
CASES = [(608, 64, 2, 1, -1, None), (37, 6, 3, 1, -1, None), (37, 6, 3, 4, -1, None), (5, 64, 150, 1, -1, None),
         (100, 7, 5, 2, 9, None), (100, 7, 2, 1, -1, 0.5), (100, 7, 2, 3, -1, 4), (1, 4, 1, 1, -1, None)]


@pytest.mark.parametrize("world", [1, 2, 3])
def test_the_count_is_lightnings_estimated_stepping_batches(monkeypatch, world):
    """Each process's Lightning counts from its own loader: its share of the teaching's self-sharding loader
    (finetune.shuffled_loader) is simulated as tests/test_ddp.py's processes see it, rank by rank, through the
    process group RandomShuffle reads (unlearn.data.sampling._world)."""
    import unlearn.data.sampling as sampling
    from unlearn.methods.finetune import shuffled_loader

    for sequences, batch, epochs, accumulate, max_steps, limit in CASES:
        ours = optimizer_steps(sequences, batch, epochs, world, accumulate, max_steps, limit)
        for rank in range(world):
            monkeypatch.setattr(sampling, "_world", lambda rank=rank: (rank, world))
            loader = shuffled_loader(list(range(sequences)), batch, lambda b: torch.tensor(b))
            kw = {} if limit is None else {"limit_train_batches": limit}
            trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=epochs, max_steps=max_steps,
                                accumulate_grad_batches=accumulate, logger=False, enable_checkpointing=False,
                                enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False,
                                **kw)
            module = _Counted()
            with pytest.raises(_Stop):
                trainer.fit(module, loader)
            assert module.steps == ours, (sequences, batch, epochs, accumulate, max_steps, limit, world, rank)


def test_the_sequence_count_is_the_teaching_sets_length(small_benchmark, tiny_model):
    """sequence_count (no processor, no image) and the set teach() builds cannot count apart: a form named twice,
    one form, and the MANU authors' text-only rows (the name question dropped)."""
    from unlearn.data.written import qa_sequences, sequence_count

    _, proc = tiny_model
    rows = small_benchmark.train_rows("all")
    for forms, sequences, answer_only, prefix in ((("multimodal", "multimodal", "text"), "template", True, False),
                                                  (("text",), "template", True, False),
                                                  (("multimodal", "text"), "manu", False, True)):
        built = qa_sequences(rows, proc, forms, sequences, answer_only, prefix, key="finetune.sequences")
        assert sequence_count(rows, forms, sequences, "finetune.sequences") == len(built) > 0, (forms, sequences)


FAST = ["debug=fast", "logger=none", "eval.cache_before=false"]


@pytest.fixture()
def never_built(monkeypatch):
    """The pipeline with every way to a model, and the before-evaluation, refused."""
    import unlearn.pipeline as pipeline

    def never(*a, **k):
        raise AssertionError("a model was made or evaluated before the teaching's schedule was checked")

    for name in ("initial_model", "load_configured", "evaluate_before", "evaluate"):
        monkeypatch.setattr(pipeline, name, never)
    return pipeline


@pytest.mark.parametrize("overrides, message", [
    # debug=fast: 608 sequences at batch 64, 2 epochs: 20 steps on one process, 10 on two
    (["method=finetune", "finetune.scheduler.pct_start=0.05"],
     r"finetune.scheduler.pct_start=0.05 gives a warm-up of under 2 of the 20 steps \(608 training sequences, "
     r"finetune.batch_size=64 on 1 process, accumulate_grad_batches=1, finetune.epochs=2\)"),
    (["method=finetune", "finetune.scheduler.pct_start=0.15", "trainer=ddp_sim"],
     r"pct_start=0.15 gives a warm-up of under 2 of the 10 steps \(608 training sequences, finetune.batch_size=64 "
     r"on 2 processes"),
    (["method=finetune", "finetune.scheduler.pct_start=0.15", "+finetune.accumulate_grad_batches=2"],
     r"under 2 of the 10 steps .*accumulate_grad_batches=2"),
    (["method=finetune", "finetune.scheduler.pct_start=0.3", "+trainer.max_steps=5"],
     r"under 2 of the 5 steps .*trainer.max_steps=5"),
    (["method=finetune", "model.path=/models/never_loaded", "finetune.scheduler.pct_start=0.05"],
     r"finetune.scheduler.pct_start=0.05 gives a warm-up of under 2 of the 20 steps"),
    # an unlearning run whose vanilla model is missing teaches it first: refused before the model is built
    (["method=ga", "finetune.scheduler.pct_start=0.05"], r"finetune.scheduler.pct_start=0.05 .* 20 steps"),
    (["method=finetune", "~finetune.scheduler", "+finetune.scheduler={_target_: unlearn.optim.linear_schedule, "
      "_partial_: true, warmup_steps: 20}"], r"finetune.scheduler.warmup_steps=20 is not below the 20 steps of the run: .*"
                            r"\(608 training sequences"),
])
def test_a_warmup_too_short_for_the_run_is_refused_before_a_model_is_made(tmp_path, cache_dir, never_built,
                                                                           monkeypatch, overrides, message):
    from unlearn.settings import refused_before_run

    if any(o.startswith("model.path=") for o in overrides):  # a checkpoint that is never read
        monkeypatch.setattr(never_built, "check_input_paths", lambda cfg: None)
    # and before the logger (a W&B run would be left failed)
    monkeypatch.setattr(never_built, "name_logger", lambda *a: pytest.fail("the logger was made before the refusal"))
    cfg = compose_config([*FAST, *overrides], tmp_path / "run", cache_dir)
    with pytest.raises(ValueError, match=message) as refused:
        never_built.run(cfg)
    assert refused_before_run(refused.value)  # train.py prints its message alone


@pytest.mark.parametrize("overrides", [
    ["method=finetune"],  # debug=fast's 0.3 of 20 steps
    ["method=finetune", "finetune.scheduler.pct_start=0.15"],  # 3 of 20 on one process (refused on two above)
    ["method=finetune", "finetune.scheduler=null"],
    ["method=finetune", "~finetune.scheduler", "+finetune.scheduler={_target_: unlearn.optim.linear_schedule, "
     "_partial_: true, warmup_steps: 19}"],
])
def test_a_warmup_that_fits_the_run_reaches_the_model(tmp_path, cache_dir, never_built, overrides):
    cfg = compose_config([*FAST, *overrides], tmp_path / "run", cache_dir)
    with pytest.raises(AssertionError, match="a model was made"):
        never_built.run(cfg)


def test_the_schedule_is_checked_once_a_run_that_teaches_its_vanilla_model(tmp_path, cache_dir, never_built,
                                                                           monkeypatch):
    """An unlearning run whose vanilla model is missing checks the teaching's schedule before the logger, and its
    ensure_vanilla does not check it again (until the forty-seventh session it did); ensure_vanilla called alone
    (bench/ scripts) still checks it."""
    import unlearn.teaching_steps as teaching_steps

    calls = []
    checked = teaching_steps.check_teaching_schedule
    monkeypatch.setattr(teaching_steps, "check_teaching_schedule", lambda *a: calls.append(1) or checked(*a))
    # a cache of its own (the session's may hold the vanilla model by now), the data read from the session's
    cfg = compose_config([*FAST, "method=ga", f"data.benchmark.cache_dir={cache_dir}"], tmp_path / "run",
                         tmp_path / "cache")
    with pytest.raises(AssertionError, match="a model was made"):  # the teaching reached its model
        never_built.run(cfg)
    assert len(calls) == 1
    with pytest.raises(AssertionError, match="a model was made"):
        never_built.ensure_vanilla(cfg, never_built.load_benchmark(cfg))
    assert len(calls) == 2


def test_the_base_pretraining_warmup_is_still_refused_as_it_starts():
    """model.base (the organism's stage 1) has no early count: FinetuneModule refuses it from Lightning's own,
    with the same check and its key."""
    from unlearn.methods.finetune import FinetuneModule

    module = FinetuneModule(torch.nn.Linear(1, 1), functools.partial(torch.optim.SGD, lr=0.1),
                            functools.partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=0.1, pct_start=0.1),
                            config_key="model.base")
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    loader = torch.utils.data.DataLoader(list(range(10)), batch_size=2)
    with pytest.raises(ValueError, match=r"model.base.scheduler.pct_start=0.1 gives a warm-up of under 2 of the 10 "
                                         r"steps; raise it to at least 0.2"):
        trainer.fit(module, loader)


def test_a_warmup_of_a_run_with_no_step_is_refused_by_its_key_not_a_zero_division():
    """trainer.limit_train_batches=0 (or trainer.max_steps=0) counts 0 steps: the refusal's own message,
    naming finetune.scheduler.pct_start (main's FinetuneModule gave one), not a ZeroDivisionError."""
    from unlearn.teaching_steps import check_pct_start, optimizer_steps

    total = optimizer_steps(608, 64, 2, limit_batches=0)
    assert total == 0
    factory = functools.partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=0.1, pct_start=0.05)
    with pytest.raises(ValueError, match=r"finetune.scheduler.pct_start=0.05 .* of the 0 steps"):
        check_pct_start(factory, total, "finetune.scheduler")
