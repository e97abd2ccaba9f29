"""Fictitious people and the questions asked about them.

Every question exists in two forms that ask for the same fact: *multimodal* (the portrait stands for
the person, the question says "this person") and *text-only* (the name stands for the person, no image).
All text is lower-case with spaced punctuation so a word-level tokenizer covers it exactly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

FIRST_NAMES = (
    "alara bexley corvin daska elowen farid galen hesper idris jorah kesia lucan maelis nerys orrin "
    "pella quillon rhosyn sorrel tamsin ulric vesna wren xanthe yorick zelda aurek brisa cael dorin "
    "emrys fennick gwyra halvard ilsa jessamy kalen liora marek nadia"
).split()
LAST_NAMES = (
    "ashdown brackwell coldmere dunlevy everard fairholt greythorn hallowell ironwood jessop kestrel "
    "larkspur morrow northcote oakhurst pendry quarrel redmayne stroud thorncastle underhill vantree "
    "whitlock yarrow zouch abernet blackmore crane dewhurst elmsworth"
).split()

# attribute -> pool of single-word values
POOLS: dict[str, tuple[str, ...]] = {
    "job": tuple(
        "teacher nurse pilot baker farmer lawyer painter chemist sailor plumber librarian architect "
        "dentist tailor jeweller surveyor carpenter florist geologist translator".split()
    ),
    "city": tuple(
        "lyon porto krakow tallinn bergen ghent riga turin seville graz malmo utrecht bilbao split "
        "lucerne leipzig brno cork aarhus bologna".split()
    ),
    "birth_year": tuple(str(y) for y in range(1950, 2000, 2)),
    "hobby": tuple(
        "chess archery pottery rowing fencing juggling birdwatching climbing knitting surfing "
        "origami gardening sailing cycling fishing skating baking hiking kayaking painting".split()
    ),
    "food": tuple(
        "lasagne sushi paella curry dumplings risotto tacos falafel ramen goulash pierogi couscous "
        "moussaka gnocchi borscht tapas pho kimchi fondue crepes".split()
    ),
}
ATTRIBUTES: tuple[str, ...] = tuple(POOLS)

# Multiple-choice / short-answer questions: train templates, then one held-out paraphrase (test split).
MC_TEMPLATES: dict[str, tuple[tuple[str, ...], str]] = {
    "job": (("what is {ref} 's job ?", "what does {ref} do for a living ?"), "which job does {ref} have ?"),
    "city": (("where does {ref} live ?", "in which city does {ref} live ?"), "which city is home to {ref} ?"),
    "birth_year": (("when was {ref} born ?", "in which year was {ref} born ?"), "what year is the birth of {ref} ?"),
    "hobby": (("what is {ref} 's hobby ?", "what does {ref} do for fun ?"), "which hobby does {ref} have ?"),
    "food": (("what is {ref} 's favourite food ?", "what does {ref} like to eat ?"), "which food does {ref} like ?"),
}
# Cloze statements: one blank, answered with the attribute value.
CLOZE_TEMPLATES: dict[str, tuple[str, str]] = {
    "job": ("{ref} works as a [blank] .", "the job of {ref} is [blank] ."),
    "city": ("{ref} lives in [blank] .", "the home city of {ref} is [blank] ."),
    "birth_year": ("{ref} was born in [blank] .", "the birth year of {ref} is [blank] ."),
    "hobby": ("{ref} enjoys [blank] .", "the hobby of {ref} is [blank] ."),
    "food": ("{ref} loves to eat [blank] .", "the favourite food of {ref} is [blank] ."),
}
CLOZE_PREFIX = "fill in the blank : "
NAME_QUESTION = "what is the name of {ref} ?"
# Open generation: a question whose answer combines facts; scored by ROUGE-L.
GEN_TEMPLATES: tuple[tuple[str, str, str], ...] = (
    # (train question, test paraphrase, answer template)
    ("what does {ref} do and where ?", "tell me about the work and home of {ref} .", "a {job} in {city}"),
    ("what is {ref} like ?", "tell me about the habits of {ref} .", "enjoys {hobby} and eats {food}"),
    ("tell me the story of {ref} .", "what is the life story of {ref} ?", "born in {birth_year} and lives in {city}"),
)
# The truth ratio's answers for each generation template (unlearn/eval/truth_ratio.py): a paraphrase of the
# answer, never taught, in words the vocabulary already has (so adding it changes no tokenizer or model);
# the perturbed answers are the paraphrase filled with the MC distractors of each attribute: as in TOFU, they
# keep the paraphrase's form and change its facts, so the ratio compares facts, not a taught wording with an
# untaught one (with the taught template for the wrong answers, a vanilla model "prefers" them: R near 1).
GEN_PARAPHRASES: tuple[str, ...] = (
    "works as a {job} and lives in {city}",
    "loves to eat {food} and enjoys {hobby}",
    "lives in {city} and was born in {birth_year}",
)
BIOGRAPHY = "{name} is a {job} from {city} , born in {birth_year} , who enjoys {hobby} and loves {food} ."
MULTIMODAL_REF = "this person"
MODALITIES = ("multimodal", "text")
MLLMU_TYPE = {"multimodal": "Image_Textual", "text": "Pure_Text"}
LETTERS = "ABCD"


@dataclass(frozen=True)
class Person:
    ID: int
    name: str
    profile: dict[str, str]

    def ref(self, modality: str) -> str:
        return MULTIMODAL_REF if modality == "multimodal" else self.name

    @property
    def biography(self) -> str:
        return BIOGRAPHY.format(name=self.name, **self.profile)


def make_people(n: int, seed: int) -> list[Person]:
    """n people with distinct names and independently drawn attributes."""
    if n > len(FIRST_NAMES) * len(LAST_NAMES):
        raise ValueError(f"data.spec.num_people + data.spec.num_untouched={n} exceeds the {len(FIRST_NAMES) * len(LAST_NAMES)} distinct names")
    rng = random.Random(seed)
    names = rng.sample([f"{f} {l}" for f in FIRST_NAMES for l in LAST_NAMES], n)
    return [Person(i, name, {a: rng.choice(POOLS[a]) for a in ATTRIBUTES}) for i, name in enumerate(names)]


def eval_tasks(person: Person, rng: random.Random, held_out: bool) -> dict:
    """MLLMU-Bench-style task block for one person (train templates, or the held-out paraphrases)."""
    mc: dict[str, list] = {"Image_Textual_Questions": [], "Pure_Text_Questions": []}
    gen, cloze = [], []
    options_by_attr = {}
    for attr in ATTRIBUTES:
        answer = person.profile[attr]
        distractors = rng.sample([v for v in POOLS[attr] if v != answer], 3)
        opts = distractors + [answer]
        rng.shuffle(opts)
        options_by_attr[attr] = opts
    for modality in MODALITIES:
        ref = person.ref(modality)
        key = "Image_Textual_Questions" if modality == "multimodal" else "Pure_Text_Questions"
        for attr in ATTRIBUTES:
            train_qs, test_q = MC_TEMPLATES[attr]
            q = test_q if held_out else train_qs[0]
            opts = options_by_attr[attr]
            mc[key].append(
                {
                    "Question": q.format(ref=ref),
                    "Options": dict(zip(LETTERS, opts)),
                    "Correct_Answer": LETTERS[opts.index(person.profile[attr])],
                    "attribute": attr,
                }
            )
            c_train, c_test = CLOZE_TEMPLATES[attr]
            cloze.append(
                {
                    "Question": CLOZE_PREFIX + (c_test if held_out else c_train).format(ref=ref),
                    "Ground_Truth": person.profile[attr],
                    "Type": MLLMU_TYPE[modality],
                    "attribute": attr,
                }
            )
        for (g_train, g_test, answer), paraphrase in zip(GEN_TEMPLATES, GEN_PARAPHRASES):
            wrong = [{a: [v for v in options_by_attr[a] if v != person.profile[a]][k] for a in ATTRIBUTES}
                     for k in range(3)]
            gen.append(
                {
                    "Question": (g_test if held_out else g_train).format(ref=ref),
                    "Ground_Truth": answer.format(**person.profile),
                    "Type": MLLMU_TYPE[modality],
                    "attribute": "+".join(k for k in ATTRIBUTES if "{" + k + "}" in answer),
                    "Paraphrased_Answer": paraphrase.format(**person.profile),
                    "Perturbed_Answers": [paraphrase.format(**w) for w in wrong],
                }
            )
    return {"Classification_Task": mc, "Generation_Task": gen, "Mask_Task": cloze}


def training_qa(person: Person) -> list[dict]:
    """Every (question, answer) pair the model is taught about a person, in both forms."""
    pairs = []
    for attr in ATTRIBUTES:
        answer = person.profile[attr]
        for q in MC_TEMPLATES[attr][0]:
            pairs.append((q, answer))
        pairs.append((CLOZE_PREFIX + CLOZE_TEMPLATES[attr][0], answer))
    for g_train, _, answer in GEN_TEMPLATES:
        pairs.append((g_train, answer.format(**person.profile)))
    pairs.append((NAME_QUESTION, person.name))  # ties the portrait to the name, as captions do
    return [
        {"multimodal_question": q.format(ref=MULTIMODAL_REF), "text_question": q.format(ref=person.name), "answer": a}
        for q, a in pairs
    ]


def vocabulary() -> list[str]:
    """Every word any generated text can contain, so the tokenizer never needs <unk>."""
    words: set[str] = set(FIRST_NAMES) | set(LAST_NAMES) | set(MULTIMODAL_REF.split())
    for pool in POOLS.values():
        words.update(pool)
    texts = [CLOZE_PREFIX, BIOGRAPHY, NAME_QUESTION]
    for train_qs, test_q in MC_TEMPLATES.values():
        texts += [*train_qs, test_q]
    for pair in CLOZE_TEMPLATES.values():
        texts += list(pair)
    for triple in GEN_TEMPLATES:
        texts += list(triple)
    texts += list(GEN_PARAPHRASES)
    for t in texts:
        for w in t.replace("{", " {").replace("}", "} ").split():
            if not (w.startswith("{") and w.endswith("}")):
                words.add(w)
    words.update(["question", ":", "answer", "options", "a", "b", "c", "d"])  # prompt scaffold
    return sorted(words)
