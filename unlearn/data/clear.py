"""CLEAR (Dontsov et al. 2024, arXiv:2410.18057) read from the hub or a local snapshot, in the internal layout.

Source: the hub dataset `therem/CLEAR`, or a directory holding a copy of that repository
(`hf download --repo-type dataset therem/CLEAR --local-dir DIR`, then `data.path=DIR`).

The real format. CLEAR has the 200 fictitious authors of TOFU, each with about 19 generated images; a row is
one *image*, not one person:
  * `forget01/05/10`, `retain99/95/90`, `full` (and `default`, the same under `data/`): `image`, `caption`
    (a description of the image) and `name`.
  * `forget01/05/10+tofu`, `retain99/95/90+tofu`, `full+tofu`: `image`, `caption`, `question`, `answer`
    and no `name`: the image rows again plus TOFU's text QA about the same authors, as rows whose `image` is
    null (forget01+tofu: 35 image rows + 40 QA rows, TOFU's 20 per author). No paraphrased or perturbed
    answers. CLEAR trains and unlearns these text rows but never evaluates them: its MLLM evaluation
    (mm/eval.py, config/mm/eval.yaml) has six tasks, every one with an image (captions, face recognition,
    real_faces, real_world). Its only text-only evaluation is of a separate text-only LLM (nlp/: Llama-2-7B
    chat, `[INST] q [/INST]`, taught and unlearned on `locuslab/TOFU`, scored by TOFU's own code over
    `locuslab/TOFU`'s `*_perturbed` configs), which cannot load an MLLM; the text-only items here have no
    counterpart in CLEAR's MLLM numbers.
  * `forget01/05/10_perturbed`, `retain_perturbed`: `image`, `caption`, `name`, `paraphrased_caption`,
    `perturbed_captions` and `perturbed_names` (lists), the inputs of CLEAR's truth ratio and, for face
    recognition, the wrong options. Their rows need not match the plain config one to one (forget10: 379
    rows, forget10_perturbed: 378); they are joined on (name, caption), and rows of people outside the split
    being built are ignored (retain_perturbed serves every forget percentage).
  * `real_faces` (151 real celebrities): `image`, `answer` (the name), `options` (wrong names);
    `real_world` (367 rows): `image`, `question`, `answer`, `options`.
  Every config has one `train` split; `real_world` was first published as `test` (both are accepted).

Which of these are confirmed, and where (the same findings for readers: docs/data_formats.md):
  confirmed, hub card and viewer of therem/CLEAR (huggingface.co/datasets/therem/CLEAR, /viewer, /tree, commits):
    - the 21 config names and row counts (viewer: forget01 35, forget01+tofu 75, forget10 379,
      forget10_perturbed 378, retain_perturbed 395, real_faces 151, real_world 367, full 3.77k, ...), one split;
    - plain configs: image, caption, name (`name` added in commit 4aeeb41, 2024-09-21; before: image, caption);
    - +tofu: image, caption, question, answer (commit e3d92cf);
    - _perturbed: image, caption, name, paraphrased_caption, perturbed_names, perturbed_captions (`name` and
      `perturbed_names` added in commit 0b3faec, 2024-09-21; the first revisions b9a222a / fd13446 had only
      image, caption, paraphrased_caption, perturbed_captions);
    - real_faces: image, answer, options, split `train` (commit 2bf6316);
    - real_world: first revision (a0eb756) question, answer, image, prompt, options in a `test` split (426
      rows); that parquet was deleted (73a6323) and the config now ships `real_world/train-00000-of-00001.parquet`;
    - image encoding: `dtype: image` columns, stored in parquet as {bytes, path} structs.
  confirmed, CLEAR's code (somvy/multimodal_unlearning):
    - +tofu rows with a null `image` are the text QA rows (mm/dataset.py, MMMixedDataset);
    - IMAGE_CAPTION_QUESTIONS and the "random_faces" prompt (mm/dataset.py);
    - its evaluation reads forget10_perturbed / retain_perturbed / real_faces / real_world, only their first
      `ds_size: 300` rows each (config/mm/eval.yaml, mm/eval.py get_dataloader; here every row unless
      `eval_rows`, data.eval_rows), and pairs caption -> paraphrased_caption + perturbed_captions and name -> perturbed_names,
      real_* answer -> options (config/mm/eval.yaml).
  confirmed, MMUnlearner's CLEAR_eval.py (Z1zs/MMUnlearner): the face-recognition question
    NAME_QUESTION with options = perturbed_names + the name; real_faces / real_world read `answer`, `options`,
    `question`, inserting the answer among however many options a row has.
  unconfirmed:
    - that captions name the person (nothing here relies on it);
    - that every `retain_perturbed` person is a retain person of every forget split (we ignore rows of
      people outside the split instead of assuming it);
    - that a snapshot older than 2024-09-21 can be used: with no `name` anywhere it cannot be split into
      people; its rows are skipped with that reason, and the run stops when none are left.
  corrected here: `real_world` is now a `train` split (the docstring and fixture said `test`); the first
    `_perturbed` revisions lack `name` / `perturbed_names` (now joined on the caption, wrong names seeded).

Mapping to the internal splits, for forget percentage P in {1, 5, 10} (configs `forget{P:02}` etc.):
  =======================================  ===========================================================
  real config                              internal split
  =======================================  ===========================================================
  forget{P:02} + retain{100-P:02}          train: per image, a caption pair and a name pair; per
   (+ their `+tofu` text QA)               person, one row with the person's TOFU QA; CLEAR's own
                                           pairs, or captions alone: `data.spec.train_pairs`
                                           (`_train_rows`)
  forget{P:02} (+ _perturbed, +tofu)       forget_P: one row per image (`every_image`, the default)
  retain{100-P:02} (+ retain_perturbed,    retain_{100-P}: one row per image that has a
   +tofu)                                  retain_perturbed row (CLEAR's retain evaluation set), at
                                           least one per person
  forget{P:02}_perturbed                   test_P: the forget images asked with paraphrased prompts,
                                           answered by the paraphrased caption
  real_faces, real_world                   untouched (no training rows)
  =======================================  ===========================================================
Eval rows, one per image of a person (CLEAR evaluates every image): the same `ID` on all of a person's rows,
`Image_Index` = the image's position among the person's images in the plain config, and that image's items:
  * MC, multimodal: face recognition `NAME_QUESTION` with the name among three `perturbed_names` of that
    image (without them, three other people's names drawn with the seed), and, where the image has three
    `perturbed_captions`, `CAPTION_MC_QUESTION` with the caption among them.
  * Generation, multimodal: one of CLEAR's caption prompts (`IMAGE_CAPTION_QUESTIONS`) -> the caption, with
    `Paraphrased_Answer` (paraphrased_caption) and `Perturbed_Answers` (perturbed_captions) where the image
    has a `_perturbed` row (truth ratio); without one they are null.
  * Generation, multimodal, where the image has `perturbed_names`: CLEAR's face recognition task
    (config/mm/eval.yaml `eval_forget_facerec` / `eval_retain_facerec`): `FACE_PROMPT` (its "random_faces"
    prompt; test: `NAME_QUESTION`) -> the name, `Paraphrased_Answer` the name, `Perturbed_Answers` the
    perturbed names.
  * Generation, text-only: the person's TOFU questions -> answers (from the `+tofu` configs), on the
    person's first row only, so that they are asked once; no paraphrased / perturbed answers (none published).
  * Not available, left empty: text-only MC (CLEAR has no options for TOFU QA) and cloze (`Mask_Task`).
`retain_images="all"` (data.retain_images) keeps every retain image. `every_image=False` keeps the earlier
layout: one row per person, showing the first image that has perturbations (else the first).
Untouched rows (real_faces, real_world): an MC question (the answer among three of `options`) and, as
CLEAR's `eval_real_*_wo_options` tasks, a generation item of the answer against the wrong options. test_P: the forget people's same images (CLEAR has no held-out images) asked
with CLEAR's other recognition prompt (`TEST_NAME_QUESTION`) and the next caption prompt, answered by
`paraphrased_caption` (whose own paraphrase is then the caption); TOFU QA is left out (CLEAR publishes no
paraphrased text questions). IDs: people get 0..N-1 in the sorted order of their names (the same for every
forget percentage); untouched rows get `UNTOUCHED_ID_OFFSET` + their position; `source_id` keeps the name.

Rows that cannot be used follow `data.on_bad_row` (unlearn/data/schema.py): `error` stops naming split, row
and field; `skip` drops the row (or its one bad question) and counts it. A plain config without `name`
takes it from `full` / the `_perturbed` configs by caption; a `_perturbed` row without `name` is joined on
its caption alone; without `perturbed_names` the wrong names are drawn as without the perturbed configs.
A real_faces / real_world row with fewer than three distinct wrong options is bad (our MC has four options).

TOFU QA rows carry no name. A QA belongs to the person of that side (forget or retain) whose full name
appears in its question, else in its answer (the longest name if several match); a QA naming nobody
belongs to the person of the closest QA before it (TOFU lists each author's 20 questions together), or, at
the start, after it. Text forms: a TOFU question is text-only as published; its multimodal form replaces
the full name with "this person" (the inverse of the MANU rule used for MLLMU-Bench). A caption pair's
text-only form asks `CAPTION_TEXT_QUESTION` ("Describe a picture of <name>.").
"""

