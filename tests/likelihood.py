"""An answer's token log-probabilities computed directly, one row alone: what the scorers must agree with."""

import torch

from unlearn.data.collate import IGNORE, collate, qa_example


def answer_token_logprobs(model, proc, question: str, answer: str, pixel_values) -> torch.Tensor:
    """log p of each labelled (answer) token of `answer` after `question`, from one forward of that row."""
    batch = collate([qa_example(proc, [(question, answer)], pixel_values)], proc.tokenizer.pad_token_id)
    with torch.no_grad():
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits[0, :-1]
    labels = batch["labels"][0, 1:]
    keep = labels != IGNORE
    return torch.log_softmax(logits.float(), -1)[keep].gather(-1, labels[keep].unsqueeze(-1)).squeeze(-1)
