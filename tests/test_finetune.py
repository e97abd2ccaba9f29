import pytest
import torch

from unlearn.config import compose_config
from unlearn.data.collate import collate
from unlearn.data.sequences import QASequences
from unlearn.eval.scoring import answer_logprobs
from unlearn.methods.finetune import teach
from unlearn.pipeline import RunContext


def _cfg(tmp_path, *overrides):
    return compose_config(["debug=fast", *overrides], tmp_path, tmp_path / "cache")


def _mean_logprob(model, proc, rows):
    data = QASequences(rows, proc, ("multimodal", "text"))
    batch = collate([data[i] for i in range(len(data))], proc.tokenizer.pad_token_id)
    model.eval()
    return answer_logprobs(model, batch).mean().item()


def test_finetune_measurably_learns(tmp_path, small_benchmark, tiny_model):
    model, proc = tiny_model
    cfg = _cfg(tmp_path, "finetune.epochs=3", "finetune.batch_size=32", "finetune.target_mc_acc=null")
    rows = small_benchmark.train_rows("retain").select(range(3))
    before = _mean_logprob(model, proc, rows)
    ctx = RunContext(cfg, small_benchmark, model, proc, tmp_path)
    teach(ctx, cfg.finetune)
    after = _mean_logprob(model, proc, rows)
    # answers are 1-5 words; a fresh model is near-uniform over ~240 tokens (about -5.5 nats per token)
    assert after > before + 3.0, (before, after)


def test_sequences_supervise_answers_in_both_forms(small_benchmark, tiny_model):
    _, proc = tiny_model
    rows = small_benchmark.train_rows("forget")
    data = QASequences(rows, proc, ("multimodal", "text"), augment=True)
    n_qa = sum(len(r["qa"]) for r in rows)
    assert len(data) == 2 * n_qa
    mm, tx = data[0], data[1]
    assert mm.pixel_values is not None and tx.pixel_values is None
    answer = lambda ex: [t for t, l in zip(ex.input_ids, ex.labels) if l != -100]  # noqa: E731
    assert answer(mm) == answer(tx)
    assert torch.equal(QASequences(rows, proc, "multimodal")[0].pixel_values,
                       proc.pixel_values([rows[0]["images"][0]])[0])


def test_teaching_stops_once_probe_is_answered(tmp_path, small_benchmark, tiny_model, caplog, monkeypatch):
    from callbacks.memorisation import MemorisationCheck
    from unlearn.eval.items import flatten

    model, proc = tiny_model
    # target 0: the first check (epoch 2) already passes, so 2 of the 6 epochs run
    cfg = _cfg(tmp_path, "finetune.epochs=6", "finetune.check_every=2", "finetune.target_mc_acc=0.0",
               "finetune.target_split_mc_acc=null", "finetune.probe_people=1", "finetune.forms=[text]")
    ctx = RunContext(cfg, small_benchmark, model, proc, tmp_path)
    teach(ctx, cfg.finetune)
    history = ctx.artifacts["finetune_probe"]
    assert [h["epoch"] for h in history] == [2]
    assert set(history[0]) == {"epoch", "multimodal", "text"}
    # the pooled probe passes at once, a split floor nobody reaches holds teaching to max_epochs; each split's
    # accuracy is scored on its own people
    cfg = _cfg(tmp_path, "finetune.epochs=3", "finetune.check_every=2", "finetune.target_mc_acc=0.0",
               "finetune.target_split_mc_acc=1.01", "finetune.probe_people=1", "finetune.forms=[text]")
    ctx = RunContext(cfg, small_benchmark, model, proc, tmp_path)
    made = []
    real_init = MemorisationCheck.__init__

    def init(self, *a, **k):
        real_init(self, *a, **k)
        made.append(self)

    monkeypatch.setattr(MemorisationCheck, "__init__", init)
    with caplog.at_level("INFO", logger="callbacks.memorisation"):
        teach(ctx, cfg.finetune)
    assert "epoch 2: the pooled probe is answered, not every split" in caplog.text
    history = ctx.artifacts["finetune_probe"]
    assert [h["epoch"] for h in history] == [2, 3]
    assert set(history[0]) == {"epoch", "multimodal", "text", "forget/multimodal", "forget/text",
                               "retain/multimodal", "retain/text"}
    # the pooled probe reads one person per split; the floor every forget and retain MC question
    (check,) = made
    assert {it.person for it in check.items} < {it.person for it in check.split_items}
    whole = [it for split in ("forget", "retain") for it in flatten(split, small_benchmark.eval[split],
                                                                    proc.pixel_values) if it.task == "mc"]
    assert [it.uid for it in check.split_items] == [it.uid for it in whole]
    # the reference model (forget people untaught): the floor reads the retain split alone
    cfg = _cfg(tmp_path, "finetune.epochs=2", "finetune.check_every=2", "finetune.target_mc_acc=0.0",
               "finetune.target_split_mc_acc=0.0", "finetune.probe_people=1", "finetune.forms=[text]",
               "finetune.people=without_forget")
    teach(RunContext(cfg, small_benchmark, model, proc, tmp_path), cfg.finetune)
    assert {it.split for it in made[-1].split_items} == {"retain"}
    assert len(made[-1].split_items) == sum(it.task == "mc" for it in flatten("retain", small_benchmark.eval["retain"],
                                                                              proc.pixel_values))
    # an unreachable target: every check runs, the last at max_epochs
    cfg = _cfg(tmp_path, "finetune.epochs=3", "finetune.check_every=2", "finetune.target_mc_acc=1.01",
               "finetune.probe_people=1", "finetune.forms=[text]")
    ctx = RunContext(cfg, small_benchmark, model, proc, tmp_path)
    teach(ctx, cfg.finetune)
    assert [h["epoch"] for h in ctx.artifacts["finetune_probe"]] == [2, 3]


