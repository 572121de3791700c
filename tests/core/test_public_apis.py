"""Sandbar uses only the public API of its dependencies.

A private hook of Django or Channels changes without notice in any release. Two
scans keep them out of dashboard/: no class built on a Django or Channels class
redefines one of its underscore names, and no code reads or writes an underscore
attribute it did not define itself. A private hook truly worth its speed would
live in the one fenced module, FENCED, with a test pinned to the dependency's
version (tests/core/test_django_private.py).
"""

import ast
import enum
import importlib
import inspect
import pkgutil
from pathlib import Path

import dashboard

ROOT = Path(dashboard.__file__).resolve().parent
FENCED = "core/django_private.py"
# Underscore names their owners document as public: Django's Model._meta API and
# Model._state ("Model instance reference"), Python's os._exit.
DOCUMENTED = {"_meta", "_state", "_exit"}
DEPENDENCIES = ("django.", "channels.")
# Python's own protocol (and ASGI's, for `__call__`): overriding these, and calling
# the base's through super(), is what subclassing is for.
DATA_MODEL = {
    "__init__",
    "__call__",
    "__str__",
    "__repr__",
    "__eq__",
    "__hash__",
    "__init_subclass__",
}
# Set by Python on every class, not written by us.
AUTOMATIC = {
    "__module__",
    "__qualname__",
    "__doc__",
    "__dict__",
    "__weakref__",
    "__annotations__",
    "__firstlineno__",
    "__static_attributes__",
    "__type_params__",
    "__parameters__",
    "__orig_bases__",
    "__slots__",
    "__abstractmethods__",
    "_abc_impl",
}
ATTRIBUTE_CALLS = {"getattr", "setattr", "hasattr", "delattr"}


def sources() -> list[Path]:
    return [path for path in sorted(ROOT.rglob("*.py")) if "migrations" not in path.parts]


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def dashboard_classes() -> list[type]:
    found = []
    importlib.import_module("dashboard.urls")  # registers the URL converters the apps use
    for module in pkgutil.walk_packages(dashboard.__path__, "dashboard."):
        if module.name.startswith("dashboard.engine") or ".migrations" in module.name:
            continue  # the engine knows nothing of Django or Channels
        loaded = importlib.import_module(module.name)
        if loaded.__file__ and relative(Path(loaded.__file__)) == FENCED:
            continue
        found += [
            cls
            for _, cls in inspect.getmembers(loaded, inspect.isclass)
            # An enum's underscore names are made by its metaclass, not written here.
            if cls.__module__ == loaded.__name__ and not issubclass(cls, enum.Enum)
        ]
    return found


def overridden_private_names(cls: type) -> list[str]:
    """The underscore names `cls` defines that a Django or Channels base also has."""
    bases = [base for base in cls.__mro__[1:] if base.__module__.startswith(DEPENDENCIES)]
    names = set(vars(cls)) - DATA_MODEL - AUTOMATIC - DOCUMENTED
    return sorted(
        f"{cls.__module__}.{cls.__qualname__}.{name}"
        for name in names
        if name.startswith("_") and any(name in vars(base) for base in bases)
    )


def own_names(trees: dict[Path, ast.Module]) -> set[str]:
    """Every underscore name dashboard/ defines: functions, classes, module and class
    variables, and attributes it sets on `self` or `cls`."""
    names = set()
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.ctx, ast.Store)
                and isinstance(node.value, ast.Name)
                and node.value.id in {"self", "cls"}
            ):
                names.add(node.attr)
            elif isinstance(node, ast.alias):
                names.add(node.asname or node.name.split(".")[0])
    return {name for name in names if name.startswith("_")}


def private_uses(path: Path, tree: ast.Module, own: set[str]) -> list[str]:
    """Where `path` touches an underscore attribute or imports an underscore name that
    is not dashboard/'s own."""
    found = []

    def foreign(name: str) -> bool:
        return name.startswith("_") and not name.startswith("__") and name not in own | DOCUMENTED

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and foreign(node.attr):
            found.append(f"{relative(path)}:{node.lineno} .{node.attr}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ATTRIBUTE_CALLS
            and len(node.args) > 1
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and foreign(node.args[1].value)
        ):
            found.append(f"{relative(path)}:{node.lineno} {node.func.id} {node.args[1].value}")
        elif isinstance(node, ast.ImportFrom) and not (node.module or "").startswith("dashboard"):
            found += [
                f"{relative(path)}:{node.lineno} import {alias.name}"
                for alias in node.names
                if alias.name.startswith("_") and not alias.name.startswith("__")
            ]
    return sorted(found, key=lambda use: int(use.split(":")[1].split()[0]))


def test_no_class_redefines_a_private_name_of_a_django_or_channels_class() -> None:
    found = [name for cls in dashboard_classes() for name in overridden_private_names(cls)]
    assert found == [], "use the public API, or move it to the fenced module"


def test_no_code_touches_a_private_attribute_of_a_dependency() -> None:
    trees = {path: ast.parse(path.read_text(), str(path)) for path in sources()}
    own = own_names({path: tree for path, tree in trees.items() if relative(path) != FENCED})
    found = [
        use
        for path, tree in trees.items()
        if relative(path) != FENCED
        for use in private_uses(path, tree, own)
    ]
    assert found == [], "use the public API, or move it to the fenced module"


class _Base:
    def _hook(self) -> None: ...


def test_the_scans_find_what_they_look_for() -> None:
    # The checks above must be able to fail: each is shown one case it must catch.
    from django.utils.deprecation import MiddlewareMixin

    class Inline(MiddlewareMixin):
        async def __acall__(self, request): ...

    assert overridden_private_names(Inline) == [f"{__name__}.{Inline.__qualname__}.__acall__"]
    code = ast.parse(
        "request._acached_user = 1\n"
        "hasattr(request, '_cached_user')\n"
        "from django.utils.deprecation import _private\n"
        "self._mine = 2\n"
        "self._mine\n"
    )
    uses = private_uses(ROOT / "x.py", code, own_names({ROOT / "y.py": ast.parse("")}) | {"_mine"})
    assert uses == [
        "x.py:1 ._acached_user",
        "x.py:2 hasattr _cached_user",
        "x.py:3 import _private",
    ]