from __future__ import annotations

import random
from collections import defaultdict
from itertools import islice
from pathlib import Path

from datasets import DatasetDict

from unlearn.data.choices import CAPTION_PROMPTS, TRAIN_PAIRS
from unlearn.data.hub import (EVAL_FEATURES, TRAIN_FEATURES, field, image_value, lettered, load_config, raw_rows,
                              resolve_source, to_dataset)
from unlearn.data.mllmu_bench import forget_percent
from unlearn.data.schema import BadRows, DataError, check_eval_rows, check_train_rows, fail, split_name

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
TEST_NAME_QUESTION = "The name of the person on the image is "  # CLEAR's "random_faces" prompt, mm/dataset.py
# (its trailing space kept: until 2026-12-03 it was dropped)
FACE_PROMPT = TEST_NAME_QUESTION  # CLEAR's face recognition and real_faces generation ask with it (eval.yaml)
CAPTION_MC_QUESTION = "Which caption describes this image?"  # ours: CLEAR scores captions by truth ratio
CAPTION_TEXT_QUESTION = "Describe a picture of {name}."  # ours: text-only form of a caption pair
NAME_TEXT_QUESTION = "What is the name of {name}?"  # text-only form of the name pair (as the embedded benchmark)
MULTIMODAL_REF = "this person"