def test_freeze_holds_parameters_and_names_bad_patterns(tiny_model):
    import pytest

    from unlearn.methods.finetune import freeze

    model, _ = tiny_model
    frozen = freeze(model, [r"embed_tokens", r"lm_head"])
    assert len(frozen) == 2 and not any(p.requires_grad for p in frozen)
    with pytest.raises(ValueError, match="finetune.frozen pattern 'nothing_here'"):
        freeze(model, ["nothing_here"])


def test_annealed_lr_by_hand():
    import pytest

    from callbacks.memorisation import annealed_lr

    assert [annealed_lr(0.004, k, 4) for k in range(6)] == pytest.approx([0.004, 0.003, 0.002, 0.001, 0.0, 0.0])
    with pytest.raises(ValueError, match="steps must be positive"):
        annealed_lr(0.1, 0, 0)


def test_probe_answered_and_floor_held_by_hand():
    from callbacks.memorisation import floor_held, probe_answered

    assert probe_answered({"multimodal": 0.98, "text": 0.97}, 0.97)
    assert not probe_answered({"multimodal": 0.98, "text": 0.96}, 0.97)
    assert not probe_answered({}, 0.0)  # nothing scored: never answered
    splits = {"forget/multimodal": 1.0, "forget/text": 0.94, "retain/multimodal": 0.97, "retain/text": 0.985}
    assert not floor_held(splits, 0.95)  # the forget people at 0.94 text-only, as one AVX-512 seed was
    assert floor_held({**splits, "forget/text": 0.95}, 0.95)  # at the floor: held
    assert not floor_held({}, 0.0)


def test_the_floor_scores_the_splits_only_where_the_pooled_probe_passes(monkeypatch):
    """The whole splits are scored at the checks where the pooled probe is answered, and hold the stop there."""
    from types import SimpleNamespace

    import callbacks.memorisation as memorisation
    from unlearn.eval.items import EvalItem

    def item(uid, split, modality):
        return EvalItem(uid=uid, split=split, modality=modality, task="mc", person=0, attribute="a", question="q",
                        answer="x")

    probe = [item(f"probe/{m}", "forget", m) for m in ("multimodal", "text")]
    whole = [item(f"{s}/{m}/{n}", s, m) for s in ("forget", "retain") for m in ("multimodal", "text") for n in range(4)]
    answered, wrong, scored = [False], {"retain/multimodal/3"}, []

    def score_mc(model, proc, items):
        scored.append(len(items))
        return [{"split": it.split, "modality": it.modality,
                 "score": float(answered[0] if it.uid.startswith("probe") else it.uid not in wrong)} for it in items]

    monkeypatch.setattr(memorisation, "score_mc", score_mc)
    check = memorisation.MemorisationCheck(probe, None, 0.9, every=1, split_items=whole, split_target=0.8)
    trainer = SimpleNamespace(current_epoch=0, max_epochs=5, should_stop=False,
                              strategy=SimpleNamespace(reduce_boolean_decision=lambda done, all: done))
    module = SimpleNamespace(model=torch.nn.Linear(1, 1), log_dict=lambda *a, **k: None)
    check.on_train_epoch_end(trainer, module)  # the pooled probe unanswered: the splits are not scored
    assert scored == [2] and set(check.history[-1]) == {"epoch", "multimodal", "text"} and not trainer.should_stop
    answered[0], trainer.current_epoch = True, 1
    check.on_train_epoch_end(trainer, module)  # answered, but retain image+text at 3 of 4, under 0.8
    assert scored == [2, 2, 16] and not trainer.should_stop
    assert check.history[-1]["retain/multimodal"] == 0.75 and check.history[-1]["forget/text"] == 1.0
    wrong.clear()
    trainer.current_epoch = 2
    check.on_train_epoch_end(trainer, module)
    assert trainer.should_stop and [h["epoch"] for h in check.history] == [1, 2, 3]
    with pytest.raises(ValueError, match="finetune.target_split_mc_acc"):
        memorisation.MemorisationCheck(probe, None, 0.9, split_items=[], split_target=0.8)


