"""The embedded specs' integer fields checked by key (TinyLlavaSpec, MiniSpec, WorldSpec): each spec refuses a bad
value as it is built, before the run builds anything from it (unlearn/settings.py, check_spec)."""

from __future__ import annotations

import dataclasses


def check_whole_fields(spec, key: str, lows: dict[str, int], default: int | None = 1, error=ValueError) -> None:
    """Each field of the dataclass `spec` an integer >= its bound in `lows` (else `default`; None: not checked here),
    named `<key>.<field>`."""
    for f in dataclasses.fields(spec):
        low = lows.get(f.name, default)
        value = getattr(spec, f.name)
        if low is not None and (not isinstance(value, int) or isinstance(value, bool) or value < low):
            raise error(f"{key}.{f.name}={value!r}: expected an integer >= {low}")