def _pp(p: int) -> str:
    return f"{p:02d}"


def _image_row(split: str, i: int, row: dict, owner: dict[str, str] | None = None) -> tuple[str, dict]:
    caption = field(split, i, row, "caption", str).strip()
    if "name" in row or owner is None:
        name = field(split, i, row, "name", str).strip()
    else:  # a revision without `name` here: another config that has it names the caption's person
        name = owner.get(caption)
        if name is None:
            fail(split, i, "no field 'name' and no other config names the person of this caption",
                 "no field 'name' and no other config names the person of this caption")
    if "image" not in row:
        fail(split, i, "missing field 'image'")
    return name, {"image": image_value(split, i, row["image"]), "caption": caption, "row": i}


def _image_rows(rows, split: str, bad: BadRows | None = None, owner: dict[str, str] | None = None
                ) -> dict[str, list[dict]]:
    """name -> that person's images in source order: [{image, caption, row}]. `owner`: caption -> name from
    other configs, for a config published without `name`."""
    bad = bad or BadRows()
    people: dict[str, list[dict]] = {}
    for i, row in enumerate(rows):
        got = bad.keep(_image_row, split, i, row, owner)
        if got is not None:
            people.setdefault(got[0], []).append(got[1])
    if not people:  # what the skip dropped, as MLLMU-Bench's loader says (until the forty-ninth session nothing)
        dropped = bad.skipped.get(split_name(split), {})
        raise DataError(f"split '{split}' has no usable rows (data.on_bad_row={bad.mode} dropped: "
                        f"{dropped or 'nothing: it is empty'})")
    return people


