"""Every source file compiles without a warning: an invalid escape such as "\\(" in a plain string is a
DeprecationWarning on 3.11 (silent here), a SyntaxWarning printed on every run under 3.12 (seen on the lent GPU
machine, unlearn/runtime.py) and an error in a later Python."""

import warnings
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_no_source_file_warns_when_compiled():
    files = [ROOT / "train.py", *(p for d in ("unlearn", "callbacks", "bench", "tests") for p in (ROOT / d).rglob("*.py"))]
    assert len(files) > 50
    warned = []
    for path in files:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            compile(path.read_text(), str(path), "exec")
        warned += [f"{path.relative_to(ROOT)}: {w.message}" for w in caught]
    assert warned == []
