"""Fitting a model that from_pretrained left in eval mode, as the methods do."""

import warnings


def eval_mode_warnings(fit) -> list[str]:
    """Run `fit()` and return what Lightning warned about modules in eval mode."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit()
    return [str(w.message) for w in caught if "eval mode" in str(w.message)]
