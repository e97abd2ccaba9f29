"""Entry point: `python train.py method=<name> [overrides]` (see README for the config groups)."""

import logging

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="configs", config_name="config")
def main(cfg: DictConfig) -> None:
    from unlearn.pipeline import run
    from unlearn.runtime import ctrl_c_as_exit, quiet_libraries, sigterm_as_exit
    from unlearn.settings import refused_before_run

    quiet_libraries()
    sigterm_as_exit()
    try:
        with ctrl_c_as_exit():
            run(cfg)
    except Exception as e:
        if refused_before_run(e):  # refused before anything ran: the message, status 1, no traceback
            raise SystemExit(f"Error: {e}") from e
        raise


if __name__ == "__main__":
    logging.captureWarnings(True)
    main()  # a failed run raises or exits here, through the interpreter's normal exit
    from unlearn.runtime import exit_without_teardown

    exit_without_teardown(0)
