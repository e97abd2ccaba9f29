"""Reading a benchmark published as a Hugging Face dataset repository: from the hub or a local copy.

One code path for both: `datasets.load_dataset(path, name=config)`. A local directory works when it is a
snapshot of the hub repository (what `hf download --repo-type dataset REPO --local-dir DIR`
writes): its README.md carries the `configs:` metadata that maps each config to its parquet files.

Rows are read in Arrow form, so images stay encoded (`{"bytes", "path"}` dicts) until a model needs them:
converting a benchmark never decodes its thousands of images.
"""

from __future__ import annotations

import io
import random
import re
from collections.abc import Iterator
from pathlib import Path

from datasets import Dataset, Features, Image, Value, load_dataset
from PIL import Image as PILImage

from unlearn.data.schema import DataError, fail, register_locator

LETTERS = "ABCD"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

# The internal eval-row layout shared by the real-benchmark loaders: the embedded benchmark's plus
#   `source_id`: the row's ID in the source dataset;
#   `Image_Index`: which of the person's images the row shows (0, 1, ...; CLEAR has one row per image, so
#     the (ID, Image_Index) pair names a row; 0 for one-image benchmarks);
#   in each Generation_Task entry, `Paraphrased_Answer` (a text) and `Perturbed_Answers` (wrong answers of
#     the same form), the inputs of truth-ratio metrics; null where the source publishes none.
_FREE = {"Question": Value("string"), "Ground_Truth": Value("string"), "Type": Value("string"),
         "attribute": Value("string")}
_GEN = {**_FREE, "Paraphrased_Answer": Value("string"), "Perturbed_Answers": [Value("string")]}


def eval_features(option_keys=LETTERS) -> Features:
    """The eval-row layout, its MC Options keyed `option_keys`: A-D, except where MLLMU-Bench's loader keeps a
    file's own keys (data.on_bad_row=score, unlearn/data/mllmu_bench.py `option_keys`)."""
    question = {"Question": Value("string"), "Options": {k: Value("string") for k in option_keys},
                "Correct_Answer": Value("string"), "attribute": Value("string")}
    return Features({
        "ID": Value("int64"), "source_id": Value("string"), "name": Value("string"), "image": Image(),
        "Image_Index": Value("int64"),
        "Classification_Task": {"Image_Textual_Questions": [question], "Pure_Text_Questions": [question]},
        "Generation_Task": [_GEN], "Mask_Task": [_FREE],
    })


EVAL_FEATURES = eval_features()
TRAIN_FEATURES = Features({
    "ID": Value("int64"), "source_id": Value("string"), "name": Value("string"), "images": [Image()],
    "qa": [{"multimodal_question": Value("string"), "text_question": Value("string"),
            "answer": Value("string"), "text_answer": Value("string")}],
})


def resolve_source(path: str, key: str, repo_id: str) -> str:
    """A local snapshot directory (made absolute) or a hub dataset id; anything else is refused.

    `key` names the config entry the value came from (`data.path`) so the error says what to change.
    """
    path = str(path)
    local = Path(path).expanduser()
    hint = (f"download it with `hf download --repo-type dataset {repo_id} --local-dir DIR` "
            f"and set {key}=DIR")
    if local.is_dir():
        return str(local.resolve())
    if local.exists():
        raise DataError(f"{key}={path!r} is a file, not a dataset directory; {hint}")
    looks_local = path.startswith(("/", ".", "~")) or "\\" in path or path.count("/") != 1
    if looks_local or not _HUB_ID.match(path):
        raise DataError(f"{key}={path!r} does not exist (neither a local directory nor a hub dataset id); {hint}")
    return path


