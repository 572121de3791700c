"""Which way the imports run inside dashboard/.

core and daytona at the bottom, feature apps above them, the engine apart. These
tests read every module's imports (the syntax tree, so imports inside functions and
`from dashboard import daytona` count too) and fail on a circle between packages, on
the engine importing the dashboard, and on the Daytona client importing one of our
Django apps or Django's auth. Each check is also fed a made-up graph to show it fails.
"""

import ast
import graphlib
import itertools
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "dashboard"
ENGINE = "dashboard.engine"
CLIENT = "dashboard.daytona"
# The root modules (settings, urls, asgi, routing) are one node: the top that wires all.
TOP = "dashboard"
# What the client may not know: our Django apps (anything under dashboard/ but itself)
# and Django's users.
CLIENT_FORBIDDEN_OUTSIDE = ("django.contrib.auth",)
# Bottom to top; a package imports only from layers below its own. The engine stands
# apart: nothing imports it and it imports nothing of ours.
LAYERS = (
    ("dashboard.daytona",),
    ("dashboard.core",),
    ("dashboard.audit",),
    ("dashboard.accounts",),
    ("dashboard.connections",),
    ("dashboard.sandboxes", "dashboard.snapshots", "dashboard.volumes", "dashboard.limits"),
    ("dashboard.terminal",),
    (TOP,),
)


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, dotted
    target: str  # the imported module, dotted, as precise as the statement says
    where: str  # path:line, for the failure message


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(dotted: str) -> bool:
    """Whether the dotted name is one of our files or packages (not a name inside one)."""
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_in(
    source: str, module: str, *, is_package: bool, where: str = "<source>"
) -> Iterator[Import]:
    """Every import statement in the source, wherever it stands (functions included)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, f"{where}:{node.lineno}")
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, is_package=is_package)
            for alias in node.names:
                # `from dashboard import daytona` imports the package daytona, not dashboard.
                candidate = f"{base}.{alias.name}"
                target = candidate if is_module(candidate) else base
                yield Import(module, target, f"{where}:{node.lineno}")


def _absolute(node: ast.ImportFrom, module: str, *, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".")
    if not is_package:
        package = package[:-1]
    package = package[: len(package) - (node.level - 1)]
    return ".".join([*package, node.module] if node.module else package)


def dashboard_imports() -> list[Import]:
    found = []
    for path in sorted(DASHBOARD.rglob("*.py")):
        module = module_name(path)
        where = str(path.relative_to(ROOT))
        found += imports_in(
            path.read_text(), module, is_package=path.name == "__init__.py", where=where
        )
    return found


def package_of(module: str) -> str | None:
    """dashboard.<app>.anything -> dashboard.<app>; the root modules -> TOP; else None."""
    parts = module.split(".")
    if parts[0] != "dashboard":
        return None
    if len(parts) > 1 and (DASHBOARD / parts[1] / "__init__.py").is_file():
        return f"dashboard.{parts[1]}"
    return TOP


Graph = dict[str, dict[str, list[str]]]


def package_graph(imports: Iterable[Import]) -> Graph:
    """Package -> package it imports -> where; a package importing itself is no arrow."""
    graph: Graph = defaultdict(lambda: defaultdict(list))
    for imp in imports:
        source, target = package_of(imp.source), package_of(imp.target)
        if source and target and source != target:
            graph[source][target].append(f"{imp.where} imports {imp.target}")
    return graph


def circle_in(graph: Graph) -> str | None:
    """One circle between packages, spelled out with the imports that make it, or None."""
    try:
        graphlib.TopologicalSorter({node: set(arrows) for node, arrows in graph.items()}).prepare()
    except graphlib.CycleError as error:
        # CycleError lists the circle backwards (each node depends on the next).
        nodes = list(reversed(error.args[1]))
        steps = [f"{a} → {b} ({graph[a][b][0]})" for a, b in itertools.pairwise(nodes)]
        return " → ".join(nodes) + "\n  " + "\n  ".join(steps)
    return None


def engine_leaks(imports: Iterable[Import]) -> list[str]:
    """Imports from the engine into the rest of the dashboard."""
    return [
        f"{imp.where} imports {imp.target}"
        for imp in imports
        if package_of(imp.source) == ENGINE and package_of(imp.target) not in (None, ENGINE)
    ]


def client_leaks(imports: Iterable[Import]) -> list[str]:
    """Imports from the Daytona client of our Django apps (or anything else of the
    dashboard's) or of Django's auth."""
    leaks = []
    for imp in imports:
        if package_of(imp.source) != CLIENT:
            continue
        ours = package_of(imp.target) not in (None, CLIENT)
        auth = any(
            imp.target == name or imp.target.startswith(name + ".")
            for name in CLIENT_FORBIDDEN_OUTSIDE
        )
        if ours or auth:
            leaks.append(f"{imp.where} imports {imp.target}")
    return leaks


def upward_arrows(graph: Graph, layers: tuple[tuple[str, ...], ...] = LAYERS) -> list[str]:
    """Arrows that point to the same layer or up, and packages no layer names."""
    rank = {package: n for n, layer in enumerate(layers) for package in layer}
    problems = []
    for source, targets in sorted(graph.items()):
        for target, where in sorted(targets.items()):
            if source == ENGINE or target == ENGINE:
                continue  # engine_leaks judges the engine's own imports
            if source not in rank or target not in rank:
                unknown = source if source not in rank else target
                problems.append(f"{unknown} is in no layer: place it in LAYERS")
            elif rank[target] >= rank[source]:
                problems.append(f"{source} → {target} points up ({where[0]})")
    return problems


# -- the dashboard as it is ---------------------------------------------------------------


def test_no_package_of_the_dashboard_imports_another_in_a_circle():
    circle = circle_in(package_graph(dashboard_imports()))
    assert circle is None, f"import circle between packages: {circle}"


def test_the_engine_imports_nothing_from_the_rest_of_the_dashboard():
    assert engine_leaks(dashboard_imports()) == []


def test_the_daytona_client_imports_no_app_of_ours_and_not_django_auth():
    assert client_leaks(dashboard_imports()) == []


def test_every_arrow_points_down_the_layers():
    assert upward_arrows(package_graph(dashboard_imports())) == []


def test_nothing_imports_the_engine():
    graph = package_graph(dashboard_imports())
    assert [source for source, targets in graph.items() if ENGINE in targets] == []


def test_core_imports_no_feature_app():
    below = {"dashboard.core", CLIENT}
    reached = set(package_graph(dashboard_imports())["dashboard.core"])
    assert reached <= below, f"core imports {sorted(reached - below)}"


def test_the_walk_sees_the_apps_it_must_judge():
    # A walk that found nothing would pass every check above.
    graph = package_graph(dashboard_imports())
    assert {"dashboard.accounts", "dashboard.audit", "dashboard.core"} <= set(graph)
    assert CLIENT in graph["dashboard.sandboxes"]


# -- each check can fail ------------------------------------------------------------------


def _imports(*pairs: tuple[str, str]) -> list[Import]:
    return [Import(source, target, f"made-up.py:{n}") for n, (source, target) in enumerate(pairs)]


def test_a_circle_through_three_packages_is_named_in_order():
    graph = package_graph(
        _imports(
            ("dashboard.accounts.views", "dashboard.audit.trail"),
            ("dashboard.audit.trail", "dashboard.core.http"),
            ("dashboard.core.http", "dashboard.accounts.access"),
            ("dashboard.sandboxes.views", "dashboard.core.http"),
        )
    )
    circle = circle_in(graph)
    assert circle is not None
    names = circle.splitlines()[0].split(" → ")
    assert names[0] == names[-1]
    assert sorted(names[:-1]) == ["dashboard.accounts", "dashboard.audit", "dashboard.core"]
    assert "made-up.py:2 imports dashboard.accounts.access" in circle


def test_arrows_that_run_one_way_are_no_circle():
    graph = package_graph(
        _imports(
            ("dashboard.sandboxes.views", "dashboard.accounts.access"),
            ("dashboard.accounts.access", "dashboard.core.http"),
            ("dashboard.sandboxes.views", "dashboard.core.http"),
            ("dashboard.accounts.views", "dashboard.accounts.access"),
        )
    )
    assert circle_in(graph) is None


def test_an_arrow_up_or_sideways_and_an_unplaced_package_are_caught():
    graph = package_graph(
        _imports(
            ("dashboard.audit.views", "dashboard.accounts.access"),
            ("dashboard.snapshots.views", "dashboard.volumes.views"),
            ("dashboard.limits.views", "dashboard.core.http"),
            ("dashboard.terminal.base", "dashboard.sandboxes.live"),
        )
    )
    without_limits = tuple(tuple(p for p in layer if p != "dashboard.limits") for layer in LAYERS)
    assert upward_arrows(graph, without_limits) == [
        "dashboard.audit → dashboard.accounts points up (made-up.py:0 imports "
        "dashboard.accounts.access)",
        "dashboard.limits is in no layer: place it in LAYERS",
        "dashboard.snapshots → dashboard.volumes points up (made-up.py:1 imports "
        "dashboard.volumes.views)",
    ]


def test_an_engine_import_of_the_dashboard_is_caught_and_one_of_itself_is_not():
    leaks = engine_leaks(
        _imports(
            ("dashboard.engine.api", "dashboard.engine.lifecycle"),
            ("dashboard.engine.api", "dashboard.daytona.models"),
            ("dashboard.engine.api", "httpx"),
        )
    )
    assert leaks == ["made-up.py:1 imports dashboard.daytona.models"]


def test_a_client_import_of_an_app_or_of_django_auth_is_caught():
    leaks = client_leaks(
        _imports(
            ("dashboard.daytona.models", "dashboard.accounts.access"),
            ("dashboard.daytona.client", "django.contrib.auth.models"),
            ("dashboard.daytona.client", "django.conf"),
            ("dashboard.daytona.models", "dashboard.daytona.labels"),
            ("dashboard.daytona.client", "django.contrib.authx"),
        )
    )
    assert leaks == [
        "made-up.py:0 imports dashboard.accounts.access",
        "made-up.py:1 imports django.contrib.auth.models",
    ]


def test_the_walk_finds_imports_inside_functions_relative_ones_and_from_dashboard():
    source = (
        "from dashboard import daytona\n"
        "def later():\n"
        "    from dashboard.accounts.access import sandbox_access\n"
        "    import dashboard.audit.trail\n"
        "from .models import Sandbox\n"
        "from . import client\n"
    )
    found = [imp.target for imp in imports_in(source, "dashboard.daytona.x", is_package=False)]
    assert sorted(found) == [
        "dashboard.accounts.access",
        "dashboard.audit.trail",
        "dashboard.daytona",
        "dashboard.daytona.client",
        "dashboard.daytona.models",
    ]
    assert len(client_leaks(imports_in(source, "dashboard.daytona.x", is_package=False))) == 2
