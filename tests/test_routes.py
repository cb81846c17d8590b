"""Route files: reading bench2drive220-style files and folders, --route-ids, per-route files the leaderboard reads."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import builders
import pytest

from simdoctor.config.recipe import ConfigError
from simdoctor.run import routes

ROUTES = [
    {"id": "1711", "town": "Town12", "type": "ParkingCutIn"},
    {"id": "1773", "town": "Town12", "type": "ParkedObstacle"},
    {"id": "2084", "town": "Town13", "type": "Accident"},
    {"id": "3249", "town": "Town05", "type": "HardBreakRoute"},
    {"id": "28330", "town": "Town04", "type": "HighwayExit"},
]


def as_route_parser_reads(path: Path) -> list:
    """What the leaderboard's route_parser takes from a file (ET.parse, tree.iter('route'), waypoints,
    scenarios with their children, weathers), as comparable data."""
    out = []
    for route in ET.parse(path).iter("route"):
        positions = [dict(p.attrib) for p in route.find("waypoints").iter("position")]
        scenarios = [
            (s.attrib.get("name"), s.attrib.get("type"), [(e.tag, dict(e.attrib)) for e in list(s)])
            for s in route.find("scenarios").iter("scenario")
        ]
        weathers = [dict(w.attrib) for w in route.find("weathers").iter("weather")]
        out.append((route.attrib["id"], route.attrib["town"], positions, scenarios, weathers))
    return out


def test_reads_a_bench2drive220_style_file(tmp_path):
    source = builders.routes_xml(tmp_path / "bench2drive220.xml", ROUTES)
    found = routes.read_routes(source)
    assert [t.route.id for t in found] == [r["id"] for r in ROUTES]
    assert found[0].route == routes.Route("1711", "Town12", ["ParkingCutIn"], str(source))
    assert found[2].route.scenario_type == "Accident"


def test_per_route_files_keep_the_element_bytes_and_read_as_the_original(tmp_path):
    source = builders.routes_xml(tmp_path / "bench2drive220.xml", ROUTES, declaration=True)
    before = (source.read_bytes(), source.stat().st_mtime_ns)
    found = routes.read_routes(source)
    paths = routes.write_route_files(found, tmp_path / "out" / "routes")
    original = as_route_parser_reads(source)
    data = source.read_bytes()
    for text, path, expected in zip(found, paths, original):
        assert path == tmp_path / "out" / "routes" / f"{text.route.id}.xml"
        written = path.read_bytes()
        assert text.element in data and text.element in written  # byte for byte
        assert text.element.startswith(b"<route ") and text.element.endswith(b"</route>")
        assert written.startswith(b'<?xml version="1.0" encoding="utf-8"?>\n<routes>')
        assert as_route_parser_reads(path) == [expected]
    assert (source.read_bytes(), source.stat().st_mtime_ns) == before  # the user's file is only read
    assert not [p for p in (tmp_path / "out" / "routes").iterdir() if p.name.startswith(".")]  # no temp files


def test_rewriting_identical_files_leaves_them_alone(tmp_path):
    found = routes.read_routes(builders.routes_xml(tmp_path / "r.xml", ROUTES))
    paths = routes.write_route_files(found, tmp_path / "routes")
    stamps = [p.stat().st_mtime_ns for p in paths]
    os.utime(paths[0], ns=(1, 1))
    routes.write_route_files(found, tmp_path / "routes")
    assert paths[0].stat().st_mtime_ns == 1 and [p.stat().st_mtime_ns for p in paths[1:]] == stamps[1:]
    assert routes.changed(found, tmp_path / "routes") == []


def test_changed_routes_are_found(tmp_path):
    found = routes.read_routes(builders.routes_xml(tmp_path / "r.xml", ROUTES))
    routes.write_route_files(found, tmp_path / "routes")
    edited = routes.read_routes(builders.routes_xml(tmp_path / "r2.xml", [{**ROUTES[0], "points": 5}, *ROUTES[1:]]))
    assert [t.route.id for t in routes.changed(edited, tmp_path / "routes")] == ["1711"]


def test_a_folder_of_per_route_files_in_natural_order(tmp_path):
    folder = tmp_path / "bench2drive_split"
    for i, r in enumerate(ROUTES):
        builders.routes_xml(folder / f"bench2drive_{i if i != 4 else 10}.xml", [r])
    (folder / "notes.txt").write_text("not a route")
    found = routes.read_routes(folder)
    assert [t.route.id for t in found] == ["1711", "1773", "2084", "3249", "28330"]
    assert found[4].route.source == str(folder / "bench2drive_10.xml")


def test_a_file_written_by_elementtree_reads_too(tmp_path):
    """SimLingo's bench2drive_split files were written by ElementTree (`/>` without a space)."""
    tree = ET.parse(builders.routes_xml(tmp_path / "r.xml", ROUTES[:1]))
    tree.write(tmp_path / "split.xml", encoding="utf-8", xml_declaration=True)
    (found,) = routes.read_routes(tmp_path / "split.xml")
    routes.write_route_files([found], tmp_path / "routes")
    assert as_route_parser_reads(tmp_path / "routes" / "1711.xml") == as_route_parser_reads(tmp_path / "r.xml")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", ["1711", "1773", "2084", "3249", "28330"]),
        ("2084", ["2084"]),
        ("3249, 1711", ["1711", "3249"]),  # file order, as the leaderboard's --routes-subset
        ("1773-3249", ["1773", "2084", "3249"]),  # a range runs in file order
        ("1773-2084,2084,28330", ["1773", "2084", "28330"]),
    ],
)
def test_route_ids(tmp_path, spec, expected):
    found = routes.read_routes(builders.routes_xml(tmp_path / "r.xml", ROUTES))
    assert [t.route.id for t in routes.select(found, spec)] == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [("9999", "no route '9999'"), ("3249-1773", "comes before"), ("1711-9", "no route '1711-9'")],
)
def test_bad_route_ids(tmp_path, spec, message):
    found = routes.read_routes(builders.routes_xml(tmp_path / "r.xml", ROUTES))
    with pytest.raises(ConfigError, match=message):
        routes.select(found, spec)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<routes><route id='1' town='Town01'>", "not valid XML"),
        ("<scenarios/>", "root element is <scenarios>"),
        ("<routes><route id='../x' town='T'><waypoints/><scenarios><scenario type='A'/></scenarios></route></routes>",
         "the id must be"),
        ("<routes><route id='1'><waypoints/><scenarios><scenario type='A'/></scenarios></route></routes>", "no town"),
        ("<routes><route id='1' town='T'><scenarios><scenario type='A'/></scenarios></route></routes>",
         "no <waypoints>"),
        ("<routes><route id='1' town='T'/></routes>", "no <waypoints>, <scenarios>"),
        ("<routes><route id='1' town='T'><waypoints/><scenarios/></route></routes>", "no <scenario>"),
        ("<routes></routes>", "holds no <route>"),
    ],
)  # fmt: skip
def test_bad_routes_files_say_what_is_wrong(tmp_path, text, message):
    (tmp_path / "r.xml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        routes.read_routes(tmp_path / "r.xml")


def test_duplicate_ids_and_missing_paths(tmp_path):
    builders.routes_xml(tmp_path / "d" / "a.xml", ROUTES[:2])
    builders.routes_xml(tmp_path / "d" / "b.xml", ROUTES[1:3])
    with pytest.raises(ConfigError, match="route id 1773 appears twice"):
        routes.read_routes(tmp_path / "d")
    with pytest.raises(ConfigError, match="does not exist"):
        routes.read_routes(tmp_path / "nowhere.xml")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"no \.xml"):
        routes.read_routes(tmp_path / "empty")