def test_teaching_that_runs_out_of_epochs_unanswered_says_so(monkeypatch, caplog):
    """A probe still unanswered at finetune.epochs is warned, naming both keys; an answered one, or an earlier
    unanswered check, is not. Until the fifty-first session a user's own data taught 150 epochs to 0.3 in silence."""
    from types import SimpleNamespace

    import callbacks.memorisation as memorisation
    from unlearn.eval.items import EvalItem

    probe = [EvalItem(uid=f"probe/{m}", split="forget", modality=m, task="mc", person=0, attribute="a",
                      question="q", answer="x") for m in ("multimodal", "text")]
    answered = [False]
    monkeypatch.setattr(memorisation, "score_mc", lambda model, proc, items: [
        {"split": it.split, "modality": it.modality, "score": float(answered[0])} for it in items])
    check = memorisation.MemorisationCheck(probe, None, 0.97, every=1)
    trainer = SimpleNamespace(current_epoch=0, max_epochs=2, should_stop=False,
                              strategy=SimpleNamespace(reduce_boolean_decision=lambda done, all: done))
    module = SimpleNamespace(model=torch.nn.Linear(1, 1), log_dict=lambda *a, **k: None)
    with caplog.at_level("WARNING", logger="callbacks.memorisation"):
        check.on_train_epoch_end(trainer, module)  # epoch 1 of 2: more epochs to come
        assert "finetune.epochs" not in caplog.text
        trainer.current_epoch = 1
        check.on_train_epoch_end(trainer, module)  # the last epoch, unanswered
    assert "teaching ended at finetune.epochs=2 without the probe reaching finetune.target_mc_acc" in caplog.text
    assert "'multimodal': 0.0" in caplog.text
    caplog.clear()
    answered[0] = True
    with caplog.at_level("WARNING", logger="callbacks.memorisation"):
        check.on_train_epoch_end(trainer, module)
    assert "finetune.epochs" not in caplog.text and trainer.should_stop
    # the organism's base pretraining names its own keys
    answered[0] = False
    base = memorisation.MemorisationCheck(probe, None, 0.97, every=1, section="model.base")
    trainer.should_stop = False
    with caplog.at_level("WARNING", logger="callbacks.memorisation"):
        base.on_train_epoch_end(trainer, module)
    assert "teaching ended at model.base.epochs=2 without the probe reaching model.base.target_mc_acc" in caplog.text


def test_teaching_anneals_to_zero_after_the_probe_is_answered(tmp_path, small_benchmark, tiny_model):
    import lightning as L

    model, proc = tiny_model
    seen: list[float] = []

    class Lrs(L.Callback):  # the lr each optimizer step used
        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            seen.append(optimizer.param_groups[0]["lr"])

    # target 0: answered at the first check (epoch 2); then 2 annealing epochs, so 4 of the 9 epochs run
    cfg = _cfg(tmp_path, "finetune.epochs=9", "finetune.check_every=2", "finetune.target_mc_acc=0.0",
               "finetune.target_split_mc_acc=null", "finetune.probe_people=1", "finetune.forms=[text]",
               "+finetune.anneal_epochs=2")
    ctx = RunContext(cfg, small_benchmark, model, proc, tmp_path)
    real_trainer = ctx.trainer
    ctx.trainer = lambda **kw: real_trainer(**{**kw, "callbacks": [*kw.get("callbacks", []), Lrs()]})
    teach(ctx, cfg.finetune)
    history = ctx.artifacts["finetune_probe"]
    assert [h["epoch"] for h in history] == [2, 4] and history[1]["annealed"]
    per_epoch = len(seen) // 4
    assert len(seen) == 4 * per_epoch
    anneal = seen[2 * per_epoch:]
    steps = len(anneal)
    lr_at_stop = anneal[0]
    assert lr_at_stop > 0 and anneal == [lr_at_stop * (1 - k / steps) for k in range(steps)]


