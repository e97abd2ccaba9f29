from types import SimpleNamespace

import lightning as L
import pytest
import torch

from unlearn.data.collate import collate
from unlearn.data.sequences import QASequences
from unlearn.eval.scoring import answer_logprobs
from unlearn.methods.gradient import GradientUnlearning, paired_loader
from unlearn.methods.guards import NonFiniteGradientError, NonFiniteLossError, non_finite_gradients


def _trainer(**kw):
    return L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                     enable_model_summary=False, enable_checkpointing=False, **kw)


def _first_batches(proc, bench, n=4):
    """The first `n` forget and retain rows (image+text form), each as one collated batch."""
    return tuple(collate([d[i] for i in range(n)], proc.tokenizer.pad_token_id)
                 for d in (QASequences(bench.train_rows(split), proc, "multimodal") for split in ("forget", "retain")))


def _perturbed_copy(model, scale=0.05):
    """A reference that differs from `model` (seeded noise on every weight): against the model's own copy, the
    default reference, KL is 0 and NPO's ratio is 0, so neither shows that it reads the reference."""
    import copy

    reference = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in reference.parameters():
            p.add_(scale * torch.randn(p.shape, generator=generator))
    return reference


def _forget_logprob(model, proc, bench):
    data = QASequences(bench.train_rows("forget"), proc, "multimodal")
    batch = collate([data[i] for i in range(len(data))], proc.tokenizer.pad_token_id)
    model.eval()
    return answer_logprobs(model, batch).mean().item()


@pytest.mark.parametrize("loss", ["ga", "grad_diff", "kl", "npo"])
def test_few_steps_lower_forget_likelihood(loss, tiny_model, small_benchmark):
    model, proc = tiny_model
    ctx = SimpleNamespace(benchmark=small_benchmark, processor=proc)
    before = _forget_logprob(model, proc, small_benchmark)
    module = GradientUnlearning(model, loss, lambda p: torch.optim.SGD(p, lr=0.5), alpha=0.5 if loss == "npo" else 1.0)
    if module.reference is not None:
        ref_before = {n: p.clone() for n, p in module.reference.named_parameters()}
        assert not any(p.requires_grad for p in module.reference.parameters())
    _trainer(max_steps=3).fit(module, paired_loader(ctx, "multimodal", 8))
    after = _forget_logprob(model, proc, small_benchmark)
    assert after < before - 0.05, (before, after)
    if module.reference is not None:
        assert all(torch.equal(p, ref_before[n]) for n, p in module.reference.named_parameters())


def test_forget_modality_selects_forms(tiny_model, small_benchmark):
    _, proc = tiny_model
    ctx = SimpleNamespace(benchmark=small_benchmark, processor=proc)
    sizes = {m: len(paired_loader(ctx, m, 4).iterables["forget"].dataset) for m in ("multimodal", "text", "both")}
    assert sizes["both"] == sizes["multimodal"] + sizes["text"] and sizes["text"] == sizes["multimodal"]
    batch = next(iter(paired_loader(ctx, "text", 4).iterables["forget"]))
    assert "pixel_values" not in batch
    with pytest.raises(ValueError, match="data.forget_modality='image'"):
        paired_loader(ctx, "image", 4)


def test_nan_loss_stops_before_the_weights_move(tiny_model, small_benchmark):
    model, proc = tiny_model
    ctx = SimpleNamespace(benchmark=small_benchmark, processor=proc)
    module = GradientUnlearning(model, "ga", lambda p: torch.optim.SGD(p, lr=0.5))
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}

    def poison(m, args, out):
        return out * float("nan")

    model.get_submodule("lm_head").register_forward_hook(poison)
    with pytest.raises(NonFiniteLossError, match=r"the method=ga loss is nan at global step 0"):
        _trainer(max_steps=2).fit(module, paired_loader(ctx, "multimodal", 8))
    assert all(torch.equal(p, weights[n]) for n, p in model.named_parameters())


