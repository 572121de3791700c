"""The engine's shape: no import circles among its modules, no reaching into another
module's private names.

Both rules are read from the source with ``ast`` (nothing is imported), so a circle that
happens to import fine today, or a private name that a refactor would silently break,
fails here first. Each check is also run on a small synthetic package to show it can fail.
"""

from __future__ import annotations

import ast
import graphlib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "dashboard" / "engine"
# Instance names whose underscore attributes are the class's own business.
OWN = {"self", "cls"}
# Underscore names that are documented public API (os._exit; namedtuple's methods).
DOCUMENTED = {"_exit", "_replace", "_asdict", "_fields", "_make"}


@dataclass(frozen=True)
class Module:
    """One source file: its dotted name and its parsed tree."""

    name: str
    is_package: bool
    tree: ast.Module


def load(top: Path, package: str) -> dict[str, Module]:
    """Every module under ``top``, which is importable as ``package``."""
    modules = {}
    for path in sorted(top.rglob("*.py")):
        parts = path.relative_to(top).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        dotted = ".".join((package, *(parts[:-1] if is_package else parts)))
        modules[dotted] = Module(dotted, is_package, ast.parse(path.read_text(), str(path)))
    return modules


def resolve(module: Module, node: ast.ImportFrom) -> str:
    """The absolute name an ``import from`` names (relative imports included)."""
    if not node.level:
        return node.module or ""
    base = module.name.split(".")
    base = base[: len(base) - node.level + (1 if module.is_package else 0)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imported(module: Module, modules: dict[str, Module]) -> set[str]:
    """Known modules that importing ``module`` runs, parent packages included."""
    reached: set[str] = set()  # modules imported, which runs their parents first
    named: set[str] = set()  # modules a name (not a submodule) is taken from
    # Every import counts, also one inside a function or under ``if TYPE_CHECKING``: a
    # circle that only shows late, or only to the type checker, is one for the reader.
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            reached.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = resolve(module, node)
            reached.add(source)
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                if submodule in modules:
                    reached.add(submodule)
                else:
                    named.add(source)
    # A package this module is inside is already being imported: importing it again
    # is no step, but taking a name from it needs its __init__ to have got that far.
    own_parents = set(parents(module.name))
    found = {name for name in named if name in modules}
    for target in reached:
        chain = [*parents(target), target]
        found.update(name for name in chain if name in modules and name not in own_parents)
    found.discard(module.name)
    return found


def parents(dotted: str) -> list[str]:
    """``a.b.c`` -> ``[a, a.b]``."""
    parts = dotted.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_circle(modules: dict[str, Module]) -> list[str] | None:
    """One import circle among ``modules`` (as a path back to its start), or None."""
    graph = {name: imported(module, modules) for name, module in modules.items()}
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        return list(error.args[1])
    return None


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def defined_names(tree: ast.Module) -> set[str]:
    """Every name the module itself defines: functions, classes, attributes, variables."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return names


def private_reaches(module: Module, package: str, elsewhere: set[str]) -> list[str]:
    """Places where ``module`` uses an underscore name that another module defines.

    ``other._name`` is the module's own business only when ``_name`` is defined here and
    in no other module (``elsewhere``): the engine's ``_set_state`` called from a module
    that has a ``_set_state`` of its own is still the engine's.
    """
    own = defined_names(module.tree) - elsewhere
    found = []
    for node in ast.walk(module.tree):
        if isinstance(node, ast.ImportFrom) and resolve(module, node).startswith(package):
            found += [
                f"{module.name}:{node.lineno} imports {alias.name} from {resolve(module, node)}"
                for alias in node.names
                if is_private(alias.name)
            ]
        elif (
            isinstance(node, ast.Attribute)
            and is_private(node.attr)
            and node.attr not in own | DOCUMENTED
            and not (isinstance(node.value, ast.Name) and node.value.id in OWN)
        ):
            found.append(f"{module.name}:{node.lineno} uses .{node.attr}")
    return found


def all_private_reaches(modules: dict[str, Module], package: str) -> list[str]:
    """Every use of another module's underscore names in ``modules``."""
    defined = {name: defined_names(module.tree) for name, module in modules.items()}
    found = []
    for name, module in modules.items():
        elsewhere = set().union(*(names for other, names in defined.items() if other != name))
        found += private_reaches(module, package, elsewhere)
    return found


# -- the engine -----------------------------------------------------------------------


def test_the_engine_has_no_import_circle() -> None:
    modules = load(ENGINE, "dashboard.engine")
    assert len(modules) > 20  # the walk found the engine, not an empty directory
    assert import_circle(modules) is None


# Private helpers the toolbox modules still share with each other (that code was being
# extended while this check was written). The list may only shrink: a new reach fails,
# and so does one listed here that is gone (then drop it from the list).
TOOLBOX_SHARED = {
    "git imports _engine from toolbox",
    "git imports _sandbox from toolbox",
    "toolbox_interpreter imports _deny from toolbox_process",
    "toolbox_interpreter imports _engine from toolbox_process",
    "toolbox_interpreter imports _hub from toolbox_process",
    "toolbox_interpreter imports _record from toolbox_process",
    "toolbox_interpreter imports _request_hub from toolbox_process",
}


def test_no_engine_module_uses_another_modules_private_names() -> None:
    reaches = all_private_reaches(load(ENGINE, "dashboard.engine"), "dashboard.engine")
    found = {without_line(reach) for reach in reaches}
    assert found - TOOLBOX_SHARED == set()
    present = {reach for reach in TOOLBOX_SHARED if (ENGINE / f"{reach.split()[0]}.py").exists()}
    assert present - found == set()


def without_line(reach: str) -> str:
    """``dashboard.engine.mod:12 uses ._x`` -> ``mod uses ._x`` (lines move with edits)."""
    place, what = reach.replace("dashboard.engine.", "").split(" ", 1)
    return f"{place.split(':')[0]} {what}"


# -- the checks can fail ------------------------------------------------------------


def write(top: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = top / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.mark.parametrize(
    "files",
    [
        pytest.param({"a.py": "from pkg import b\n", "b.py": "import pkg.a\n"}, id="direct"),
        pytest.param(
            {
                "a.py": (
                    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import B\n"
                ),
                "b.py": "from pkg.a import A\n",
            },
            id="type-checking-only",
        ),
        pytest.param(
            {
                "sub/__init__.py": "from pkg.sub.big import Big\n",
                "sub/big.py": "from pkg.image import Image\n",
                "sub/consts.py": "",
                "image.py": "from pkg.sub import consts\n",
            },
            id="through-a-package-init",
        ),
        pytest.param({"a.py": "from . import b\n", "b.py": "from .a import x\n"}, id="relative"),
        pytest.param(
            {"a.py": "def late():\n    from pkg import b\n", "b.py": "import pkg.a\n"},
            id="inside-a-function",
        ),
    ],
)
def test_the_circle_check_finds_a_circle(tmp_path: Path, files: dict[str, str]) -> None:
    write(tmp_path, {"__init__.py": "", **files})
    circle = import_circle(load(tmp_path, "pkg"))
    assert circle is not None
    assert circle[0] == circle[-1]


def test_the_circle_check_lets_a_packages_modules_import_each_other(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "from pkg.sub import consts\n",
            "sub/__init__.py": "from pkg.sub.inner import Inner\n",
            "sub/inner.py": "from pkg.sub import consts\n",
            "sub/consts.py": "",
        },
    )
    assert import_circle(load(tmp_path, "pkg")) is None


def test_the_private_check_finds_an_imported_private_name(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"__init__.py": "", "a.py": "def _helper(): ...\n", "b.py": "from pkg.a import _helper\n"},
    )
    assert all_private_reaches(load(tmp_path, "pkg"), "pkg") == [
        "pkg.b:1 imports _helper from pkg.a"
    ]


