"""The public surface of each package is its ``__all__``, and ``__all__`` is complete."""

from __future__ import annotations

import importlib
import inspect
import types

import pytest

PUBLIC_PACKAGES = [
    "interlink",
    "interlink.client",
    "interlink.core",
    "interlink.messaging",
    "interlink.resilience",
    "interlink.testing",
    "interlink.webhooks",
]


@pytest.mark.parametrize("package", PUBLIC_PACKAGES)
def test_all_lists_every_public_member_and_only_existing_ones(package: str) -> None:
    module = importlib.import_module(package)
    exported = set(module.__all__)
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    public.discard("annotations")
    assert public - exported == set(), f"public in {package} but not in __all__"
    assert exported - set(vars(module)) == set(), f"in {package}.__all__ but not defined"


@pytest.mark.parametrize("package", PUBLIC_PACKAGES)
def test_every_exported_member_is_documented(package: str) -> None:
    module = importlib.import_module(package)
    undocumented = [
        name
        for name in module.__all__
        if (inspect.isclass(getattr(module, name)) or inspect.isfunction(getattr(module, name)))
        and not (getattr(module, name).__doc__ or "").strip()
    ]
    assert undocumented == []