@pytest.mark.parametrize("clip", [None, 1.0])
def test_a_nan_gradient_of_a_finite_loss_stops_before_the_weights_move(tiny_model, small_benchmark, clip):
    """Clipping on (every trainer preset's 1.0) or off: the loss is finite, one tensor's gradient is NaN."""
    model, proc = tiny_model
    ctx = SimpleNamespace(benchmark=small_benchmark, processor=proc)
    module = GradientUnlearning(model, "grad_diff", lambda p: torch.optim.AdamW(p, lr=0.5))
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.get_parameter("lm_head.weight").register_hook(lambda g: g * float("nan"))
    with pytest.raises(NonFiniteGradientError, match=r"the method=grad_diff step has a non-finite gradient at "
                                                     r"global step 0 \(in model.lm_head.weight\)"):
        _trainer(max_steps=2, gradient_clip_val=clip).fit(module, paired_loader(ctx, "multimodal", 8))
    assert all(torch.equal(p, weights[n]) for n, p in model.named_parameters())


def test_non_finite_gradients_names_the_tensors():
    a, b, c, d = (torch.nn.Parameter(torch.zeros(2)) for _ in range(4))
    a.grad, b.grad, c.grad = torch.tensor([1.0, float("inf")]), torch.ones(2), torch.tensor([float("nan"), 0.0])
    assert non_finite_gradients([("a", a), ("b", b), ("c", c), ("d", d)]) == ["a", "c"]
    assert non_finite_gradients([("b", b), ("d", d)]) == [] and non_finite_gradients([]) == []


def test_unknown_loss_is_named(tiny_model):
    with pytest.raises(ValueError, match="method.loss='ascent'"):
        GradientUnlearning(tiny_model[0], "ascent", torch.optim.SGD)


def _killed_at_the_second_epoch(go, *args) -> None:
    """`go(*args)`, a gradient run, interrupted as its second epoch starts (after the first epoch's checkpoint)."""
    from unlearn.methods.gradient import GradientUnlearning as Module

    def interrupt(self):
        if self.current_epoch == 1:
            raise RuntimeError("killed")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Module, "on_train_epoch_start", interrupt, raising=False)
        with pytest.raises(RuntimeError, match="killed"):
            go(*args)