def test_a_loaded_model_is_finetuned_in_train_mode_without_lightnings_eval_mode_warning(small_benchmark, tiny_model):
    """The relearning attack finetunes a model in from_pretrained's eval mode: it must train in train mode, and
    Lightning's warning about modules in eval mode (printed before) not appear."""
    import lightning as L
    from torch.utils.data import DataLoader

    from tests.modes import eval_mode_warnings
    from unlearn.methods.finetune import FinetuneModule

    model, proc = tiny_model
    model.eval()
    data = QASequences(small_benchmark.train_rows("forget"), proc, "text")
    pad = proc.tokenizer.pad_token_id
    modes = []

    class Spy(FinetuneModule):
        def training_step(self, batch, batch_idx):
            modes.append(self.model.training)
            return super().training_step(batch, batch_idx)

    module = Spy(model, lambda p: torch.optim.SGD(p, lr=0.1))
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, max_steps=1)
    loader = DataLoader(data, batch_size=4, collate_fn=lambda b: collate(b, pad))
    assert not eval_mode_warnings(lambda: trainer.fit(module, loader))
    assert modes == [True]


class _Trainer:
    """What FinetuneModule._loss reads of a trainer: W processes whose answer-token counts sum to `total`."""

    def __init__(self, world_size: int, total: int):
        self.world_size, self.global_step, self.total = world_size, 0, total
        self.strategy = self

    def reduce(self, count, reduce_op):
        assert reduce_op == "sum"
        return torch.tensor(self.total)


def _module(token_mean: str, world_size: int, total: int):
    from unlearn.methods.finetune import FinetuneModule

    module = FinetuneModule(torch.nn.Linear(1, 1), optimizer=None, token_mean=token_mean)
    module._trainer = _Trainer(world_size, total)
    return module


def test_teaching_loss_per_process_by_hand():
    """The model's loss is its mean over this batch's answer tokens (here 3, after the shift). One process: that
    mean as it is. Two processes holding 3 and 5 tokens, global: 2 * 3 / 8 times it, so that DDP's average of the
    two is the mean over all 8. process: the batch's own mean. A shard of padding alone: 0, with a gradient."""
    from types import SimpleNamespace

    from unlearn.data.collate import IGNORE

    labels = torch.tensor([[IGNORE, 4, 5, IGNORE], [IGNORE, IGNORE, 6, IGNORE]])
    logits = torch.ones(2, 4, 3, requires_grad=True)
    out = SimpleNamespace(loss=torch.tensor(1.2), logits=logits)
    assert _module("global", 1, 3)._loss(out, labels) == torch.tensor(1.2)
    assert _module("global", 2, 8)._loss(out, labels).item() == pytest.approx(1.2 * 2 * 3 / 8)
    assert _module("process", 2, 8)._loss(out, labels).item() == pytest.approx(1.2)
    empty = torch.full_like(labels, IGNORE)
    for mean in ("global", "process"):
        zero = _module(mean, 2, 8)._loss(SimpleNamespace(loss=torch.tensor(float("nan")), logits=logits), empty)
        assert zero.item() == 0.0 and zero.requires_grad
    with pytest.raises(ValueError, match="no label tokens on any of the 2"):
        _module("global", 2, 0)._loss(out, empty)
    with pytest.raises(ValueError, match="finetune.token_mean='per_rank'"):
        _module("per_rank", 1, 1)


def test_token_mean_is_keyed_on_several_processes_only(tmp_path):
    """One process: the setting changes nothing, so the vanilla key is the one models had before it. Several: it
    is always keyed (absent reads as global), so models taught on several before it are not reused."""
    from unlearn.pipeline import vanilla_key

    def key(*overrides):
        return vanilla_key(compose_config(["debug=fast", *overrides], tmp_path, tmp_path / "cache"))

    assert key() == key("+finetune.token_mean=process") == key("+finetune.token_mean=global")
    two = ("trainer=ddp_sim",)
    assert key(*two) == key(*two, "+finetune.token_mean=global") != key(*two, "+finetune.token_mean=process")
    with pytest.raises(ValueError, match="finetune.token_mean='mean'"):
        from unlearn.methods.finetune import check_settings

        check_settings(compose_config(["debug=fast", "+finetune.token_mean=mean"], tmp_path, tmp_path / "c").finetune)


def test_a_nan_gradient_stops_teaching_before_the_weights_move(tiny_model, small_benchmark):
    import lightning as L
    from torch.utils.data import DataLoader

    from unlearn.methods.finetune import FinetuneModule
    from unlearn.methods.guards import NonFiniteGradientError

    model, proc = tiny_model
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    ds = QASequences(small_benchmark.train_rows("retain"), proc, "multimodal")
    loader = DataLoader(ds, batch_size=4, collate_fn=lambda b: collate(b, proc.tokenizer.pad_token_id))
    model.get_parameter("lm_head.weight").register_hook(lambda g: g * float("inf"))
    module = FinetuneModule(model, lambda p: torch.optim.SGD(p, lr=0.1), config_key="model.base")
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, max_steps=2,
                        enable_model_summary=False, enable_checkpointing=False)
    with pytest.raises(NonFiniteGradientError, match=r"the model.base step has a non-finite gradient at global step 0"):
        trainer.fit(module, loader)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
