"""CLEAR (Dontsov et al. 2024, arXiv:2410.18057) read from the hub or a local snapshot, in the internal layout.

Source: the hub dataset `therem/CLEAR`, or a directory holding a copy of that repository
(`huggingface-cli download --repo-type dataset therem/CLEAR --local-dir DIR`, then `data.path=DIR`).

The real format, as the loader expects it (sources at the end). CLEAR has the 200 fictitious authors of TOFU,
each with about 19 generated images; a row is one *image*, not one person:
  * `forget01/05/10`, `retain99/95/90`, `full` (and `default`, the same under `data/`): `image`, `caption`
    (a description of the image that names the person) and `name`.
  * `forget01/05/10+tofu`, `retain99/95/90+tofu`, `full+tofu`: `image`, `caption`, `question`, `answer`
    and no `name`: the image rows again plus TOFU's text QA about the same authors, as rows whose `image` is
    null (e.g. forget01+tofu: 35 image rows + 40 QA rows, TOFU's 20 per author).
  * `forget01/05/10_perturbed`, `retain_perturbed`: `image`, `caption`, `name`, `paraphrased_caption`,
    `perturbed_captions` and `perturbed_names` (lists), used by CLEAR's truth-ratio evaluation and, for
    face recognition, as the wrong options. Their rows need not match the plain config one to one
    (forget10: 379 rows, forget10_perturbed: 378); they are joined on (name, caption), and rows of people
    outside the split being built are ignored (retain_perturbed serves every forget percentage).
  * `real_faces` (151 real celebrities): `image`, `answer` (the name), `options` (wrong names);
    `real_world` (367 rows): `image`, `question`, `answer`, `options`, published as a `test` split.
  Every config has one split (`train`, or `test` for real_world).

Mapping to the internal splits, for forget percentage P in {1, 5, 10} (configs `forget{P:02}` etc.):
  =======================================  ===========================================================
  real config                              internal split
  =======================================  ===========================================================
  forget{P:02} + retain{100-P:02}          train: per image, a caption pair and a name pair; per
   (+ their `+tofu` text QA)               person, one row with the person's TOFU QA
  forget{P:02} (+ _perturbed, +tofu)       forget_P: one row per person
  retain{100-P:02} (+ retain_perturbed,    retain_{100-P}: one row per person
   +tofu)
  forget{P:02}_perturbed                   test_P: the forget people with paraphrased prompts and the
                                           paraphrased caption
  real_faces, real_world                   untouched (no training rows)
  =======================================  ===========================================================
A person's eval row carries one image (the first of theirs that has perturbations, else their first), so
every multimodal item of the row is about that image:
  * MC, multimodal: face recognition `NAME_QUESTION` with the name among three `perturbed_names` (CLEAR's
    wrong names; without the perturbed configs, three other people's names drawn with the seed), and, where
    `perturbed_captions` exist, `CAPTION_MC_QUESTION` with the caption among three perturbed captions.
  * Generation, multimodal: one of CLEAR's caption prompts (`IMAGE_CAPTION_QUESTIONS`) -> the caption.
  * Generation, text-only: the person's TOFU questions -> answers (from the `+tofu` configs).
  * Not available, left empty: text-only MC (CLEAR has no options for TOFU QA) and cloze (`Mask_Task`).
test_P: the forget people's same image (CLEAR has no held-out images) asked with CLEAR's other recognition
prompt (`TEST_NAME_QUESTION`) and the next caption prompt, answered by `paraphrased_caption` (the caption
when no paraphrase is published); TOFU QA is left out (CLEAR publishes no paraphrased text questions).
IDs: people get 0..N-1 in the sorted order of their names (the same for every forget percentage);
untouched rows get `UNTOUCHED_ID_OFFSET` + their position; `source_id` keeps the name (or row index).

TOFU QA rows carry no name. A QA belongs to the person of that side (forget or retain) whose full name
appears in its question, else in its answer (the longest name if several match); a QA naming nobody
belongs to the person of the closest QA before it (TOFU lists each author's 20 questions together), or, at
the start, after it. Text forms: a TOFU question is text-only as published; its multimodal form replaces
the full name with "this person" (the inverse of the MANU rule used for MLLMU-Bench). A caption pair's
text-only form asks `CAPTION_TEXT_QUESTION` ("Describe a picture of <name>.").

Sources: the hub card of therem/CLEAR (config names, features, row counts, real_world as a `test` split);
somvy/multimodal_unlearning (the authors' code) mm/dataset.py (IMAGE_CAPTION_QUESTIONS, the "random_faces"
prompt, +tofu rows with a null image are QA rows) and config/mm/eval.yaml (which configs and keys their
evaluation pairs: perturbed_captions, perturbed_names, paraphrased_caption, real_faces / real_world
`options`); xzz81/MMUnlearner CLEAR_eval.py (MMUnlearner's evaluation: face-recognition question, options =
perturbed names + the name, real_faces `answer` + `options`).
"""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