def test_resume_reaches_the_same_result(tmp_path, small_benchmark, caplog):
    import copy
    import logging

    from omegaconf import open_dict

    from unlearn.methods.gradient import run
    from unlearn.models.tiny_llava import TinyLlavaSpec, build_tiny_llava
    from unlearn.pipeline import RunContext

    from .test_finetune import _cfg

    start, proc = build_tiny_llava(TinyLlavaSpec())

    def go(name, epochs, ckpt=None):
        cfg = _cfg(tmp_path / name, "method=npo", f"method.epochs={epochs}", "method.batch_size=8")
        with open_dict(cfg):
            cfg.method.ckpt_path = str(ckpt) if ckpt else None
        ctx = RunContext(cfg, small_benchmark, copy.deepcopy(start), proc, tmp_path / name)
        L.seed_everything(0)
        run(ctx)
        return {n: p.detach() for n, p in ctx.model.named_parameters()}

    straight = go("straight", 2)
    # killed as the second epoch starts: the first epoch's checkpoint must be there (until 2026-12-05 last.ckpt
    # was written only as fit ended, so an interrupted run left none)
    _killed_at_the_second_epoch(go, "killed", 2)
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    assert last.is_file()
    # without the frozen reference, which the resumed run loads again (it doubled every checkpoint at 7B)
    saved = torch.load(last, map_location="cpu", weights_only=False)["state_dict"]
    assert saved and not [k for k in saved if k.startswith("reference.")]
    assert any(k.startswith("model.") for k in saved)
    resumed = go("resumed", 2, ckpt=last)
    changed = [n for n in straight if not torch.equal(straight[n], start.get_parameter(n))]
    assert changed, "two epochs of NPO changed nothing"
    for n in straight:
        torch.testing.assert_close(resumed[n], straight[n], rtol=0, atol=1e-6, msg=n)
    # a checkpoint of other settings, or one with no epochs left, is refused before any step (until 2026-12-05
    # they ran the old settings, or nothing, and saved the result under the new ones)
    cfg = _cfg(tmp_path / "other", "method=npo", "method.epochs=2", "method.batch_size=8", "method.beta=0.5")
    with open_dict(cfg):
        cfg.method.ckpt_path = str(last)
    with pytest.raises(ValueError, match=r"saved under other settings \(method.beta: saved 0.1, now 0.5\)"):
        run(RunContext(cfg, small_benchmark, copy.deepcopy(start), proc, tmp_path / "other"))
    # and by the check before the before-evaluation (unlearn.settings.check_input_paths), from the file alone
    from unlearn.methods.gradient import check_resume_file

    with pytest.raises(ValueError, match=r"saved under other settings \(method.beta: saved 0.1, now 0.5\)"):
        check_resume_file(last, cfg)
    same = _cfg(tmp_path / "same", "method=npo", "method.epochs=2", "method.batch_size=8")
    check_resume_file(last, same)
    # method.batch_size is per process: on two processes the same setting is twice the global batch
    two = _cfg(tmp_path / "two", "method=npo", "method.epochs=2", "method.batch_size=8", "trainer=ddp_sim")
    with pytest.raises(ValueError, match=r"saved under other settings \(processes: saved 1, now 2[;)]"):
        check_resume_file(last, two)
    # a checkpoint of every epoch (a run killed in its after-evaluation or its writing) is restored, not trained
    # on: until 2026-12-06 refused ("nothing is left to run"), so the unlearning had to be run again
    finished = tmp_path / "straight" / "checkpoints" / "last.ckpt"
    with caplog.at_level(logging.INFO, "unlearn.methods.gradient"):
        check_resume_file(finished, same)  # as a run checks it before its before-evaluation
        restored = go("finished", 2, ckpt=finished)
    # said once, as Lightning restores it (until the forty-ninth session the check before the run said it too)
    assert caplog.text.count("the checkpoint has run all 2 epochs; its weights are restored and evaluated") == 1
    for n in straight:
        assert torch.equal(restored[n], straight[n]), n
    same.method.epochs = 1
    check_resume_file(last, same)
    one_epoch = torch.load(last, map_location="cpu", weights_only=False)["state_dict"]
    for n, w in go("again", 1, ckpt=last).items():
        assert torch.equal(w, one_epoch[f"model.{n}"]), n
    # fewer epochs than the checkpoint ran: refused
    with pytest.raises(ValueError, match="has run 2 epochs, more than this run's method.epochs=1"):
        check_resume_file(finished, same)


def test_a_checkpoint_without_the_reference_loads_strictly(tiny_model):
    from unlearn.methods.gradient import is_reference_key

    model = tiny_model[0]
    module = GradientUnlearning(model, "kl", torch.optim.SGD)
    state = module.state_dict()
    assert any(k.startswith("reference.") for k in state)
    without = {k: v for k, v in state.items() if not k.startswith("reference.")}
    module.load_state_dict(without)  # strict: the reference keys alone may be missing
    one_gone = dict(without)
    one_gone.pop(next(iter(without)))
    with pytest.raises(RuntimeError, match="Missing key"):
        module.load_state_dict(one_gone)
    # as FSDP's and activation checkpointing's wrappers name the keys
    assert is_reference_key("_fsdp_wrapped_module.reference.model.lm_head.weight")
    assert is_reference_key("reference._checkpoint_wrapped_module.layers.0.mlp.fc1.weight")
    assert not is_reference_key("_fsdp_wrapped_module.model.reference.weight")


