"""The examples in the docstrings of the pure modules run, and say what the code does."""

import doctest
import importlib
import pkgutil

import pytest

import weatherstream.core

MODULES = sorted(m.name for m in pkgutil.walk_packages(weatherstream.core.__path__, "weatherstream.core."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples of {name} fail"