def _names_by_caption(get, configs) -> dict[str, str]:
    """caption -> name from those of `configs` that exist and have both columns (images not read)."""
    out: dict[str, str] = {}
    for config in configs:
        try:
            ds, _ = get(config, rows=False)
        except DataError:
            continue
        if {"caption", "name"} <= set(ds.column_names):
            for row in ds.select_columns(["caption", "name"]).to_list():
                if isinstance(row["caption"], str) and isinstance(row["name"], str) and row["name"].strip():
                    out.setdefault(row["caption"].strip(), row["name"].strip())
    return out


def _perturbation(split: str, i: int, row: dict, allowed: set[str], owner: dict[str, str]):
    caption = field(split, i, row, "caption", str).strip()
    if "name" in row:
        name = field(split, i, row, "name", str).strip()
    else:  # the first revisions of the _perturbed configs had no `name`: the plain config's caption names it
        name = owner.get(caption)
        if name is None:
            fail(split, i, "no field 'name' and the caption matches no image of the plain config",
                 "no field 'name' (older CLEAR revision) and no plain-config image with this caption")
    if name not in allowed:
        return None  # retain_perturbed is shared by every forget percentage: skip who is forgotten here
    entry = {"paraphrased_caption": field(split, i, row, "paraphrased_caption", str).strip()}
    for key in ("perturbed_captions", "perturbed_names"):
        if key == "perturbed_names" and key not in row:
            continue  # older revisions: wrong names fall back to other people's, drawn with the seed
        values = field(split, i, row, key, list, nonempty=False)
        if any(not isinstance(v, str) or not v.strip() for v in values):
            fail(split, i, f"field '{key}' has an empty or non-text entry")
        entry[key] = [v.strip() for v in values]
    return (name, caption), entry


def _perturbations(rows, split: str, allowed: set[str], owner: dict[str, str] | None = None,
                   bad: BadRows | None = None, first: list | None = None) -> dict[tuple[str, str], dict]:
    """(name, caption) -> {paraphrased_caption, perturbed_captions[, perturbed_names]}. `owner`: caption ->
    name of the plain configs, for the revisions without a `name` column. `first`: a list that receives the
    keys of the rows in source order (CLEAR's evaluation reads a config's first `ds_size` rows)."""
    bad = bad or BadRows()
    out = {}
    for i, row in enumerate(rows):
        got = bad.keep(_perturbation, split, i, row, allowed, owner or {})
        if got is not None:
            out[got[0]] = got[1]
        if first is not None:
            first.append(got[0] if got is not None else None)
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


def _text_qa(ds, split: str, names: list[str], bad: BadRows | None = None) -> dict[str, list[tuple[str, str]]]:
    """TOFU QA rows (null image) of a `+tofu` config, assigned to people (see the module docstring).
    Its image rows are skipped: they repeat the plain config's images."""
    found = []  # (row, question, answer, owner or None)
    bad = bad or BadRows()
    for i, row in _qa_rows(ds):
        pair = bad.keep(lambda: (field(split, i, row, "question", str).strip(),
                                 field(split, i, row, "answer", str).strip()))
        if pair is None:
            continue
        question, answer = pair
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
    unnamed = sorted(set(names) - {owner for *_, owner in found})
    if unnamed:
        # a person whose name no question carries (another spelling) would get none of their own questions and
        # the carried-forward owner theirs (silently, until 2026-12-05). Refused under data.on_bad_row=skip too:
        # nothing can be left out that would mend it
        raise DataError(f"split '{split}': {len(unnamed)} people named by no text QA question "
                        f"({', '.join(unnamed[:3])}{' ...' if len(unnamed) > 3 else ''}): their questions would be "
                        "given to another person")
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