def test_resume_into_its_own_directory_says_so_without_lightnings_warning(tmp_path, small_benchmark, caplog):
    """The refusal of an interrupted run's directory says to resume into it (method.ckpt_path=<dir>/checkpoints/
    last.ckpt): Lightning then warned "Checkpoint directory ... exists and is not empty" about the very checkpoint
    it resumed, and nothing said where the run started (forty-fifth session, a researcher's walk-through)."""
    import copy
    import logging
    import warnings as py_warnings

    from omegaconf import open_dict

    from unlearn.methods.gradient import run
    from unlearn.models.tiny_llava import TinyLlavaSpec, build_tiny_llava
    from unlearn.pipeline import RunContext

    from .test_finetune import _cfg

    start, proc = build_tiny_llava(TinyLlavaSpec())
    out = tmp_path / "run"

    def go(ckpt=None):
        cfg = _cfg(out, "method=ga", "method.epochs=2", "method.batch_size=8")
        with open_dict(cfg):
            cfg.method.ckpt_path = str(ckpt) if ckpt else None
        L.seed_everything(0)
        run(RunContext(cfg, small_benchmark, copy.deepcopy(start), proc, out))

    _killed_at_the_second_epoch(go)
    last = out / "checkpoints" / "last.ckpt"
    assert last.is_file()
    with py_warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.INFO, "unlearn.methods.gradient"):
        py_warnings.simplefilter("always")
        go(ckpt=last)
    assert not [w for w in caught if "exists and is not empty" in str(w.message)]
    assert "method.ckpt_path: resuming after epoch 1 of 2" in caplog.text


def test_check_resume_by_hand():
    from unlearn.methods.gradient import check_resume

    saved = {"method": {"loss": "ga", "optimizer": {"lr": 5e-5}}, "seed": 0}
    check_resume(saved, saved, 1, 2)
    check_resume(None, saved, 1, 2)  # a checkpoint from before the record: not compared
    with pytest.raises(ValueError, match=r"method.optimizer.lr: saved 5e-05, now 0.001; seed: saved 0, now 1"):
        check_resume(saved, {"method": {"loss": "ga", "optimizer": {"lr": 1e-3}}, "seed": 1}, 1, 2)
    # a setting added since the checkpoint was made is not a difference
    check_resume(saved, {"method": {"loss": "ga", "optimizer": {"lr": 5e-5}, "new_key": 1}, "seed": 0,
                         "data": {"forget_split": "forget_10"}}, 1, 2)
    # ... unless its absence says what the checkpoint ran under (later_keys.RUN's method keys; the processor):
    # NPO before method.npo_empty_rows skipped empty rows, and a checkpoint's own processor was read
    npo = {"method": {"loss": "npo"}, "seed": 0}
    check_resume(npo, {"method": {"loss": "npo", "npo_empty_rows": "skip"}, "seed": 0, "processor": None}, 1, 2)
    with pytest.raises(ValueError, match=r"method.npo_empty_rows: saved 'skip', now 'count'; processor: saved None"):
        check_resume(npo, {"method": {"loss": "npo", "npo_empty_rows": "count"}, "seed": 0, "processor": "/p"}, 1, 2)
    with pytest.raises(ValueError, match=r"source_model: saved 'a', now 'b'\) \(source_model: another cached vanilla "
                                         r"model, whose key a teaching setting moves"):
        check_resume({**saved, "source_model": "a"}, {**saved, "source_model": "b"}, 1, 2)
    # a checkpoint of every epoch (a run killed in its evaluation or its writing) is restored and evaluated: until
    # 2026-12-06 refused, so the unlearning had to be run again; one of more epochs than the run's is refused
    check_resume(saved, saved, 2, 2)
    with pytest.raises(ValueError, match="has run 3 epochs, more than this run's method.epochs=2"):
        check_resume(saved, saved, 3, 2)
    # more epochs resume at a constant lr; under an lr schedule, which spans the run's epochs, they are refused
    made = {**saved, "epochs": 2}
    check_resume(made, {**made, "epochs": 4}, 2, 4)
    decaying = {"method": {**saved["method"], "lr_decay": "linear"}, "seed": 0, "epochs": 2}
    with pytest.raises(ValueError, match=r"made for method.epochs=2, whose lr schedule .* resumed for 4 it would "
                                         r"follow neither schedule: resume with method.epochs=2"):
        check_resume(decaying, {**decaying, "epochs": 4}, 2, 4)
    check_resume(decaying, decaying, 1, 2)