def load_config(source: str, config: str, *, key: str, repo_id: str, cache_dir: str | Path | None,
                split: str | None = "train", columns: list[str] | None = None) -> tuple[Dataset, str]:
    """One config of the source as a Dataset, and a label naming it in error messages.

    `split=None` accepts a config with exactly one split of any name (CLEAR's real_world has been
    published both as `train` and as `test`). `columns`: read only these (parquet columns; the rest, images
    included, never enter the Arrow cache).
    """
    label = f"{config} ({source})"
    kwargs = {"cache_dir": str(datasets_cache(source, cache_dir))}
    if columns is not None:
        kwargs["columns"] = list(columns)
    try:
        dd = load_dataset(source, name=config, **kwargs)
    except Exception as err:  # every loading failure becomes one clear message naming the key to fix
        if Path(source).is_dir():  # no network involved: name the file that cannot be read, if one cannot
            bad = first_unreadable(config_files(source, config, kwargs))
            where = (f"its file {bad[0]} {bad[1]}" if bad else missing_config(Path(source), config, repo_id)
                     or f"{type(err).__name__}: {err}")
            raise DataError(f"cannot load config '{config}' from {key}={source!r}: {where}") from err
        raise DataError(
            f"cannot load config '{config}' from {key}={source!r}: {type(err).__name__}: {err}. "
            f"Without network, download the dataset first (`hf download --repo-type dataset "
            f"{repo_id} --local-dir DIR`) and set {key}=DIR") from err
    name = split if split is not None else (next(iter(dd)) if len(dd) == 1 else None)
    if name not in dd:
        expected = repr(split) if split else "exactly one split"
        raise DataError(f"config '{config}' of {key}={source!r} has splits {list(dd)}; expected {expected}")
    files = local_data_files(source, config, name, kwargs)
    check_shards(files, config, key, source)
    register_locator(label, _shard_locator(files))
    return dd[name], label


def missing_config(local: Path, config: str, repo_id: str = "REPO") -> str | None:
    """Why a local snapshot has no `config`, where its README.md says so: the file is not there (a copy of the
    parquet files alone), or its `configs:` metadata names other configs; None otherwise. `datasets` said "BuilderConfig
    'X' not found", naming neither the file nor the fix (until 2026-12-06)."""
    import yaml

    readme = local / "README.md"
    if not readme.is_file():
        return ("its README.md is not there, whose `configs:` metadata maps each config to its parquet files (a "
                f"copy of the data files alone?): download the snapshot whole with `hf download --repo-type dataset "
                f"{repo_id} --local-dir DIR`; for data of your own, write one whose front matter maps each config, "
                f"`configs: [{{config_name: {config}, data_files: [{{split: train, path: {config}/train-*}}]}}, ...]` "
                f"(docs/data_formats.md, 'A dataset of your own')")
    text = readme.read_text(encoding="utf-8", errors="replace")
    header = text.split("---", 2)[1] if text.startswith("---") and text.count("---") >= 2 else ""
    try:
        configs = (yaml.safe_load(header) or {}).get("configs") or []
        names = [c.get("config_name") for c in configs if isinstance(c, dict)]
    except (yaml.YAMLError, AttributeError):
        return None
    if config not in names:
        return f"its README.md's `configs:` metadata names {names}, not '{config}'"
    # the config is named, but its files are not there (a partial download, a folder deleted): `datasets` said
    # "At least one valid data file must be specified, all the data_files are invalid" (until the forty-sixth
    # session), naming neither the pattern nor the folder
    entry = next(c for c in configs if isinstance(c, dict) and c.get("config_name") == config)
    files = entry.get("data_files") or []
    patterns = [f.get("path") for f in files if isinstance(f, dict)] if isinstance(files, list) else []
    patterns = [q for ps in patterns for q in (ps if isinstance(ps, list) else [ps]) if isinstance(q, str)]
    if patterns and not any(_matches(local, q) for q in patterns):
        folders = sorted({q.split("/", 1)[0] for q in patterns if "/" in q})
        there = ", ".join(f"{d}/ {'holds no matching file' if (local / d).is_dir() else 'is not there'}"
                          for d in folders)
        return (f"its README.md maps '{config}' to {patterns}, which match no file ({there}): a partial download? "
                f"download the snapshot whole with `hf download --repo-type dataset {repo_id} --local-dir DIR`")
    return None