from datasets import DatasetDict

from unlearn.data.hub import (EVAL_FEATURES, TRAIN_FEATURES, field, image_value, lettered, load_config, raw_rows,
                              resolve_source, to_dataset)
from unlearn.data.mllmu_bench import forget_percent
from unlearn.data.schema import DataError, check_eval_rows, check_train_rows, fail

HUB_ID = "therem/CLEAR"
FORGET_PERCENTS = (1, 5, 10)
UNTOUCHED_ID_OFFSET = 1_000_000
UNTOUCHED_CONFIGS = ("real_faces", "real_world")

# CLEAR's caption prompts (somvy/multimodal_unlearning, mm/dataset.py).
IMAGE_CAPTION_QUESTIONS = (
    "What can you see in this picture?",
    "Tell me about the content of this image",
    "Can you give a description of the image?",
    "What is depicted in the image?",
    "Explain what you observe in the picture.",
    "Describe the image in detail.",
    "What is the main subject of this image?",
    "Can you describe the scene or objects in the image?",
    "What is happening in this image?",
)
NAME_QUESTION = "What is the name of the person in the image?"  # MMUnlearner's CLEAR_eval.py default
TEST_NAME_QUESTION = "The name of the person on the image is"  # CLEAR's "random_faces" prompt, mm/dataset.py
CAPTION_MC_QUESTION = "Which caption describes this image?"  # ours: CLEAR scores captions by truth ratio
CAPTION_TEXT_QUESTION = "Describe a picture of {name}."  # ours: text-only form of a caption pair
NAME_TEXT_QUESTION = "What is the name of {name}?"  # text-only form of the name pair (as the embedded benchmark)
MULTIMODAL_REF = "this person"


def _pp(p: int) -> str:
    return f"{p:02d}"


def _image_rows(rows, split: str) -> dict[str, list[dict]]:
    """name -> that person's images in source order: [{image, caption, row}]."""
    people: dict[str, list[dict]] = {}
    for i, row in enumerate(rows):
        name = field(split, i, row, "name", str).strip()
        caption = field(split, i, row, "caption", str).strip()
        if "image" not in row:
            fail(split, i, "missing field 'image'")
        people.setdefault(name, []).append({"image": image_value(split, i, row["image"]), "caption": caption,
                                            "row": i})
    if not people:
        raise DataError(f"split '{split}' has no rows")
    return people


def _perturbations(rows, split: str, allowed: set[str]) -> dict[tuple[str, str], dict]:
    out = {}
    for i, row in enumerate(rows):
        name = field(split, i, row, "name", str).strip()
        if name not in allowed:
            continue  # retain_perturbed is shared by every forget percentage: skip who is forgotten here
        caption = field(split, i, row, "caption", str).strip()
        entry = {"paraphrased_caption": field(split, i, row, "paraphrased_caption", str).strip()}
        for key in ("perturbed_captions", "perturbed_names"):
            values = field(split, i, row, key, list, nonempty=False)
            if any(not isinstance(v, str) or not v.strip() for v in values):
                fail(split, i, f"field '{key}' has an empty or non-text entry")
            entry[key] = [v.strip() for v in values]
        out[(name, caption)] = entry
    return out


def _qa_rows(ds) -> list[tuple[int, dict]]:
    """(index, row) of the rows of a `+tofu` config whose image is null, read without their image bytes."""
    out = []
    arrow = ds.with_format("arrow")
    for start in range(0, len(ds), 256):
        batch = arrow[start:start + 256]
        if "image" in batch.column_names:
            nulls = batch.column("image").is_null().to_pylist()
            batch = batch.drop_columns(["image"])
        else:
            nulls = [True] * batch.num_rows
        out += [(start + k, row) for k, (row, null) in enumerate(zip(batch.to_pylist(), nulls)) if null]
    return out