def test_lora_trains_adapters_and_merges_back(tmp_path, small_benchmark):
    import copy

    from unlearn.methods.gradient import run
    from unlearn.models.tiny_llava import TinyLlavaSpec, build_tiny_llava
    from unlearn.pipeline import RunContext

    from .test_finetune import _cfg

    start, proc = build_tiny_llava(TinyLlavaSpec())
    cfg = _cfg(tmp_path, "method=npo", "method.epochs=1", "method.lora.enabled=true", "method.alpha=1.0",
               "method.optimizer.lr=0.05")
    ctx = RunContext(cfg, small_benchmark, copy.deepcopy(start), proc, tmp_path)
    run(ctx)
    assert type(ctx.model) is type(start)  # adapters merged: a plain model, saved and loaded as usual
    after = dict(ctx.model.named_parameters())
    assert after.keys() == dict(start.named_parameters()).keys()
    changed = {n for n, p in after.items() if not torch.equal(p, start.get_parameter(n))}
    assert changed and all(any(t in n for t in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                                "down_proj")) for n in changed), sorted(changed)[:5]
    assert "model.language_model.embed_tokens.weight" not in changed


def test_scheduler_from_config(tiny_model, small_benchmark):
    import functools

    model, proc = tiny_model
    ctx = SimpleNamespace(benchmark=small_benchmark, processor=proc)
    sched = functools.partial(torch.optim.lr_scheduler.LinearLR, start_factor=1.0, end_factor=0.1, total_iters=2)
    module = GradientUnlearning(model, "ga", lambda p: torch.optim.SGD(p, lr=0.1), scheduler=sched)
    _trainer(max_steps=2).fit(module, paired_loader(ctx, "text", 8))
    assert module.trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.01)


@pytest.mark.parametrize("loss", ["ga", "npo"])
def test_a_loaded_model_trains_in_train_mode_without_lightnings_eval_mode_warning(loss, tiny_model, small_benchmark):
    """from_pretrained returns eval mode; the model must train in train mode, the reference stay in eval mode,
    and Lightning's warning about modules in eval mode (printed by every GA run before) not appear."""
    from tests.modes import eval_mode_warnings
    from unlearn.methods.gradient import frozen_reference_expected

    model, proc = tiny_model
    model.eval()
    ctx = SimpleNamespace(benchmark=small_benchmark, processor=proc)
    modes = []

    class Spy(GradientUnlearning):
        def training_step(self, batch, batch_idx):
            modes.append((self.model.training, None if self.reference is None else self.reference.training))
            return super().training_step(batch, batch_idx)

    module = Spy(model, loss, lambda p: torch.optim.SGD(p, lr=0.1))

    def fit():
        with frozen_reference_expected(module):
            _trainer(max_steps=1).fit(module, paired_loader(ctx, "multimodal", 8))

    assert not eval_mode_warnings(fit)
    assert modes == [(True, None if loss == "ga" else False)]


def test_a_model_left_in_eval_mode_is_refused(tiny_model, small_benchmark):
    """The check that stands in for the silenced warning."""
    model, proc = tiny_model
    ctx = SimpleNamespace(benchmark=small_benchmark, processor=proc)

    class Broken(GradientUnlearning):
        def on_fit_start(self):
            super().on_fit_start()
            self.model.eval()

    module = Broken(model, "npo", lambda p: torch.optim.SGD(p, lr=0.1))
    with pytest.raises(RuntimeError, match="eval mode at the start of unlearning"):
        _trainer(max_steps=1).fit(module, paired_loader(ctx, "multimodal", 8))


