"""Bench2Drive route files: read a routes XML (or a folder of them), pick routes, write one file per route.

A per-route file keeps the user's XML prolog and `<routes>` start tag and the `<route>` element byte for
byte, so the leaderboard's route_parser (ElementTree: `tree.iter("route")`, `waypoints/position`,
`scenarios/scenario`, `weathers`) reads it exactly as it reads the original (reference §2.2).
The user's files are only read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional
from xml.parsers import expat

from simdoctor.config.recipe import ConfigError
from simdoctor.system import atomic

# Route ids become file names (<out>/routes/<id>.xml); Bench2Drive's are numbers.
ROUTE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


@dataclass(frozen=True)
class Route:
    """What the plan and the report need to know about one route."""

    id: str
    town: str
    scenario_types: list[str]  # in file order; Bench2Drive routes have exactly one
    source: str  # the file it was read from

    @property
    def scenario_type(self) -> Optional[str]:
        """The type Bench2Drive's ability tool groups by: the first scenario's."""
        return self.scenario_types[0] if self.scenario_types else None


@dataclass(frozen=True)
class RouteText:
    """A route with the exact bytes to write it on its own."""

    route: Route
    head: bytes  # the source file up to its first <route>: prolog and <routes ...> start tag
    element: bytes  # the <route ...>...</route> element as in the source
    root: str  # the root element's name, to close the per-route file

    def document(self) -> bytes:
        return self.head + self.element + f"\n</{self.root}>\n".encode()


def _natural(path: Path) -> list:
    """bench2drive_2.xml before bench2drive_10.xml."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _parse(data: bytes, source: str) -> list[RouteText]:
    """Find each top-level <route> element's byte span with expat, and what the plan needs from it."""
    parser = expat.ParserCreate()
    stack: list[str] = []
    spans: list[tuple[int, int, dict[str, str], list[str], set[str]]] = []
    current: Optional[dict] = None
    root_name: list[str] = []

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal current
        if not stack:
            root_name.append(name)
        elif len(stack) == 1 and name == "route":
            current = {"start": parser.CurrentByteIndex, "attrs": attrs, "scenarios": [], "children": set()}
        elif current is not None:
            if len(stack) == 2:
                current["children"].add(name)
            if name == "scenario" and stack[-1] == "scenarios" and len(stack) == 3:
                current["scenarios"].append(attrs.get("type") or attrs.get("name") or "")
        stack.append(name)

    def end(name: str) -> None:
        nonlocal current
        stack.pop()
        if len(stack) == 1 and name == "route" and current is not None:
            end_at = parser.CurrentByteIndex
            # <route .../> ends where it starts (and has no waypoints); else end_at is at "</route>".
            close = end_at if end_at == current["start"] else data.index(b">", end_at) + 1
            spans.append((current["start"], close, current["attrs"], current["scenarios"], current["children"]))
            current = None

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise ConfigError(f"routes file {source} is not valid XML: {exc}") from None
    if not root_name or root_name[0] != "routes":
        found = f"<{root_name[0]}>" if root_name else "nothing"
        raise ConfigError(f"{source} is not a routes file: its root element is {found}, not <routes>")
    if not spans:
        return []
    head = data[: spans[0][0]]
    routes = []
    for begin, close, attrs, scenarios, children in spans:
        route_id = attrs.get("id", "")
        where = f"route {route_id or '(no id)'} in {source}"
        if not ROUTE_ID.fullmatch(route_id):
            raise ConfigError(f"{where}: the id must be letters, digits, '_', '.' or '-' (it names files)")
        if not attrs.get("town"):
            raise ConfigError(f"{where} has no town attribute")
        missing = [c for c in ("waypoints", "scenarios") if c not in children]
        if missing:
            raise ConfigError(f"{where} has no <{'>, <'.join(missing)}>: the leaderboard cannot run it")
        if not scenarios:
            raise ConfigError(f"{where} has no <scenario>: the evaluator names the route after its first one")
        route = Route(route_id, attrs["town"], scenarios, source)
        routes.append(RouteText(route, head, data[begin:close], root_name[0]))
    return routes


def read_file(path: Path) -> list[RouteText]:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read routes file {path}: {exc.strerror}") from None
    return _parse(data, str(path))


def read_routes(path: Path) -> list[RouteText]:
    """Every route of a routes XML, or of each *.xml in a folder (in natural name order)."""
    path = Path(path).expanduser()
    if path.is_dir():
        files = sorted(path.glob("*.xml"), key=_natural)
        if not files:
            raise ConfigError(f"{path} holds no .xml routes files")
    elif path.is_file():
        files = [path]
    else:
        raise ConfigError(f"routes {path} does not exist (pass --routes FILE|DIR)")
    routes: list[RouteText] = []
    seen: dict[str, str] = {}
    for file in files:
        for text in read_file(file):
            if text.route.id in seen:
                first = seen[text.route.id]
                raise ConfigError(f"route id {text.route.id} appears twice ({first} and {text.route.source})")
            seen[text.route.id] = text.route.source
            routes.append(text)
    if not routes:
        raise ConfigError(f"{path} holds no <route> elements")
    return routes


def select(routes: list[RouteText], spec: str) -> list[RouteText]:
    """Routes named by `spec`: ids and `A-B` ranges, comma-separated, as the leaderboard's --routes-subset
    (a range runs from A to B in file order). The result keeps file order; empty spec: all routes."""
    if not spec.strip():
        return list(routes)
    if not spec.replace(",", "").strip():
        raise ConfigError(f"--route-ids {spec!r} names no route: give ids or A-B ranges, comma-separated, "
                          "or leave it out for every route")  # fmt: skip
    order = [r.route.id for r in routes]
    index = {route_id: i for i, route_id in enumerate(order)}
    wanted: set[int] = set()
    for token in (t.strip() for t in spec.split(",")):
        if not token:
            continue
        if token in index:
            wanted.add(index[token])
            continue
        first, sep, last = token.partition("-")
        if sep and first in index and last in index:
            if index[first] > index[last]:
                raise ConfigError(f"--route-ids {token}: route {last} comes before route {first} in the routes file")
            wanted.update(range(index[first], index[last] + 1))
            continue
        sample = ", ".join(order[:5]) + (", ..." if len(order) > 5 else "")
        raise ConfigError(f"--route-ids: no route {token!r} in the routes (ids: {sample})")
    return [routes[i] for i in sorted(wanted)]


def route_file(routes_dir: Path, route_id: str) -> Path:
    return Path(routes_dir) / f"{route_id}.xml"


def changed(routes: list[RouteText], routes_dir: Path) -> list[RouteText]:
    """Routes whose file under routes_dir exists with other content: the routes changed since this
    folder's earlier run, whose results would then belong to another route."""
    stale = []
    for text in routes:
        path = route_file(routes_dir, text.route.id)
        try:
            existing = path.read_bytes()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        if existing != text.document():
            stale.append(text)
    return stale


def write_route_files(routes: list[RouteText], routes_dir: Path) -> list[Path]:
    """One file per route under routes_dir, each written atomically; an identical file is left alone."""
    paths = []
    for text in routes:
        path = route_file(routes_dir, text.route.id)
        document = text.document()
        try:
            same = path.read_bytes() == document
        except OSError:
            same = False
        if not same:
            atomic.write_bytes(path, document)
        paths.append(path)
    return paths