def test_the_private_check_finds_a_private_method_called_on_another_object(
    tmp_path: Path,
) -> None:
    write(
        tmp_path,
        {
            "__init__.py": "",
            "engine.py": "class Engine:\n    def _set_state(self):\n        self._set_state()\n",
            "user.py": "def go(engine):\n    engine._set_state()\n",
        },
    )
    assert all_private_reaches(load(tmp_path, "pkg"), "pkg") == ["pkg.user:2 uses ._set_state"]


def test_the_private_check_finds_a_private_method_of_the_same_name_as_a_local_one(
    tmp_path: Path,
) -> None:
    write(
        tmp_path,
        {
            "__init__.py": "",
            "engine.py": "class Engine:\n    def _set_state(self): ...\n",
            "snapshots.py": (
                "class Snapshots:\n    def _set_state(self): ...\n\n"
                "    def capture(self, engine):\n        engine._set_state()\n"
            ),
        },
    )
    assert all_private_reaches(load(tmp_path, "pkg"), "pkg") == ["pkg.snapshots:5 uses ._set_state"]


def test_the_private_check_allows_a_modules_own_private_names(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": (
                "class Spare:\n    def _discard(self): ...\n\n"
                "def use(spare: Spare):\n    spare._discard()\n    _local()\n\n"
                "def _local(): ...\n"
            ),
        },
    )
    assert all_private_reaches(load(tmp_path, "pkg"), "pkg") == []