@pytest.mark.parametrize("loss", ["grad_diff", "kl", "npo"])
def test_gamma_weighs_the_forget_term_of_every_method_that_reads_it(loss, tiny_model, small_benchmark):
    """open-unlearning's GradDiff (with either retain loss) and NPO: gamma * forget + alpha * retain. Until
    2026-12-03 KL and NPO ignored method.gamma; now the paired loss and the sequential forget step read it."""
    model, proc = tiny_model
    f, r = _first_batches(proc, small_benchmark)
    model.eval()  # no dropout: the same batch gives the same loss
    with torch.no_grad():
        paired, forget = {}, {}
        for gamma in (1.0, 3.0):
            module = GradientUnlearning(model, loss, torch.optim.SGD, gamma=gamma, alpha=0.5)
            paired[gamma] = module._paired_loss(f, r, None).item()
            forget[gamma] = module._forget_term(f, None).item()
        retain_only = GradientUnlearning(model, loss, torch.optim.SGD, gamma=1.0, alpha=0.5)._retain_term(r, None).item()
    assert forget[3.0] == pytest.approx(3 * forget[1.0], rel=1e-5) and abs(forget[1.0]) > 1e-3
    assert paired[3.0] - retain_only == pytest.approx(3 * (paired[1.0] - retain_only), rel=1e-4)


@pytest.mark.parametrize("loss", ["grad_diff", "kl", "npo"])
def test_alpha_weighs_the_retain_term_of_every_method_that_reads_it(loss, tiny_model, small_benchmark):
    """gamma * forget + alpha * retain, the retain term nonzero: KL's against a reference that differs from the
    model (against the model's own copy, the default, it is exactly 0 and no weighting shows)."""
    model, proc = tiny_model
    f, r = _first_batches(proc, small_benchmark)
    model.eval()
    reference = _perturbed_copy(model)
    with torch.no_grad():
        paired, retain = {}, {}
        for alpha in (0.5, 2.0):
            module = GradientUnlearning(model, loss, torch.optim.SGD, gamma=1.0, alpha=alpha, reference=reference)
            paired[alpha] = module._paired_loss(f, r, None).item()
            retain[alpha] = module._retain_term(r, None).item()
    assert retain[2.0] == pytest.approx(4 * retain[0.5], rel=1e-5) and abs(retain[0.5]) > 1e-3
    assert paired[2.0] - paired[0.5] == pytest.approx(retain[2.0] - retain[0.5], rel=1e-4)


def test_process_token_mean_by_hand():
    """method.token_mean=process: each process's mean over its own batch (the official scripts' per-device loss).
    One process: exactly global_batch_mean's total / count. Two, with 3 of 8 tokens here: 1.2 / 3, not
    2 * 1.2 / 8; a shard of padding alone: 0, keeping the graph (DDP needs every rank's backward)."""
    from unlearn.methods.gradient import global_batch_mean, process_batch_mean

    one = SimpleNamespace(world_size=1, strategy=SimpleNamespace(reduce=lambda t, reduce_op: t))
    total, count = torch.tensor(1.2, requires_grad=True), torch.tensor(3)
    assert torch.equal(process_batch_mean(one)(total, count), global_batch_mean(one)(total, count))
    def summed(t, reduce_op):  # the count summed across processes: a mean of the counts would read 8 / 2
        assert reduce_op == "sum"
        return torch.tensor(8)

    two = SimpleNamespace(world_size=2, strategy=SimpleNamespace(reduce=summed))
    assert process_batch_mean(two)(total, count).item() == pytest.approx(1.2 / 3)
    assert global_batch_mean(two)(total, count).item() == pytest.approx(2 * 1.2 / 8)
    zero = process_batch_mean(two)(total, torch.tensor(0))
    assert zero.item() == 0.0 and zero.requires_grad
    assert process_batch_mean(two).world_size == 2