def _matches(local: Path, pattern: str) -> bool:
    """Whether `pattern` (a README's data_files path) matches a file under `local`; True where pathlib cannot tell
    (an empty or absolute pattern, which glob refuses): such a README is left to `datasets`, as before the check."""
    try:
        return next(local.glob(pattern), None) is not None
    except (ValueError, NotImplementedError):
        return True


def datasets_cache(source: str, cache_dir: str | Path | None) -> Path:
    """Where `datasets` keeps its Arrow copy of `source`: `<cache_dir>/hf_datasets` (its own default root without
    one), and for a local directory a folder of its own per state of its files.

    Why: `datasets` (5.2) keys a local directory's Arrow cache by its folder name, config and README alone, not by
    its files: a snapshot edited in place, re-downloaded, or another one whose folder has the same name was read
    from the first one's cache, silently (measured: a value changed in a parquet file read back unchanged). The
    folder here is named by a hash of the directory's path and every file's relative path, size and mtime."""
    import hashlib

    from datasets import config as datasets_config

    root = Path(cache_dir) / "hf_datasets" if cache_dir else Path(datasets_config.HF_DATASETS_CACHE)
    local = Path(source)
    if not local.is_dir():
        return root  # a hub id: `datasets` keys it by the revision it resolves
    digest = hashlib.sha256(str(local.resolve()).encode())
    _add_files_state(digest, local)
    return root / "local" / digest.hexdigest()[:16]


def snapshot_files(local: Path) -> list[Path]:
    """A local snapshot's files, sorted, without the Arrow cache `datasets` may keep inside it (`.cache/`)."""
    return sorted(f for f in local.rglob("*") if f.is_file() and ".cache" not in f.relative_to(local).parts)