def _text_qa(ds, split: str, names: list[str]) -> dict[str, list[tuple[str, str]]]:
    """TOFU QA rows (null image) of a `+tofu` config, assigned to people (see the module docstring).
    Its image rows are skipped: they repeat the plain config's images."""
    found = []  # (row, question, answer, owner or None)
    for i, row in _qa_rows(ds):
        question = field(split, i, row, "question", str).strip()
        answer = field(split, i, row, "answer", str).strip()
        owner = None
        for text in (question, answer):
            hits = [n for n in names if n.lower() in text.lower()]
            if hits:
                longest = max(len(n) for n in hits)
                best = [n for n in hits if len(n) == longest]
                owner = best[0] if len(best) == 1 else None
                break
        found.append((i, question, answer, owner))
    if not found:
        raise DataError(f"split '{split}' has no text QA rows (rows with a null image)")
    if all(owner is None for *_, owner in found):
        fail(split, found[0][0], f"no text QA names any of the {len(names)} people of this side")
    owners = [o for *_, o in found]
    last = None
    for k, o in enumerate(owners):  # carry forward...
        owners[k] = last = o if o is not None else last
    nxt = next(o for o in owners if o is not None)
    owners = [o if o is not None else nxt for o in owners]  # ...and the leading ones backward
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for (_, q, a, _), owner in zip(found, owners):
        out[owner].append((q, a))
    return dict(out)


def _distractor_names(name: str, population: list[str], given: list[str] | None, rng: random.Random) -> list[str]:
    wrong = [n for n in dict.fromkeys(given or []) if n != name]
    if len(wrong) < 3:
        others = [n for n in population if n != name and n not in wrong]
        wrong += rng.sample(others, 3 - len(wrong))
    return wrong[:3]


def _mc(question: str, correct: str, wrong: list[str], rng: random.Random, attribute: str) -> dict:
    options, letter = lettered(correct, wrong, rng)
    return {"Question": question, "Options": options, "Correct_Answer": letter, "attribute": attribute}


def _eval_row(ID: int, name: str, images: list[dict], perturbed: dict, qa: list[tuple[str, str]],
              population: list[str], seed: int, test: bool) -> dict:
    pick = next((im for im in images if (name, im["caption"]) in perturbed), images[0])
    extra = perturbed.get((name, pick["caption"]), {})
    rng = random.Random(f"{seed}/{'test' if test else 'eval'}/{name}")
    wrong_names = _distractor_names(name, population, extra.get("perturbed_names"), rng)
    mc = [_mc(TEST_NAME_QUESTION if test else NAME_QUESTION, name, wrong_names, rng, "name")]
    caption = extra.get("paraphrased_caption", pick["caption"]) if test else pick["caption"]
    wrong_captions = [c for c in dict.fromkeys(extra.get("perturbed_captions", [])) if c != caption]
    if len(wrong_captions) >= 3:
        mc.append(_mc(CAPTION_MC_QUESTION, caption, wrong_captions, rng, "caption"))
    k = (ID + test) % len(IMAGE_CAPTION_QUESTIONS)
    gen = [{"Question": IMAGE_CAPTION_QUESTIONS[k], "Ground_Truth": caption, "Type": "Image_Textual",
            "attribute": "caption", **_caption_alternatives(extra, caption)}]
    if not test:
        gen += [{"Question": q, "Ground_Truth": a, "Type": "Pure_Text", "attribute": "tofu"} for q, a in qa]
    return {"ID": ID, "source_id": name, "name": name, "image": pick["image"],
            "Classification_Task": {"Image_Textual_Questions": mc, "Pure_Text_Questions": []},
            "Generation_Task": gen, "Mask_Task": []}


def _caption_alternatives(extra: dict, caption: str) -> dict:
    """Paraphrased_Answer / Perturbed_Answers of a caption item from its `_perturbed` row (CLEAR's truth
    ratio pairs `paraphrased_caption` with `perturbed_captions`, config/mm/eval.yaml); absent without one."""
    out = {}
    para = extra.get("paraphrased_caption")
    if para and para != caption:
        out["Paraphrased_Answer"] = para
    wrong = [c for c in dict.fromkeys(extra.get("perturbed_captions") or []) if c != caption]
    if wrong:
        out["Perturbed_Answers"] = wrong
    return out


def _train_rows(ID: int, name: str, images: list[dict], qa: list[tuple[str, str]]) -> list[dict]:
    rows = []
    for k, im in enumerate(images):
        pairs = [
            {"multimodal_question": IMAGE_CAPTION_QUESTIONS[k % len(IMAGE_CAPTION_QUESTIONS)],
             "text_question": CAPTION_TEXT_QUESTION.format(name=name), "answer": im["caption"],
             "text_answer": im["caption"]},
            {"multimodal_question": NAME_QUESTION, "text_question": NAME_TEXT_QUESTION.format(name=name),
             "answer": name, "text_answer": name},
        ]
        rows.append({"ID": ID, "source_id": name, "name": name, "images": [im["image"]], "qa": pairs})
    if qa:
        pairs = [{"multimodal_question": q.replace(name, MULTIMODAL_REF), "text_question": q, "answer": a,
                  "text_answer": a} for q, a in qa]
        rows.append({"ID": ID, "source_id": name, "name": name, "images": [images[0]["image"]], "qa": pairs})
    return rows


