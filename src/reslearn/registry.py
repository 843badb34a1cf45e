"""The one shape of reslearn's registries (recipes, studies, data sets, test views, export
formats, schedules): a dict of name -> entry where adding a taken name and asking for an
unknown one are errors that name the value and the choices."""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(dict[str, T], Generic[T]):
    def __init__(self, kind: str, *entries: T, reserved: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.kind, self.reserved = kind, reserved  # kind: "recipe"; reserved: names a config means
        for entry in entries:
            self.add(entry)

    def add(self, entry: T, name: str | None = None, *, replace: bool = False) -> T:
        """Register ``entry`` under ``name`` (default: its ``.name``); returns it."""
        name = name or entry.name
        if not replace and (name in self or name in self.reserved):
            raise ValueError(f"a {self.kind} named {name!r} is registered already")
        self[name] = entry
        return entry

    def lookup(self, name: str) -> T:
        if name not in self:
            extra = "".join(f" (or {r})" for r in self.reserved)
            raise ValueError(f"unknown {self.kind} {name!r}; registered: {', '.join(self)}{extra}")
        return self[name]