def _add_files_state(digest, local: Path) -> None:
    for f in snapshot_files(local):
        stat = f.stat()
        digest.update(f"\0{f.relative_to(local).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())


def local_files_state(source) -> str | None:
    """A local snapshot's files as the cache keys read them (every file's relative path, size and mtime; not the
    directory's own path), or None for a hub id. Why: the vanilla model and its before-evaluation were keyed by
    `data.path` as a string, so a snapshot edited or re-downloaded in place was read anew (datasets_cache) but
    the model taught on its old rows, and their evaluation, were reused (until 2026-12-05)."""
    import hashlib

    local = Path(str(source)) if source else None
    if local is None or not local.is_dir():
        return None
    digest = hashlib.sha256()
    _add_files_state(digest, local)
    return digest.hexdigest()[:16]


def local_data_files(source: str, config: str, split: str, load_kwargs: dict) -> list[str] | None:
    """The files `datasets` read for a local source's split, in its order (None for a hub id), from the builder
    with the load's own cache dir."""
    if not Path(source).is_dir():
        return None
    from datasets import load_dataset_builder

    return [str(f) for f in load_dataset_builder(source, name=config, **load_kwargs).config.data_files[split]]


LFS_POINTER = b"version https://git-lfs"  # how a git-LFS pointer file begins (git-lfs spec)


def config_files(source: str, config: str, load_kwargs: dict) -> list[Path]:
    """Every data file of a local source's config (all splits), or, when even its file list cannot be built, every
    parquet file of the snapshot: the files to look at once loading the config failed."""
    from datasets import load_dataset_builder

    try:
        data_files = load_dataset_builder(source, name=config, **load_kwargs).config.data_files or {}
        return [Path(f) for files in data_files.values() for f in files]
    except Exception:
        return [f for f in snapshot_files(Path(source)) if f.suffix == ".parquet"]


def unreadable(path: Path) -> str | None:
    """Why `path` is not a readable parquet file (its footer is read, not its rows), or None.

    Why: `datasets` reports such a file as "An error occurred while generating the dataset", naming neither the
    file nor the cause, and a local snapshot cloned without git-lfs holds pointer texts in place of the data."""
    import pyarrow.parquet as pq

    try:
        with open(path, "rb") as f:
            head = f.read(len(LFS_POINTER))
    except OSError as err:
        return f"cannot be read ({err})"
    if head == LFS_POINTER:
        return ("is a git-LFS pointer, not the data (the repository was cloned without git-lfs): run `git lfs "
                "pull` in the snapshot")
    try:
        rows = pq.ParquetFile(path).metadata.num_rows
    except Exception as err:
        return (f"is not a readable parquet file ({type(err).__name__}: {err}): a truncated or partial download "
                "or copy? download the dataset again")
    if rows == 0:  # `datasets` stops at it ("BatchSize must be greater than 0" in a log line only)
        return "holds no rows (an empty shard): download the dataset again"
    return None


def first_unreadable(files: list[Path]) -> tuple[Path, str] | None:
    """The first of `files` that is not readable parquet, with why (`unreadable`); None when all are."""
    for f in files:
        if str(f).endswith(".parquet") and (why := unreadable(f)):
            return f, why
    return None


SHARD_NAME = re.compile(r"-(\d+)-of-(\d+)\.parquet$")


def check_shards(files: list[str] | None, config: str, key: str, source: str) -> None:
    """A local config whose `NAME-0000k-of-0000n.parquet` files are not all there (a partial download or copy) is
    refused naming the missing files: `datasets` loads the shards it finds, so a split would silently shrink
    (until 2026-12-05 a missing Test_Set shard dropped most test rows, reported as a forget ID without a row)."""
    groups: dict[tuple[str, int, int], set[int]] = {}  # (stem, shards, digits) -> the shard numbers there
    for name in (Path(f).name for f in files or ()):
        if m := SHARD_NAME.search(name):
            groups.setdefault((name[:m.start()], int(m.group(2)), len(m.group(2))), set()).add(int(m.group(1)))
    for (stem, total, width), present in groups.items():
        missing = sorted(set(range(total)) - present)
        if missing:
            names = [f"{stem}-{k:0{width}d}-of-{total:0{width}d}.parquet" for k in missing]
            raise DataError(f"config '{config}' of {key}={source!r}: {len(present)} of its {total} shards are "
                            f"there, {', '.join(names[:3])}{' ...' if len(names) > 3 else ''} missing (a partial "
                            "download or copy?): download the dataset again")


def _shard_locator(files: list[str] | None):
    """row i of the loaded split -> "<parquet file>, row j", from a local source's data files (`local_data_files`,
    which `datasets` concatenates in that order); the files' row counts are read only when a row is reported
    (None: not a local parquet config)."""
    shards: list[tuple[str, int]] = []  # (file name, rows), read at the first report (skip mode reports many)

    def locate(i: int) -> str | None:
        if i < 0 or not files or not all(f.endswith(".parquet") for f in files):  # i < 0: a count (BadRows.note)
            return None
        if not shards:
            import pyarrow.parquet as pq

            shards.extend((Path(f).name, pq.ParquetFile(f).metadata.num_rows) for f in files)
        for name, n in shards:
            if i < n:
                return f"{name}, row {i}"
            i -= n
        return None
    return locate


def raw_rows(ds: Dataset, batch_size: int = 64) -> Iterator[dict]:
    """Rows as plain Python objects with images still encoded (`{"bytes", "path"}`). A value whose text is not
    UTF-8 is a NotUtf8 (until 2026-12-05 a bare UnicodeDecodeError stopped the load naming no split, row or field,
    under data.on_bad_row=skip too): a field the loader reads is then a bad row by name, one it never reads (a
    biography) is harmless."""
    arrow = ds.with_format("arrow")
    for start in range(0, len(ds), batch_size):
        batch = arrow[start:start + batch_size]
        try:
            rows = batch.to_pylist()
        except UnicodeDecodeError:
            rows = [_decoded_row(batch.slice(i, 1)) for i in range(batch.num_rows)]
        yield from rows


class NotUtf8:
    """A value of a row whose text is not UTF-8: `field` names it as the field's wrong type."""

    def __init__(self, error: UnicodeDecodeError):
        self.error = error

    def __repr__(self) -> str:
        return f"NotUtf8({self.error})"


def _decoded_row(table) -> dict:
    row = {}
    for name in table.column_names:
        try:
            row[name] = table.column(name).to_pylist()[0]
        except UnicodeDecodeError as e:
            row[name] = NotUtf8(e)
    return row


def field(split: str, i: int, row: dict, name: str, kind: type | tuple[type, ...] | None = None,
          nonempty: bool = True):
    """`row[name]`, or a DataError naming split, row and field when it is missing, null, empty or mistyped."""
    if name not in row:
        fail(split, i, f"missing field '{name}'")
    value = row[name]
    if value is None:
        fail(split, i, f"field '{name}' is null")
    if isinstance(value, NotUtf8):
        fail(split, i, f"field '{name}' holds text that is not UTF-8 ({value.error.reason} at byte "
                       f"{value.error.start}: {value.error.object[max(0, value.error.start - 20):value.error.end]!r})",
             f"field '{name}' not UTF-8")
    if kind is not None and not isinstance(value, kind):
        fail(split, i, f"field '{name}' is {type(value).__name__}, expected {_kind_name(kind)}")
    if nonempty and isinstance(value, str) and not value.strip():
        fail(split, i, f"field '{name}' is empty")
    return value


def _kind_name(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def image_value(split: str, i: int, value, what: str = "image") -> dict:
    """An encoded image that PIL can open, or a DataError naming split, row and field. A column of path strings
    (a dataset written without the Image feature) is named as that: it read as a missing image (until 2026-12-06);
    so is a binary column of the encoded bytes alone (until the fifty-first session)."""
    if isinstance(value, str):
        fail(split, i, f"field '{what}' is a string ({value[:80]!r}), not an image: the loader reads images stored "
                       "with the datasets Image feature ({bytes, path}), as the hub's parquet files store them",
             f"field '{what}' is a string, not an image")
    if isinstance(value, (bytes, bytearray)):  # a binary column: read as a missing image until the 51st session
        fail(split, i, f"field '{what}' is raw bytes ({len(value)} bytes), not an image: the loader reads images "
                       "stored with the datasets Image feature, a {bytes, path} struct (pandas: a column of "
                       "{'bytes': ..., 'path': ...} dicts), as the hub's parquet files store them",
             f"field '{what}' is raw bytes, not an image")
    if value is None or not isinstance(value, dict) or not (value.get("bytes") or value.get("path")):
        fail(split, i, f"missing image in field '{what}'")
    if value.get("bytes"):
        try:
            with PILImage.open(io.BytesIO(value["bytes"])) as im:
                im.verify()
        except Exception as err:
            fail(split, i, f"field '{what}' is not a readable image ({type(err).__name__}: {err})",
                 f"field '{what}' is not a readable image")
        return {"bytes": value["bytes"], "path": None}
    if not Path(value["path"]).is_file():
        fail(split, i, f"field '{what}' points to a missing file {value['path']!r}",
             f"field '{what}' points to a missing file")
    return {"bytes": None, "path": value["path"]}


def lettered(correct: str, distractors: list[str], rng: random.Random) -> tuple[dict, str]:
    """Four options A-D (the correct one at a seeded position) and the correct letter."""
    opts = list(distractors[:3])
    pos = rng.randrange(4)
    opts.insert(pos, correct)
    return dict(zip(LETTERS, opts)), LETTERS[pos]


def to_dataset(rows: list[dict], features: Features) -> Dataset:
    """Rows in `features`' layout; an eval row without `Image_Index` shows image 0 (nested optional fields
    that a row leaves out become null)."""
    if "Image_Index" in features:
        rows = [{"Image_Index": 0, **r} for r in rows]
    return Dataset.from_list(rows, features=features)
