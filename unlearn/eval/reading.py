"""What an evaluation reads, by name: its tasks and MC modes, and which MC readings a protocol can run. Apart from
the evaluator (Lightning) and the scoring (transformers): the checks before a run read them without either
(unlearn/before_run.py)."""

from __future__ import annotations

TASKS = ("mc", "gen", "cloze", "prob")

MC_MODES = ("likelihood", "letter", "generate")


def check_mc_reading(protocol: str, reads_generated_letter: bool, mc_mode: str, mc_also: str | None) -> None:
    """eval.mc_mode and eval.mc_also as an evaluation can run them: a protocol whose benchmark reads MC from a
    generated letter takes that reading alone; a second reading is another mode. Checked before the run
    (unlearn/settings.py) and where the evaluator is built."""
    if reads_generated_letter and (mc_mode != "generate" or mc_also is not None):
        raise ValueError(f"eval.protocol={protocol} reads MC from a generated letter, as its benchmark does: set "
                         f"eval.mc_mode=generate and eval.mc_also=null (got eval.mc_mode={mc_mode!r}, "
                         f"eval.mc_also={mc_also!r})")
    if mc_also is not None and (mc_also not in MC_MODES or mc_also == mc_mode):
        raise ValueError(f"eval.mc_also={mc_also!r}: expected null or an MC mode other than eval.mc_mode="
                         f"{mc_mode!r} from {MC_MODES}")
