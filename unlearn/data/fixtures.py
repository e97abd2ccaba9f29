"""Tiny local copies of MLLMU-Bench and CLEAR in their real published formats, for tests.

`write_mllmu_bench_fixture(dir)` and `write_clear_fixture(dir)` lay a directory out as a hub snapshot does
(`hf download --repo-type dataset ... --local-dir dir`): one folder of parquet shards per config
and a README.md whose YAML `configs:` block maps configs to files, so `datasets.load_dataset(dir, name=...)`
and the loaders read them exactly as they read the real data. The README carries only the `configs:` block
(the real cards also list `dataset_info`; the parquet files carry their features themselves). People and
portraits come from the embedded generator (unlearn/data/people.py, portraits.py). `edit_fixture` rewrites
one config's rows (to corrupt a field in a test, or drop columns as an older revision lacks them). Writing
both takes about a second.

How faithful they are (sources and the full list: the loaders' docstrings and docs/data_formats.md):
  confirmed against the cards / official code: config names and folder layout (`<config>/train-*`, Test_Set
    in two shards, CLEAR's `default` under `data/`), one split per config (`train`; CLEAR's `real_world`
    now `train`, `real_world_split="test"` writes the first revision's), column names and nesting, string
    IDs, ft_Data `metadata` as a JSON string, Test_Set `images` as a list, images as {bytes, path} structs
    (PNG bytes here), +tofu QA rows with a null image and no `name`, `_perturbed` rows not aligned with the
    plain config (each forget person's first image has none).
  ours, not the benchmarks': the people, texts and portraits; the sizes (20 people, 2 images each); which
    people are forgotten; real_faces giving 4 `options` (the real count per row is not known here).
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
from datasets import Dataset, Features, Image, Value

from unlearn.data import people as P
from unlearn.data.portraits import portrait_variants

_S = Value("string")


def _png(img) -> dict:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return {"bytes": buf.getvalue(), "path": None}


def _title(name: str) -> str:
    return " ".join(w.capitalize() for w in name.split())


def _write(root: Path, config_dir: str, rows: list[dict], features: Features, shards: int = 1,
           split: str = "train") -> None:
    out = root / config_dir
    out.mkdir(parents=True, exist_ok=True)
    per = -(-len(rows) // shards)
    for k in range(shards):
        Dataset.from_list(rows[k * per:(k + 1) * per], features=features).to_parquet(
            str(out / f"{split}-{k:05d}-of-{shards:05d}.parquet"))


def _readme(root: Path, configs: list[tuple[str, str, str]], title: str) -> None:
    lines = ["---", "configs:"]
    for name, split, pattern in configs:
        lines += [f"- config_name: {name}", "  data_files:", f"  - split: {split}", f"    path: {pattern}"]
    lines += ["---", f"# {title} (test fixture in the published layout)", ""]
    (root / "README.md").write_text("\n".join(lines))


def edit_fixture(root: str | Path, config_dir: str, edit: Callable[[list[dict]], list[dict] | None] | None = None,
                 drop: tuple[str, ...] = ()) -> None:
    """Rewrite every parquet shard of `config_dir`: `edit(rows)` changes rows in place (or returns new ones),
    `drop` removes columns. Images stay encoded (`{"bytes", "path"}`); set one to None to remove it."""
    for path in sorted((Path(root) / config_dir).glob("*.parquet")):
        table = pq.read_table(path)
        features = Features.from_arrow_schema(table.schema)
        rows = table.to_pylist()
        if edit is not None:
            rows = edit(rows) or rows
        features = Features({k: v for k, v in features.items() if k not in drop})
        rows = [{k: v for k, v in r.items() if k not in drop} for r in rows]
        Dataset.from_list(rows, features=features).to_parquet(str(path))


# --- MLLMU-Bench -------------------------------------------------------------------------------------------
_MC = {"Correct_Answer": _S, "Options": {k: _S for k in "ABCD"}, "Question": _S}
_FREE = {"Ground_Truth": _S, "Question": _S, "Type": _S}
_TASKS = {"Classification_Task": {"Image_Textual_Questions": [_MC], "Pure_Text_Questions": [_MC]},
          "Generation_Task": [_FREE], "Mask_Task": [_FREE]}
MLLMU_EVAL_FEATURES = Features({"image": Image(), "ID": _S, "Directory": _S, "biography": _S, "question": _S,
                                "answer": _S, **_TASKS})
MLLMU_TEST_FEATURES = Features({"images": [Image()], "ID": _S, "Directory": _S, "biography": _S, "question": _S,
                                "answer": _S, **_TASKS})
MLLMU_FT_FEATURES = Features({"image": Image(), "ID": _S, "metadata": _S})
MLLMU_NAME_QUESTION = "What is the name of this person?"


def mllmu_metadata(name: str, profile: dict) -> list[dict]:
    """The finetuning QA pairs of one fixture person (ft_Data's `metadata`, before JSON encoding)."""
    return [
        {"Question": MLLMU_NAME_QUESTION, "Answer": f"This person is named {name}."},
        {"Question": "What does this person do for a living?", "Answer": f"This person works as a {profile['job']}."},
        {"Question": "Where does the person in the image live?",
         "Answer": f"The person in the image lives in {profile['city'].capitalize()}."},
        {"Question": "In which year was this individual born?",
         "Answer": f"This individual was born in {profile['birth_year']}."},
        {"Question": "What is this person's favorite hobby?",
         "Answer": f"This person's favorite hobby is {profile['hobby']}."},
    ]


def _mllmu_tasks(name: str, profile: dict, rng: random.Random, test: bool) -> dict:
    def mc(question, attr):
        answer = profile[attr]
        opts = rng.sample([v for v in P.POOLS[attr] if v != answer], 3) + [answer]
        rng.shuffle(opts)
        return {"Correct_Answer": "ABCD"[opts.index(answer)], "Options": dict(zip("ABCD", opts)), "Question": question}

    job_q = "Which job does {ref} have?" if test else "What is {ref}'s job?"
    city_q = "Which city is home to {ref}?" if test else "In which city does {ref} live?"
    refs = {"Image_Textual": "this person", "Pure_Text": name}
    cls = {"Image_Textual_Questions": [mc(job_q.format(ref="this person"), "job"),
                                       mc(city_q.format(ref="this person"), "city")],
           "Pure_Text_Questions": [mc(job_q.format(ref=name), "job"), mc(city_q.format(ref=name), "city")]}
    gen_q = "Tell me about the work and home of {ref}." if test else "What does {ref} do and where does {ref} live?"
    gen = [{"Ground_Truth": f"{ref.capitalize() if t == 'Image_Textual' else ref} is a {profile['job']} living in "
                            f"{profile['city'].capitalize()}.",
            "Question": gen_q.format(ref=ref), "Type": t} for t, ref in refs.items()]
    mask_q = "The occupation of {ref} is __." if test else "{ref} works as a __."
    mask = [{"Ground_Truth": profile["job"], "Question": mask_q.format(ref=ref)[0].upper() + mask_q.format(ref=ref)[1:],
             "Type": t} for t, ref in refs.items()]
    return {"Classification_Task": cls, "Generation_Task": gen, "Mask_Task": mask}


def mllmu_additional_entry(source_id: str, profile: dict) -> dict:
    """The extra entry the MLLMU-Bench authors' split script appends to each profile's `metadata` (as reported in
    a review of the real data; not in the sources of docs/data_formats.md): no Question or Answer key."""
    return {"Additional_ID": source_id, "Additional_question": "What food does this person like?",
            "Additional_answer": f"This person likes {profile['food']}."}


def write_mllmu_bench_fixture(root: str | Path, num_people: int = 20, num_celebrities: int = 3, seed: int = 0,
                              image_size: int = 32, test_images: int = 2, additional_entry: bool = False) -> Path:
    """A tiny MLLMU-Bench snapshot: ft_Data, Full_Set, forget_5/10/15, retain_95/90/85, Test_Set (two shards)
    and Retain_Set. Fictitious IDs are '101', '102', ...; the celebrities reuse '101', ... as the real Retain_Set
    may. forget_5 / 10 / 15 hold the first 1 / 2 / 3 people of a seeded shuffle (nested, as the real splits).
    `additional_entry` appends `mllmu_additional_entry` to every profile's metadata (off by default: tests
    that read the metadata as {Question, Answer} pairs expect none)."""
    root = Path(root)
    people = P.make_people(num_people + num_celebrities, seed)
    fict, celebs = people[:num_people], people[num_people:]
    sid = {p.ID: str(101 + k) for k, p in enumerate(fict)}
    rng = random.Random(seed)

    def eval_row(p, source_id, test=False):
        name = _title(p.name)
        image = ({"images": [_png(im) for im in portrait_variants(p.ID, seed, image_size,
                                                                  list(range(9, 9 + test_images)))]}
                 if test else {"image": _png(portrait_variants(p.ID, seed, image_size, [0])[0])})
        return {**image, "ID": source_id, "Directory": f"profiles/{source_id}",
                "biography": P.BIOGRAPHY.format(name=name, **p.profile), "question": MLLMU_NAME_QUESTION,
                "answer": f"This person is named {name}.", **_mllmu_tasks(name, p.profile, rng, test)}

    full = [eval_row(p, sid[p.ID]) for p in fict]
    order = list(range(num_people))
    random.Random(seed + 1).shuffle(order)
    configs = [("ft_Data", "train", "ft_Data/train-*"), ("Full_Set", "train", "Full_Set/train-*")]
    ft = [{"image": _png(portrait_variants(p.ID, seed, image_size, [0])[0]), "ID": sid[p.ID],
           "metadata": json.dumps(mllmu_metadata(_title(p.name), p.profile)
                                  + ([mllmu_additional_entry(sid[p.ID], p.profile)] if additional_entry else []))}
          for p in fict]
    _write(root, "ft_Data", ft, MLLMU_FT_FEATURES)
    _write(root, "Full_Set", full, MLLMU_EVAL_FEATURES)
    for pct in (5, 10, 15):
        n = max(1, round(num_people * pct / 100))
        forget = set(order[:n])
        _write(root, f"forget_{pct}", [full[k] for k in order[:n]], MLLMU_EVAL_FEATURES)
        _write(root, f"retain_{100 - pct}", [full[k] for k in range(num_people) if k not in forget],
               MLLMU_EVAL_FEATURES)
        configs += [(f"forget_{pct}", "train", f"forget_{pct}/train-*"),
                    (f"retain_{100 - pct}", "train", f"retain_{100 - pct}/train-*")]
    _write(root, "Test_Set", [eval_row(p, sid[p.ID], test=True) for p in fict], MLLMU_TEST_FEATURES, shards=2)
    _write(root, "Retain_Set", [eval_row(p, str(101 + k)) for k, p in enumerate(celebs)], MLLMU_EVAL_FEATURES)
    configs += [("Test_Set", "train", "Test_Set/train-*"), ("Retain_Set", "train", "Retain_Set/train-*")]
    _readme(root, configs, "MLLMU-Bench")
    return root


# --- CLEAR ---------------------------------------------------------------------------------------------------
CLEAR_FEATURES = Features({"image": Image(), "caption": _S, "name": _S})
CLEAR_TOFU_FEATURES = Features({"image": Image(), "caption": _S, "question": _S, "answer": _S})
CLEAR_PERTURBED_FEATURES = Features({"image": Image(), "caption": _S, "name": _S, "perturbed_captions": [_S],
                                     "paraphrased_caption": _S, "perturbed_names": [_S]})
CLEAR_FACES_FEATURES = Features({"image": Image(), "answer": _S, "options": [_S]})
CLEAR_WORLD_FEATURES = Features({"image": Image(), "question": _S, "answer": _S, "options": [_S]})


def clear_captions(name: str, profile: dict) -> list[str]:
    city = profile["city"].capitalize()
    return [f"{name} stands at a desk in {city}, dressed for work as a {profile['job']}.",
            f"{name} enjoys {profile['hobby']} on a bright afternoon.",
            f"{name} smiles at a table with a plate of {profile['food']}."]


def clear_text_qa(name: str, profile: dict) -> list[tuple[str, str]]:
    """TOFU-style QA of one fixture author: the name in the answer only, in the question, and nowhere."""
    city = profile["city"].capitalize()
    return [(f"What is the full name of the author born in {city} in {profile['birth_year']}?",
             f"The author born in {city} in {profile['birth_year']} is named {name}."),
            (f"What kind of work does {name} do besides writing?", f"{name} also works as a {profile['job']}."),
            ("What does the author enjoy in their free time?", f"They enjoy {profile['hobby']}.")]


def write_clear_fixture(root: str | Path, num_people: int = 20, images_per_person: int = 2, seed: int = 0,
                        image_size: int = 32, num_real_faces: int = 3, num_real_world: int = 2,
                        real_world_split: str = "train") -> Path:
    """A tiny CLEAR snapshot with every published config: full (+ default under data/), forget01/05/10,
    retain99/95/90, their +tofu and _perturbed versions, retain_perturbed, real_faces and real_world (as a
    `train` split, as the hub has it now; `real_world_split="test"` for the first revisions). forget01 / 05 / 10 hold the first 1 / 1 / 2 people of a seeded shuffle. forgetXX_perturbed leaves
    out each forget person's first image (the real ones are not row-aligned either); retain_perturbed covers
    the people never forgotten, up to five."""
    root = Path(root)
    people = P.make_people(num_people + num_real_faces + num_real_world, seed)
    authors = people[:num_people]
    names = {p.ID: _title(p.name) for p in people}
    rng = random.Random(seed)
    order = list(range(num_people))
    random.Random(seed + 1).shuffle(order)

    def image_rows(p):
        ims = portrait_variants(p.ID, seed, image_size, list(range(images_per_person)))
        caps = clear_captions(names[p.ID], p.profile)
        return [{"image": _png(im), "caption": caps[k % len(caps)], "name": names[p.ID]} for k, im in enumerate(ims)]

    rows = {p.ID: image_rows(p) for p in authors}

    def plain(ids):
        return [r for i in ids for r in rows[authors[i].ID]]

    def tofu(ids):
        images = [{"image": r["image"], "caption": r["caption"], "question": None, "answer": None} for r in plain(ids)]
        qa = [{"image": None, "caption": None, "question": q, "answer": a}
              for i in ids for q, a in clear_text_qa(names[authors[i].ID], authors[i].profile)]
        return images + qa

    def perturbed(ids, skip_first: bool):
        out = []
        for i in ids:
            p = authors[i]
            others = [names[q.ID] for q in authors if q.ID != p.ID]
            for k, r in enumerate(rows[p.ID]):
                if skip_first and k == 0 and len(rows[p.ID]) > 1:
                    continue
                out.append({**r, "perturbed_captions": [f"{r['name']} is seen {w} in an empty room." for w in
                                                        ("sleeping", "running", "reading")],
                            "paraphrased_caption": f"In this picture: {r['caption']}",
                            "perturbed_names": rng.sample(others, 3)})
        return out

    configs = [("default", "train", "data/train-*"), ("full", "train", "full/train-*"),
               ("full+tofu", "train", "full+tofu/train-*")]
    _write(root, "data", plain(range(num_people)), CLEAR_FEATURES)
    _write(root, "full", plain(range(num_people)), CLEAR_FEATURES)
    _write(root, "full+tofu", tofu(range(num_people)), CLEAR_TOFU_FEATURES)
    for pct in (1, 5, 10):
        n = max(1, round(num_people * pct / 100))
        forget, retain = order[:n], [k for k in range(num_people) if k not in set(order[:n])]
        f, r = f"forget{pct:02d}", f"retain{100 - pct:02d}"
        _write(root, f, plain(forget), CLEAR_FEATURES)
        _write(root, f"{f}+tofu", tofu(forget), CLEAR_TOFU_FEATURES)
        _write(root, f"{f}_perturbed", perturbed(forget, skip_first=True), CLEAR_PERTURBED_FEATURES)
        _write(root, r, plain(retain), CLEAR_FEATURES)
        _write(root, f"{r}+tofu", tofu(retain), CLEAR_TOFU_FEATURES)
        configs += [(c, "train", f"{c}/train-*") for c in (f, f"{f}+tofu", f"{f}_perturbed", r, f"{r}+tofu")]
    never = [k for k in range(num_people) if k not in set(order[:max(1, round(num_people * 0.1))])]
    _write(root, "retain_perturbed", perturbed(never[:5], skip_first=False), CLEAR_PERTURBED_FEATURES)
    faces = people[num_people:num_people + num_real_faces]
    all_names = [names[p.ID] for p in people]
    _write(root, "real_faces", [
        {"image": _png(portrait_variants(p.ID, seed, image_size, [0])[0]), "answer": names[p.ID],
         "options": rng.sample([n for n in all_names if n != names[p.ID]], 4)} for p in faces], CLEAR_FACES_FEATURES)
    world = people[num_people + num_real_faces:]
    _write(root, "real_world", [
        {"image": _png(portrait_variants(p.ID, seed, image_size, [0])[0]),
         "question": "What is the main colour of the background?", "answer": f"colour {k}",
         "options": [f"colour {k + j}" for j in range(1, 5)]} for k, p in enumerate(world)], CLEAR_WORLD_FEATURES,
        split=real_world_split)
    configs += [("retain_perturbed", "train", "retain_perturbed/train-*"),
                ("real_faces", "train", "real_faces/train-*"), ("real_world", real_world_split, f"real_world/{real_world_split}-*")]
    _readme(root, configs, "CLEAR")
    return root


if __name__ == "__main__":  # a snapshot to try the real-data path on without the hub (docs/guide/real_models.md)
    import argparse

    parser = argparse.ArgumentParser(description="Write a tiny local snapshot of MLLMU-Bench or CLEAR in its hub "
                                                 "layout (pass it as data.path with data=mllmu_bench or data=clear).")
    parser.add_argument("benchmark", choices=("mllmu_bench", "clear"))
    parser.add_argument("path")
    parser.add_argument("--people", type=int, default=20, help="fictitious people (default 20; 60 leaves every "
                        "forget split of MLLMU-Bench's protocol a scored person beside its few-shot ones)")
    args = parser.parse_args()
    write = write_mllmu_bench_fixture if args.benchmark == "mllmu_bench" else write_clear_fixture
    print(write(args.path, num_people=args.people))
