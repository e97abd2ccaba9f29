"""Entry point: `python train.py method=<name> [overrides]` (see README for the config groups)."""

import logging

if __name__ == "__main__":  # before hydra's imports: a Ctrl-C among them ends with a line and status 130
    from unlearn.runtime import ctrl_c_while_starting

    ctrl_c_while_starting()

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="configs", config_name="config")
def main(cfg: DictConfig) -> None:
    from unlearn.before_run import check_settings_before_run
    from unlearn.settings import refused_before_run

    try:
        # before the imports below (torch's, transformers' and Lightning's: 6-9 s here), so that a refused setting
        # is refused in about a second (unlearn/before_run.py); the launcher is checked by run(), after them
        check_settings_before_run(cfg, launcher=False)
        from unlearn.pipeline import run
        from unlearn.runtime import ctrl_c_as_exit, quiet_libraries, sigterm_as_exit, started

        quiet_libraries()
        sigterm_as_exit()
        started()  # Ctrl-C raises again: Lightning's graceful stop of a fit, ctrl_c_as_exit's message
        with ctrl_c_as_exit():
            run(cfg, settings_checked=True)
    except Exception as e:
        if refused_before_run(e):  # refused before anything ran: the message, status 1, no traceback
            raise SystemExit(f"Error: {e}") from e
        raise


if __name__ == "__main__":
    logging.captureWarnings(True)
    main()  # a failed run raises or exits here, through the interpreter's normal exit
    from unlearn.runtime import exit_without_teardown

    exit_without_teardown(0)