def test_official_gradient_presets_take_each_process_mean(tmp_path):
    from unlearn.config import compose_config
    from unlearn.methods.gradient import process_batch_mean

    for preset in ("mllmu_baselines", "mmunlearner_baselines", "clear_baselines", "mmunlearner_clear_baselines"):
        assert compose_config([f"experiment={preset}"], tmp_path, tmp_path / "c").method.token_mean == "process"
    assert compose_config(["method=grad_diff"], tmp_path, tmp_path / "c").method.token_mean == "global"
    module = GradientUnlearning(torch.nn.Linear(1, 1), "ga", optimizer=None, token_mean="process")
    assert module.batch_mean is process_batch_mean
    with pytest.raises(ValueError, match="method.token_mean='rank'"):
        GradientUnlearning(torch.nn.Linear(1, 1), "ga", optimizer=None, token_mean="rank")


def test_a_reference_path_is_not_loaded_for_a_method_that_reads_none(tmp_path, small_benchmark, monkeypatch, caplog):
    """A sweep `-m method=ga,npo method.reference_path=...` hands GA the NPO oracle: until 2026-12-05 GA loaded it
    (a whole 7B model, unused); now it says so and leaves it."""
    import copy

    import unlearn.models.loading as loading
    from unlearn.methods.gradient import run
    from unlearn.models.tiny_llava import TinyLlavaSpec, build_tiny_llava
    from unlearn.pipeline import RunContext

    from .test_finetune import _cfg

    def never(*a, **k):
        raise AssertionError("the reference was loaded")

    monkeypatch.setattr(loading, "load_model", never)
    start, proc = build_tiny_llava(TinyLlavaSpec())
    cfg = _cfg(tmp_path, "method=ga", "method.epochs=1", "method.reference_path=/oracle/model")
    run(RunContext(cfg, small_benchmark, copy.deepcopy(start), proc, tmp_path))
    assert "read by KL and NPO only" in caplog.text


@pytest.mark.parametrize("log_ratio", ["sequence_sum", "token_mean"])
def test_npo_reads_its_reference_and_its_log_ratio(log_ratio, tiny_model, small_benchmark):
    """The module's NPO losses are losses.npo_loss of the model's logits against the reference's, with the
    configured log ratio. A mutation that scored the model against itself (r = 0: gradient ascent at weight 1)
    or dropped method.npo_log_ratio passed every fast test until 2026-12-05 (a review's mutation run)."""
    from unlearn import losses

    model, proc = tiny_model
    f, r = _first_batches(proc, small_benchmark)
    model.eval()
    reference = _perturbed_copy(model)
    with torch.no_grad():
        module = GradientUnlearning(model, "npo", torch.optim.SGD, alpha=0.5, beta=0.4, reference=reference,
                                    npo_log_ratio=log_ratio)
        logits = lambda m, b: m(**{k: v for k, v in b.items() if k != "labels"}, use_cache=False).logits  # noqa: E731
        fl, rl, ref = logits(model, f), logits(model, r), logits(reference, f)
        want_forget = losses.npo_loss(fl, ref, f["labels"], 0.4, log_ratio=log_ratio)
        want_paired = losses.npo_loss(fl, ref, f["labels"], 0.4, rl, r["labels"], alpha=0.5, log_ratio=log_ratio)
        other = "token_mean" if log_ratio == "sequence_sum" else "sequence_sum"
        against_itself = losses.npo_loss(fl, fl, f["labels"], 0.4, log_ratio=log_ratio)
        other_ratio = losses.npo_loss(fl, ref, f["labels"], 0.4, log_ratio=other)
        got_forget, got_paired = module._forget_term(f, None), module._paired_loss(f, r, None)
    torch.testing.assert_close(got_forget, want_forget, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_paired, want_paired, rtol=1e-5, atol=1e-6)
    assert abs(got_forget.item() - against_itself.item()) > 1e-3  # the reference is read
    assert abs(got_forget.item() - other_ratio.item()) > 1e-4  # and the ratio is the configured one