def _eval_rows(ID: int, name: str, images: list[dict], perturbed: dict, qa: list[tuple[str, str]],
               population: list[str], seed: int, test: bool, every_image: bool = True,
               only_perturbed: bool = False, evaluated: set | None = None) -> list[dict]:
    """A person's eval rows: one per image (`every_image`, Image_Index = the image's position among the
    person's images), or one showing the first image that has perturbations (else the first). Each row holds
    that image's items; the person's TOFU QA (text-only) goes on the first row only, so it is asked once.
    `only_perturbed`: of every image, only those with published perturbations (at least the first image) --
    the retain split, which CLEAR evaluates on `retain_perturbed` alone (395 of about 3,400 retain images).
    `evaluated`: only the images whose (name, caption) it holds, and none if it holds none of this person's
    (data.eval_rows: the images of the first rows of the `_perturbed` config, as CLEAR's `ds_size`)."""
    if evaluated is not None:
        picks = [(k, im) for k, im in enumerate(images) if (name, im["caption"]) in evaluated]
    elif every_image:
        picks = list(enumerate(images))
        if only_perturbed:
            picks = [(k, im) for k, im in picks if (name, im["caption"]) in perturbed] or picks[:1]
    else:
        k = next((k for k, im in enumerate(images) if (name, im["caption"]) in perturbed), 0)
        picks = [(k, images[k])]
    rows = []
    for n, (k, im) in enumerate(picks):
        extra = perturbed.get((name, im["caption"]), {})
        where = f"{seed}/{'test' if test else 'eval'}/{name}" + (f"/{k}" if every_image else "")
        rng = random.Random(where)
        wrong_names = _distractor_names(name, population, extra.get("perturbed_names"), rng)
        mc = [_mc(TEST_NAME_QUESTION if test else NAME_QUESTION, name, wrong_names, rng, "name")]
        caption = extra.get("paraphrased_caption", im["caption"]) if test else im["caption"]
        wrong_captions = [c for c in dict.fromkeys(extra.get("perturbed_captions", [])) if c != caption]
        if len(wrong_captions) >= 3:
            mc.append(_mc(CAPTION_MC_QUESTION, caption, wrong_captions, rng, "caption"))
        q = (ID + k + test) % len(IMAGE_CAPTION_QUESTIONS) if every_image else (ID + test) % len(IMAGE_CAPTION_QUESTIONS)
        # test items ask for the paraphrase; its own paraphrase is then the original caption
        alternatives = _caption_alternatives(
            {**extra, "paraphrased_caption": im["caption"]} if test and extra else extra, caption)
        gen = [{"Question": IMAGE_CAPTION_QUESTIONS[q], "Ground_Truth": caption, "Type": "Image_Textual",
                "attribute": "caption", **alternatives}]
        names = [n for n in dict.fromkeys(extra.get("perturbed_names") or []) if n and n != name]
        if names:  # CLEAR's face recognition task: the name generated, its truth ratio against perturbed_names
            gen.append({"Question": NAME_QUESTION if test else FACE_PROMPT, "Ground_Truth": name,
                        "Type": "Image_Textual", "attribute": "name", "Paraphrased_Answer": name,
                        "Perturbed_Answers": names})
        if not test and n == 0:
            gen += [{"Question": q_, "Ground_Truth": a, "Type": "Pure_Text", "attribute": "tofu"} for q_, a in qa]
        rows.append({"ID": ID, "source_id": name, "name": name, "image": im["image"], "Image_Index": k,
                     "Classification_Task": {"Image_Textual_Questions": mc, "Pure_Text_Questions": []},
                     "Generation_Task": gen, "Mask_Task": []})
    return rows


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


