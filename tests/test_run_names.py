"""A run's W&B name and group: what sets it apart, the seeds apart within a group (unlearn/run_names.py)."""

import pytest
from omegaconf import OmegaConf

from unlearn.config import compose_config
from unlearn.run_names import MAX_LENGTH, dashboard_names, hydra_overrides, name_logger


def _logger(tmp_path, *overrides):
    return compose_config(["logger=wandb", *overrides], tmp_path / "run", tmp_path / "cache").logger


def test_the_jobs_of_an_lr_sweep_are_named_apart_and_grouped_over_seeds(tmp_path):
    """`train.py -m method=ga method.optimizer.lr=1e-5,5e-5 seed=0,1`: until the 43rd session four runs named
    ga-seed0 / ga-seed1 in one group, whose mean line mixed the two lrs."""
    jobs = {(lr, seed): _logger(tmp_path, "method=ga", f"method.optimizer.lr={lr}", f"seed={seed}")
            for lr in ("1e-05", "5e-05") for seed in (0, 1)}
    assert jobs["1e-05", 0].name == "ga-optimizer.lr=1e-05-seed0"
    assert jobs["1e-05", 0].group == "mllmu_mini-forget_10-tiny_llava-ga-optimizer.lr=1e-05"
    assert len({j.name for j in jobs.values()}) == 4
    assert jobs["1e-05", 0].group == jobs["1e-05", 1].group != jobs["5e-05", 0].group == jobs["5e-05", 1].group
    assert {j.job_type for j in jobs.values()} == {"ga"}


def test_a_run_at_its_defaults_keeps_its_name(tmp_path):
    ga = _logger(tmp_path, "method=ga", "seed=1")
    assert (ga.name, ga.group, ga.job_type) == ("ga-seed1", "mllmu_mini-forget_10-tiny_llava-ga", "ga")


def test_teach_seed_names_the_run_and_stays_in_its_group(tmp_path):
    """Runs that differ by teach_seed alone are seeds of one setting (the report's seed table pools them)."""
    one, two = (_logger(tmp_path, "method=manu", "manu.alpha=5", f"teach_seed={t}") for t in (1, 2))
    assert (one.name, two.name) == ("manu-alpha=5-teach1-seed0", "manu-alpha=5-teach2-seed0")
    assert one.group == two.group == "mllmu_mini-forget_10-tiny_llava-manu-alpha=5"


def test_what_moves_no_number_or_is_said_already_is_left_out(tmp_path):
    noisy = _logger(tmp_path, "method=npo", "logger.project=p", "paths.cache_dir=/x", "save_model=false",
                    "eval.before=false", "eval.cache_before=false", "trainer.log_every_n_steps=1",
                    "data.forget_split=forget_5", "++method.gamma=2", "data.spec.num_people=20")
    # sorted by key, `method.` dropped; the forget split in the group's head, and in the name too
    assert noisy.name == "npo-data.forget_split=forget_5,data.spec.num_people=20,gamma=2-seed0"
    assert noisy.group == "mllmu_mini-forget_5-tiny_llava-npo-data.spec.num_people=20,gamma=2"


def test_the_jobs_of_a_sweep_over_models_are_named_apart(tmp_path):
    """The group's head says the model; the runs' names must too, or `-m model=a,b` makes two runs of one name."""
    a, b = (_logger(tmp_path, "method=ga", f"model={m}") for m in ("tiny_llava", "tiny_llava_base"))
    assert (a.name, b.name) == ("ga-model=tiny_llava-seed0", "ga-model=tiny_llava_base-seed0")
    assert (a.group, b.group) == ("mllmu_mini-forget_10-tiny_llava-ga", "mllmu_mini-forget_10-tiny_llava_base-ga")


def test_a_name_or_group_given_wins(tmp_path):
    given = _logger(tmp_path, "method=ga", "method.optimizer.lr=1e-4", "logger.name=mine")
    assert given.name == "mine" and given.group.endswith("-ga-optimizer.lr=1e-4")
    assert _logger(tmp_path, "method=ga", "logger.group=g").group == "g"


def test_the_csv_logger_keeps_its_directory(tmp_path):
    cfg = compose_config(["logger=csv", "method=ga", "method.optimizer.lr=1e-4"], tmp_path / "run", tmp_path / "cache")
    assert cfg.logger.name == "logs"


def test_a_long_setting_is_cut_with_a_hash_that_keeps_two_runs_apart(tmp_path):
    names = {_logger(tmp_path, "method=ga", f"+model.path=/{'x' * 200}{i}") for i in range(2)}
    assert all(len(n.name) <= MAX_LENGTH and len(n.group) <= MAX_LENGTH for n in names)
    assert len({n.name for n in names}) == 2 and len({n.group for n in names}) == 2
    assert all(n.name.endswith("-seed0") for n in names)


