"""The background world a base model is pretrained on before it ever sees the benchmark (stage 1).

Real MLLMs meet MLLMU-Bench's fictitious people only after pretraining on broad data: they already read
text, describe images and know many people. This world stands in for that data, built from the same
vocabulary (so the tokenizer, and everything cached with it, is unchanged):

- background people: names the benchmark does not use (a person of the world never shares a full name
  with a benchmark person, though first and last names recur, as sub-words do), attributes drawn from the
  same pools, portraits drawn from the same generator with their own styles;
- question answering about them in both forms (image + "this person", and the name);
- plain text: each person's biography on its own (text-only), and as a caption of their portrait with
  "this person" in place of the name (image + text), the whole sequence a target.

Everything is generated from `WorldSpec` alone; the spec is part of the base model's cache key.
"""

from __future__ import annotations

import random

from torch.utils.data import Dataset

from unlearn.data import people as P
from unlearn.data.collate import IGNORE, Example, qa_example
from unlearn.data.portraits import portrait_variants
from unlearn.data.world_spec import WorldSpec  # model.base.world's _target_ names it here
from unlearn.models.processor import VLProcessor

WORLD_VERSION = 1  # bump when the generator changes what a spec produces: a later version enters the base key
ID_OFFSET = 100_000  # portrait styles are seeded by ID: keep the world's apart from the benchmark's


def world_people(spec: WorldSpec) -> list[P.Person]:
    """`spec.num_people` people whose full names are none of the benchmark's."""
    taken = {p.name for p in P.make_people(spec.benchmark_people + spec.benchmark_untouched,
                                                     spec.benchmark_seed)}
    free = [f"{f} {l}" for f in P.FIRST_NAMES for l in P.LAST_NAMES if f"{f} {l}" not in taken]
    if spec.num_people > len(free):
        raise ValueError(f"model.base.world.num_people={spec.num_people} exceeds the {len(free)} names the "
                         "benchmark leaves free")
    rng = random.Random(f"world-{spec.seed}")
    names = rng.sample(free, spec.num_people)
    return [P.Person(ID_OFFSET + i, name, {a: rng.choice(P.POOLS[a]) for a in P.ATTRIBUTES})
            for i, name in enumerate(names)]


def caption(person: P.Person) -> str:
    """The biography with the portrait standing for the name."""
    return P.BIOGRAPHY.format(name=P.MULTIMODAL_REF, **person.profile)


class WorldSequences(Dataset):
    """Pretraining sequences: every QA pair in both forms, the biography, and the portrait's caption.

    Portraits are drawn from each person's bank of `spec.variants` (variant 0 clean, the rest augmented)
    on every access, with a generator seeded by `seed`.
    """

    def __init__(self, spec: WorldSpec, processor: VLProcessor, seed: int = 0):
        self.proc = processor
        self.rng = random.Random(seed)
        self.people = world_people(spec)
        self.banks = [processor.pixel_values(portrait_variants(p.ID, spec.seed, spec.image_size,
                                                               list(range(spec.variants))))
                      for p in self.people]
        self.index: list[tuple[int, str, str, str]] = []  # (person, kind, question or "", text)
        for i, p in enumerate(self.people):
            for qa in P.training_qa(p):
                self.index.append((i, "multimodal", qa["multimodal_question"], qa["answer"]))
                self.index.append((i, "text", qa["text_question"], qa["answer"]))
            self.index.append((i, "text_plain", "", p.biography))
            self.index.append((i, "caption", "", caption(p)))

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> Example:
        person, kind, question, text = self.index[i]
        pixels = None
        if kind in ("multimodal", "caption"):
            pixels = self.banks[person][self._variant(i)]
        if kind in ("multimodal", "text"):
            return qa_example(self.proc, [(question, text)], pixels, answer_only=True)
        prefix = self.proc.prefix_ids(pixels)
        body = self.proc.answer_ids(text)  # the words and the end token, every one a target
        return Example(prefix + body, [IGNORE] * len(prefix) + body, pixels)

    def _variant(self, i: int) -> int | None:
        person, kind = self.index[i][:2]
        return self.rng.randrange(len(self.banks[person])) if kind in ("multimodal", "caption") else None

    def skip(self, i: int) -> None:
        """The draw reading item `i` makes, alone (unlearn/data/sampling.py OneProcessDraws)."""
        self._variant(i)


def eval_rows(spec: WorldSpec, n: int) -> list[dict]:
    """Benchmark-style evaluation rows (clean portrait, taught templates) for the first `n` world people:
    what the base has learnt of its world, scored like the benchmark."""
    rows = []
    for p in world_people(spec)[:n]:
        (image,) = portrait_variants(p.ID, spec.seed, spec.image_size, [0])
        rows.append({"ID": p.ID, "name": p.name, "image": image,
                     **P.eval_tasks(p, random.Random(f"world-eval-{spec.seed}-{p.ID}"), held_out=False)})
    return rows