def _caption_prompt(name: str, k: int, how: str, seed: int) -> str:
    """The caption prompt image `k` of `name` is taught with: `cycle`, the k-th of IMAGE_CAPTION_QUESTIONS;
    `random_once`, one drawn per image, seeded, kept for every epoch (MMUnlearner's CLEAR_process.py draws once,
    when its dataset is built; CLEAR's MMMixedDataset draws anew on every access: not reproduced)."""
    if how == "cycle":
        return IMAGE_CAPTION_QUESTIONS[k % len(IMAGE_CAPTION_QUESTIONS)]
    return random.Random(f"{seed}/caption_prompt/{name}/{k}").choice(IMAGE_CAPTION_QUESTIONS)


def _train_rows(ID: int, name: str, images: list[dict], qa: list[tuple[str, str]], pairs: str = "both_forms",
                prompt: str = "cycle", seed: int = 0) -> list[dict]:
    """The pairs a person is taught and forgotten with (`data.spec.train_pairs`), a row per image and one for the
    person's TOFU questions; a pair without a form has None there.
      both_forms (ours): per image a caption pair and a name pair, each with a text-only form, and each TOFU
        question with an image form, so that both modalities of each fact are taught and can be forgotten;
      clear: CLEAR's own (mm/dataset.py `MMMixedDataset` over the `+tofu` configs): an image -> its caption,
        and the TOFU questions text-only;
      captions: MMUnlearner's CLEAR scripts (CLEAR_manifold.py reads the plain configs in CAPTION_MODE): an
        image -> its caption, nothing else."""
    rows = []
    for k, im in enumerate(images):
        caption = {"multimodal_question": _caption_prompt(name, k, prompt, seed), "text_question": None,
                   "answer": im["caption"], "text_answer": None}
        if pairs == "both_forms":
            caption.update(text_question=CAPTION_TEXT_QUESTION.format(name=name), text_answer=im["caption"])
            qa_pairs = [caption, {"multimodal_question": NAME_QUESTION,
                                  "text_question": NAME_TEXT_QUESTION.format(name=name), "answer": name,
                                  "text_answer": name}]
        else:
            qa_pairs = [caption]
        rows.append({"ID": ID, "source_id": name, "name": name, "images": [im["image"]], "qa": qa_pairs})
    if qa and pairs != "captions":
        rows.append({"ID": ID, "source_id": name, "name": name, "images": [images[0]["image"]],
                     "qa": [{"multimodal_question": q.replace(name, MULTIMODAL_REF) if pairs == "both_forms" else None,
                             "text_question": q, "answer": a, "text_answer": a} for q, a in qa]})
    return rows


def _untouched_row(split: str, i: int, row: dict, ID: int, question_field: str | None) -> dict:
    answer = field(split, i, row, "answer", str).strip()
    options = field(split, i, row, "options", list, nonempty=False)
    wrong = [o.strip() for o in dict.fromkeys(o for o in options if isinstance(o, str)) if o.strip()
             and o.strip() != answer]
    if len(wrong) < 3:
        fail(split, i, f"field 'options' has {len(wrong)} wrong options besides the answer; 3 are needed",
             "field 'options' has fewer than 3 wrong options besides the answer")
    question = field(split, i, row, question_field, str).strip() if question_field else NAME_QUESTION
    if "image" not in row:
        fail(split, i, "missing field 'image'")
    image = image_value(split, i, row["image"])
    config = split_name(split)
    rng = random.Random(f"{config}/{i}")
    return {"ID": ID, "source_id": f"{config}/{i}", "name": answer if question_field is None else "",
            "image": image, "Image_Index": 0,
            "Classification_Task": {"Image_Textual_Questions": [_mc(question, answer, wrong, rng, "untouched")],
                                    "Pure_Text_Questions": []},
            # CLEAR's real_faces / real_world tasks: the answer generated, its truth ratio against the options
            "Generation_Task": [{"Question": question if question_field else FACE_PROMPT, "Ground_Truth": answer,
                                 "Type": "Image_Textual", "attribute": "untouched", "Paraphrased_Answer": answer,
                                 "Perturbed_Answers": wrong}],
            "Mask_Task": []}


