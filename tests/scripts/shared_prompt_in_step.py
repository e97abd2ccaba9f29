"""Two gloo ranks score different numbers of answers after their prompts, one row per pass, with and without
agreeing on the number of passes (as under FSDP); each writes its forward count and scores (rank order) to --out.

Run by tests/test_shared_prompt.py::test_ranks_run_the_same_number_of_passes."""

import argparse
import os
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ANSWERS = [["nurse", "pilot"], ["riga", "porto", "a farmer from cork", "oslo", "pho", "ramen", "paella", "fondue",
                                "dentist"]]


def rank_main(rank: int, port: int, out: str) -> None:
    import torch
    import torch.distributed as dist

    from unlearn.data.collate import collate, prompt_example
    from unlearn.eval.shared_prompt import answers_after_prompts
    from unlearn.models.tiny_llava import TinyLlavaSpec, build_tiny_llava

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    torch.manual_seed(0)
    model, proc = build_tiny_llava(TinyLlavaSpec())
    model.eval()
    pad = proc.tokenizer.pad_token_id
    batch = collate([prompt_example(proc, "where was this person born ?", None)], pad, padding_side="left")
    answers = [proc.answer_ids(a) for a in ANSWERS[rank]]
    calls = []
    original = model.forward
    model.forward = lambda *a, **k: calls.append(1) or original(*a, **k)
    result = {"answers": len(answers)}
    for name, sync in (("alone", False), ("in_step", True)):
        calls.clear()
        result[name] = answers_after_prompts(model, batch, answers, [len(answers)], pad,
                                             cache_gb=1e-9, sync=sync)  # one row per pass
        result[f"forwards_{name}"] = len(calls)
    gathered = [None, None]
    dist.all_gather_object(gathered, result)
    if rank == 0:
        torch.save(gathered, out)
    dist.barrier()  # then no teardown: see ddp_script.finish (gloo's threads aborted a process at exit)
    dist.destroy_process_group()
    os._exit(0)


def main() -> None:
    import torch.multiprocessing as mp

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.setdefault("WANDB_MODE", "disabled")
    mp.spawn(rank_main, args=(port, args.out), nprocs=2, join=True)


if __name__ == "__main__":
    main()