def test_the_frontiers_runs_are_named_by_their_strength(tmp_path):
    """`python -m unlearn.frontier --base logger=wandb`: each run its knob's value; a seed's first run evaluates
    the vanilla model (eval.before=true) and the others do not, which sets no run apart."""
    from unlearn.frontier import Task, task_overrides

    logs = [_logger(tmp_path, *task_overrides(Task("ga", "method.optimizer.lr", lr, seed, seed == 0 and lr == 1e-4)),
                    "logger=wandb") for lr in (1e-4, 2e-4) for seed in (0, 1)]
    assert [g.name for g in logs] == ["ga-optimizer.lr=0.0001-seed0", "ga-optimizer.lr=0.0001-seed1",
                                      "ga-optimizer.lr=0.0002-seed0", "ga-optimizer.lr=0.0002-seed1"]
    assert logs[0].group == logs[1].group != logs[2].group == logs[3].group


@pytest.fixture()
def hydra_job():
    """Hydra's record of a launched job, as `train.py` (each job of a `-m` sweep) has it."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from unlearn.config import CONFIG_DIR

    def launch(*overrides):
        GlobalHydra.instance().clear()
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
        GlobalHydra.instance().clear()
        HydraConfig.instance().set_config(cfg)
        return cfg

    yield launch
    HydraConfig.instance().cfg = None


def test_a_launched_job_is_named_by_its_own_overrides(hydra_job):
    cfg = hydra_job("method=kl", "method.optimizer.lr=2e-4", "seed=3", "logger=wandb")
    assert hydra_overrides() == ["method=kl", "method.optimizer.lr=2e-4", "seed=3", "logger=wandb"]
    job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])  # the job sees its config less hydra
    name_logger(job, hydra_overrides())
    assert (job.logger.name, job.logger.group) == dashboard_names(job, ["method.optimizer.lr=2e-4"])
    assert job.logger.name == "kl-optimizer.lr=2e-4-seed3"


class Made(Exception):
    """Raised by the logger once made: the run stops there, its name read."""


def test_the_pipeline_names_the_run_from_hydras_overrides(tmp_path, monkeypatch, hydra_job):
    """Under train.py no compose_config names the logger: the run does, from the job's overrides."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from unlearn import pipeline, run_names

    def logger(**kwargs):
        raise Made(kwargs)

    monkeypatch.setitem(globals(), "logger", logger)
    monkeypatch.setattr(run_names, "NAMED_LOGGERS", (f"{__name__}.logger",))
    hydra_job("method=ga", "method.optimizer.lr=1e-4", "seed=1")
    cfg = compose_config(["logger=none", "debug=fast", "method=ga", "seed=1"], tmp_path / "run", tmp_path / "cache")
    cfg.logger = {"_target_": f"{__name__}.logger", "name": None, "group": None}
    monkeypatch.setattr(pipeline, "instantiate", lambda node, *a, **k: None if node is cfg.data.benchmark
                        else instantiate(node, *a, **k))  # no data made: the run stops at its logger
    monkeypatch.setattr(pipeline, "check_teaching_schedule_before_model", lambda cfg, benchmark: None)  # reads data
    with pytest.raises(InstantiationException) as made:
        pipeline.run(cfg)
    assert isinstance(made.value.__cause__, Made)
    assert made.value.__cause__.args[0] == {"name": "ga-optimizer.lr=1e-4-seed1",
                                            "group": "mllmu_mini-forget_10-tiny_llava-ga-optimizer.lr=1e-4"}


def test_naming_never_stops_a_run_whose_config_lacks_a_key(tmp_path):
    """A user's data config without `name` runs (the pipeline reads it with a default): naming leaves it out."""
    cfg = compose_config(["logger=wandb", "method=ga", "method.optimizer.lr=1e-4"], tmp_path / "run", tmp_path / "c")
    del cfg.data.name
    cfg.logger.name = cfg.logger.group = None
    name_logger(cfg, ["method.optimizer.lr=1e-4"])
    assert cfg.logger.name == "ga-optimizer.lr=1e-4-seed0"
    assert cfg.logger.group == "forget_10-tiny_llava-ga-optimizer.lr=1e-4"


def test_an_interpolation_given_is_named_as_written(tmp_path):
    """`method.optimizer.lr='${model.x}'` names the run by that text: unescaped in the name, OmegaConf would
    resolve it there (and fail the logger's instantiation on a key the run does not have)."""
    cfg = compose_config(["logger=wandb", "method=ga"], tmp_path / "run", tmp_path / "cache")
    cfg.logger.name = cfg.logger.group = None
    name_logger(cfg, ["method.optimizer.lr=${model.nothing_here}"])
    logger = OmegaConf.to_container(cfg.logger, resolve=True)
    assert logger["name"] == "ga-optimizer.lr=${model.nothing_here}-seed0"
    assert logger["group"] == "mllmu_mini-forget_10-tiny_llava-ga-optimizer.lr=${model.nothing_here}"


def test_a_deletion_keeps_its_tilde_a_key_merely_beginning_like_an_unnamed_one_is_named_and_the_cut_is_exact():
    from unlearn.run_names import _bounded, setting_overrides

    assert setting_overrides("ga", ["~method.lr_decay", "+seed_offset=3", "seed=2", "+logger.project=x"]) == \
        ["~lr_decay", "seed_offset=3"]  # `seed` and the keys under `logger` move no number; `seed_offset` may
    assert _bounded("x" * 20, 20) == "x" * 20  # exactly the room: whole
    cut = _bounded("x" * 21, 20)
    assert len(cut) == 20 and cut.startswith("x" * 11 + "~")