def _untouched_rows(rows, split: str, start: int, question_field: str | None,
                    bad: BadRows | None = None) -> list[dict]:
    """real_faces / real_world rows as four-option MC. CLEAR's own evaluation (config/mm/eval.yaml) and
    MMUnlearner's CLEAR_eval.py put the answer among however many `options` a row has; our MC needs
    four, so a row with fewer than three distinct wrong options is bad (skipped under `skip`)."""
    bad = bad or BadRows()
    out = []
    for i, row in enumerate(rows):
        r = bad.keep(_untouched_row, split, i, row, UNTOUCHED_ID_OFFSET + start + len(out), question_field)
        if r is not None:
            out.append(r)
    return out


def load(path: str = HUB_ID, forget_split: str = "forget_10", cache_dir: str | Path | None = None,
         perturbed: bool = True, text_qa: bool = True, untouched: tuple[str, ...] | list[str] = UNTOUCHED_CONFIGS,
         seed: int = 0, key: str = "data.path", every_image: bool = True, bad: BadRows | None = None,
         retain_images: str = "perturbed", train_pairs: str = "both_forms",
         caption_prompt: str = "cycle", eval_rows: int | None = None, people: dict | None = None) -> DatasetDict:
    """The internal DatasetDict (train, forget_P, retain_{100-P}, test_P, untouched) for one forget split.
    `every_image`: one eval row per image of a person (else one per person). `bad`: the data.on_bad_row
    policy, which also collects what was skipped (default: error). `train_pairs`, `caption_prompt`: the
    training pairs (`_train_rows`). `eval_rows`: evaluate only the images of the first `eval_rows` rows of
    `forget{P}_perturbed` (forget and test) and of `retain_perturbed` (retain), and the first `eval_rows` rows
    of each untouched config, as CLEAR's evaluation reads each eval config's first `ds_size` (300) rows: the
    training rows, and the forget and retain people, stay whole. `people`, when given, receives the forget and
    retain people's IDs as the forget/retain configs name them (Benchmark's groups: a person none of whose images
    is evaluated is still unlearned, or kept, as CLEAR trains on the whole forget10+tofu / retain90+tofu)."""
    bad = bad or BadRows()
    pct = forget_percent(forget_split, FORGET_PERCENTS, "clear")
    unknown = set(untouched) - set(UNTOUCHED_CONFIGS)
    if unknown:
        raise DataError(f"data.spec.untouched={list(untouched)}: unknown {sorted(unknown)}; choose from "
                        f"{list(UNTOUCHED_CONFIGS)}")
    if retain_images not in ("perturbed", "all"):
        raise DataError(f"data.retain_images={retain_images!r}: expected perturbed or all")
    if train_pairs not in TRAIN_PAIRS:
        raise DataError(f"data.spec.train_pairs={train_pairs!r}: expected one of {list(TRAIN_PAIRS)}")
    if caption_prompt not in CAPTION_PROMPTS:
        raise DataError(f"data.spec.caption_prompt={caption_prompt!r}: expected one of {list(CAPTION_PROMPTS)}")
    if eval_rows is not None:
        if isinstance(eval_rows, bool) or not isinstance(eval_rows, int) or eval_rows < 1:
            raise DataError(f"data.eval_rows={eval_rows!r}: expected null (every row) or an integer >= 1")
        if not (perturbed and every_image and retain_images == "perturbed"):
            raise DataError(f"data.eval_rows={eval_rows} counts rows of the _perturbed configs, one eval row "
                            "per image: it needs data.spec.perturbed=true, data.spec.every_image=true and "
                            "data.retain_images=perturbed")
    source = resolve_source(path, key, HUB_ID)

    def get(config, split="train", rows=True):
        ds, label = load_config(source, config, key=key, repo_id=HUB_ID, cache_dir=cache_dir, split=split)
        return (raw_rows(ds) if rows else ds), label

    f_cfg, r_cfg = f"forget{_pp(pct)}", f"retain{_pp(100 - pct)}"

    def people_of(config):
        ds, label = get(config, rows=False)
        owner = None if "name" in ds.column_names else _names_by_caption(get, ("full", f"{f_cfg}_perturbed",
                                                                                "retain_perturbed"))
        return _image_rows(raw_rows(ds), label, bad, owner)

    forget_people = people_of(f_cfg)
    retain_people = people_of(r_cfg)
    both = set(forget_people) & set(retain_people)
    if both:
        raise DataError(f"people {sorted(both)[:5]} are in both {f_cfg} and {r_cfg} ({source})")
    population = sorted(set(forget_people) | set(retain_people))
    if len(population) < 4:
        raise DataError(f"{f_cfg} and {r_cfg} have {len(population)} people; four are needed for options A-D")
    ids = {name: k for k, name in enumerate(population)}
    if people is not None:
        people.update(forget={ids[n] for n in forget_people}, retain={ids[n] for n in retain_people})
    owner = {im["caption"]: n for group in (forget_people, retain_people) for n, ims in group.items() for im in ims}

    f_pert, r_pert = {}, {}
    f_order, r_order = [], []  # the _perturbed configs' keys in row order (None: a row not read)
    if perturbed:
        f_pert = _perturbations(*get(f"{f_cfg}_perturbed"), allowed=set(forget_people), owner=owner, bad=bad,
                                first=f_order)
        r_pert = _perturbations(*get("retain_perturbed"), allowed=set(retain_people), owner=owner, bad=bad,
                                first=r_order)
    for config, pert, group in ((f"{f_cfg}_perturbed", f_pert, forget_people), ("retain_perturbed", r_pert,
                                                                                  retain_people)):
        images = {(n, im["caption"]) for n, ims in group.items() for im in ims}
        if unused := [k for k in pert if k not in images]:  # no image to evaluate them on: counted, not silent
            bad.count_unused(config, "a perturbation whose caption matches no image of its person in the plain "
                                     "config", len(unused), f"{unused[0][0]!r}, {unused[0][1][:60]!r}")
    f_eval = r_eval = None
    if eval_rows is not None:
        f_eval, r_eval = set(f_order[:eval_rows]) - {None}, set(r_order[:eval_rows]) - {None}
    f_qa, r_qa = {}, {}
    if text_qa:
        f_qa = _text_qa(*get(f"{f_cfg}+tofu", rows=False), names=sorted(forget_people), bad=bad)
        r_qa = _text_qa(*get(f"{r_cfg}+tofu", rows=False), names=sorted(retain_people), bad=bad)

    def rows_of(people, pert, qa, test=False, only_perturbed=False, evaluated=None):
        return [r for n in sorted(people, key=ids.get)
                for r in _eval_rows(ids[n], n, people[n], pert, qa.get(n, []), population, seed, test, every_image,
                                    only_perturbed and bool(pert), evaluated)]

    splits = {f"forget_{pct}": rows_of(forget_people, f_pert, f_qa, evaluated=f_eval),
              f"retain_{100 - pct}": rows_of(retain_people, r_pert, r_qa,
                                             only_perturbed=retain_images == "perturbed", evaluated=r_eval),
              f"test_{pct}": rows_of(forget_people, f_pert, f_qa, test=True, evaluated=f_eval)}
    untouched_rows: list[dict] = []
    for config in untouched:
        rows, label = get(config, split=None)  # real_world: published as `test`, now as `train`
        if eval_rows is not None:
            rows = islice(rows, eval_rows)
        untouched_rows += _untouched_rows(rows, label, len(untouched_rows),
                                          None if config == "real_faces" else "question", bad)
    splits["untouched"] = untouched_rows
    train = [r for n in population
             for r in _train_rows(ids[n], n, (forget_people.get(n) or retain_people[n]),
                                  f_qa.get(n) or r_qa.get(n) or [], train_pairs, caption_prompt, seed)]
    train = check_train_rows("train", train, bad=bad)
    splits = {name: check_eval_rows(name, rows, bad=bad) for name, rows in splits.items()}
    return DatasetDict({"train": to_dataset(train, TRAIN_FEATURES),
                        **{name: to_dataset(rows, EVAL_FEATURES) for name, rows in splits.items()}})