def _untouched_rows(rows, split: str, start: int, question_field: str | None) -> list[dict]:
    out = []
    for i, row in enumerate(rows):
        answer = field(split, i, row, "answer", str).strip()
        options = field(split, i, row, "options", list, nonempty=False)
        wrong = [o.strip() for o in dict.fromkeys(o for o in options if isinstance(o, str)) if o.strip()
                 and o.strip() != answer]
        if len(wrong) < 3:
            fail(split, i, f"field 'options' has {len(wrong)} wrong options besides the answer; 3 are needed")
        question = field(split, i, row, question_field, str).strip() if question_field else NAME_QUESTION
        if "image" not in row:
            fail(split, i, "missing field 'image'")
        image = image_value(split, i, row["image"])
        rng = random.Random(f"{split.split()[0]}/{i}")
        out.append({"ID": UNTOUCHED_ID_OFFSET + start + len(out), "source_id": f"{split.split()[0]}/{i}",
                    "name": answer if question_field is None else "", "image": image,
                    "Classification_Task": {"Image_Textual_Questions": [_mc(question, answer, wrong, rng, "untouched")],
                                            "Pure_Text_Questions": []},
                    "Generation_Task": [], "Mask_Task": []})
    return out


def load(path: str = HUB_ID, forget_split: str = "forget_10", cache_dir: str | Path | None = None,
         perturbed: bool = True, text_qa: bool = True, untouched: tuple[str, ...] | list[str] = UNTOUCHED_CONFIGS,
         seed: int = 0, key: str = "data.path") -> DatasetDict:
    """The internal DatasetDict (train, forget_P, retain_{100-P}, test_P, untouched) for one forget split."""
    pct = forget_percent(forget_split, FORGET_PERCENTS, "clear")
    unknown = set(untouched) - set(UNTOUCHED_CONFIGS)
    if unknown:
        raise DataError(f"data.spec.untouched={list(untouched)}: unknown {sorted(unknown)}; choose from "
                        f"{list(UNTOUCHED_CONFIGS)}")
    source = resolve_source(path, key, HUB_ID)

    def get(config, split="train", rows=True):
        ds, label = load_config(source, config, key=key, repo_id=HUB_ID, cache_dir=cache_dir, split=split)
        return (raw_rows(ds) if rows else ds), label

    f_cfg, r_cfg = f"forget{_pp(pct)}", f"retain{_pp(100 - pct)}"
    forget_people = _image_rows(*get(f_cfg))
    retain_people = _image_rows(*get(r_cfg))
    both = set(forget_people) & set(retain_people)
    if both:
        raise DataError(f"people {sorted(both)[:5]} are in both {f_cfg} and {r_cfg} ({source})")
    population = sorted(set(forget_people) | set(retain_people))
    if len(population) < 4:
        raise DataError(f"{f_cfg} and {r_cfg} have {len(population)} people; four are needed for options A-D")
    ids = {name: k for k, name in enumerate(population)}

    f_pert, r_pert = {}, {}
    if perturbed:
        f_pert = _perturbations(*get(f"{f_cfg}_perturbed"), allowed=set(forget_people))
        r_pert = _perturbations(*get("retain_perturbed"), allowed=set(retain_people))
    f_qa, r_qa = {}, {}
    if text_qa:
        f_qa = _text_qa(*get(f"{f_cfg}+tofu", rows=False), names=sorted(forget_people))
        r_qa = _text_qa(*get(f"{r_cfg}+tofu", rows=False), names=sorted(retain_people))

    def rows_of(people, pert, qa, test=False):
        return [_eval_row(ids[n], n, people[n], pert, qa.get(n, []), population, seed, test)
                for n in sorted(people, key=ids.get)]

    splits = {f"forget_{pct}": rows_of(forget_people, f_pert, f_qa),
              f"retain_{100 - pct}": rows_of(retain_people, r_pert, r_qa),
              f"test_{pct}": rows_of(forget_people, f_pert, f_qa, test=True)}
    untouched_rows: list[dict] = []
    for config in untouched:
        rows, label = get(config, split=None)
        untouched_rows += _untouched_rows(rows, label, len(untouched_rows),
                                          None if config == "real_faces" else "question")
    splits["untouched"] = untouched_rows
    train = [r for n in population
             for r in _train_rows(ids[n], n, (forget_people.get(n) or retain_people[n]),
                                  f_qa.get(n) or r_qa.get(n) or [])]
    check_train_rows("train", train)
    for name, rows in splits.items():
        check_eval_rows(name, rows)
    return DatasetDict({"train": to_dataset(train, TRAIN_FEATURES),
                        **{name: to_dataset(rows, EVAL_FEATURES) for name, rows in splits.items()}})
