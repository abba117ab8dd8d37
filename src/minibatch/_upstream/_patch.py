"""One way to apply a workaround: wrap an attribute once, and remember that it was wrapped."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def patch(owner: Any, name: str, make: Callable[[Any], Any]) -> None:
    """Replace ``owner.name`` by ``make(current)``, unless ``make`` was applied to it already."""
    current = getattr(owner, name)
    tag = f"{make.__module__}.{make.__qualname__}"
    applied = getattr(current, "__minibatch_patches__", ())
    if tag in applied:
        return
    new = make(current)
    new.__minibatch_patches__ = (*applied, tag)
    setattr(owner, name, new)