@pytest.mark.parametrize("reduction", ["answer_mean", "position_mean", "batch_sum"])
@pytest.mark.parametrize("retain_nll", [False, True])
def test_the_paired_kl_step_reads_its_reduction_and_retain_nll(reduction, retain_nll):
    """The paired schedule's KL loss is losses.kl_loss at method.kl_reduction (experiment=clear_baselines:
    position_mean), plus the retain NLL under method.kl_retain_nll: until 2026-12-06 only the sequential schedules'
    terms were held to them."""
    from unlearn import losses
    from unlearn.methods.gradient import GradientUnlearning

    g = torch.Generator().manual_seed(0)
    logits = {k: torch.randn(2, 5, 7, generator=g) for k in ("f", "r", "ref")}
    labels = {k: torch.randint(0, 7, (2, 5), generator=g) for k in ("f", "r")}
    labels["r"][:, :2] = -100
    module = GradientUnlearning(torch.nn.Linear(2, 2), "kl", lambda p: None, gamma=0.5, alpha=2.0,
                                kl_reduction=reduction, kl_retain_nll=retain_nll)
    module._logits = lambda model, batch: logits[batch["k"]]
    module._ref_logits = lambda batch: logits["ref"]
    got = module._paired_loss({"k": "f", "labels": labels["f"]}, {"k": "r", "labels": labels["r"]}, None)
    want = losses.kl_loss(logits["f"], labels["f"], logits["r"], logits["ref"], labels["r"], 2.0, None, reduction, 0.5)
    if retain_nll:
        want = want + losses.mean_nll(logits["r"], labels["r"])
    torch.testing.assert_close(got, want)
    other = next(r for r in losses.KL_REDUCTIONS if r != reduction)  # the setting changes the loss
    assert not torch.allclose(got, losses.kl_loss(logits["f"], labels["f"], logits["r"], logits["ref"], labels["r"],
                                                  2.0, None, other, 0.5) + (losses.mean_nll(logits["r"], labels["r"])
                                                                             if retain_nll else 0))


def test_the_gradient_refusal_names_three_tensors_skips_a_scaler_and_follows_the_other_ranks():
    """By hand, no Trainer: wrapper prefixes dropped and three names then a count; a loss scaler's steps are its own
    to skip; under several processes a NaN on another rank alone stops this one too (any rank, not all)."""
    from unlearn.methods.guards import check_finite, refuse_non_finite_gradients

    params = [torch.nn.Parameter(torch.zeros(2)) for _ in range(5)]
    for p in params[:4]:
        p.grad = torch.tensor([0.0, float("nan")])
    names = ["_fsdp_wrapped_module.a", "_orig_mod.b", "c._checkpoint_wrapped_module.w", "d", "e"]
    module = SimpleNamespace(_trainer=None, global_step=7, named_parameters=lambda: zip(names, params))
    with pytest.raises(NonFiniteGradientError, match=r"my step has a non-finite gradient at global step 7 "
                                                     r"\(in a, b, c\.w and 1 more\)"):
        refuse_non_finite_gradients(module, "my step")
    module._trainer = SimpleNamespace(precision_plugin=SimpleNamespace(scaler=object()), world_size=1)
    refuse_non_finite_gradients(module, "my step")  # the scaler skips the step itself

    class Ranks:  # this rank's decision, and the other rank's
        def __init__(self, other):
            self.other, self.asked = other, []

        def reduce_boolean_decision(self, decision, all):
            self.asked.append(all)
            return (decision and self.other) if all else (decision or self.other)

    for p in params:
        p.grad = torch.zeros(2)
    ranks = Ranks(other=True)
    module._trainer = SimpleNamespace(precision_plugin=SimpleNamespace(), world_size=2, strategy=ranks)
    with pytest.raises(NonFiniteGradientError, match=r"\(on another rank\)"):
        refuse_non_finite_gradients(module, "my step")
    assert ranks.asked == [False]
    module._trainer.strategy = Ranks(other=False)
    refuse_non_finite_gradients(module, "my step")
    with pytest.raises(NonFiniteLossError, match=r"is \[1.0, nan\] at global step 3"):
        check_finite(torch.tensor([1.0, float("nan")]), 3)  # one NaN element is enough
