"""Every ``>>>`` example in fastnn's docstrings runs and prints what it shows."""
from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import fastnn
from fastnn import config

MODULES = ["fastnn"] + sorted(
    m.name for m in pkgutil.walk_packages(fastnn.__path__, "fastnn.")
    if m.name != "fastnn.__main__")


# Examples that call the compiled backend by name.
NEEDS_COMPILED = {"fastnn.backends", "fastnn.backends.fast"}


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    if name in NEEDS_COMPILED and not config.fast_available():
        pytest.skip("the compiled kernels are not built")
    module = importlib.import_module(name)
    monkeypatch.chdir(tmp_path)  # examples that save files write them here
    # (settings an example changes, such as floatx, are restored by conftest's fixture)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS,
                             report=True, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"
