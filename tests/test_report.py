"""`simdoctor report`: Bench2Drive's DS and SR over the route set, the tables, merged.json for upstream's tools."""

from __future__ import annotations

import json
import re

import builders
import pytest
from test_cli import simdoctor

from simdoctor.run import report, results, routes
from simdoctor.run.outdir import Layout

TOWNS = builders.BENCH2DRIVE_TOWNS
TYPES = ("ParkingCutIn", "Accident", "HardBreakRoute", "YieldToEmergencyVehicle", "SignalizedJunctionLeftTurn")
COLLISION = "Agent collided against object with type=vehicle.lincoln.mkz and id=342 at (x=10.2, y=-4.1, z=0.1)"
MIN_SPEED = "Average speed is 62.5% of the surrounding traffic's one"
# (how many, results_file arguments or None for no record, score_composed, success)
CATEGORIES = [
    (100, {}, 100.0, True),  # Perfect
    (22, {"infractions": {"min_speed_infractions": [MIN_SPEED]}}, 100.0, True),  # Completed, min speed only
    (22, {"infractions": {"collisions_vehicle": [COLLISION]}}, 60.0, False),  # Completed, penalty 0.6
    (22, {"completion": 37.5, "failure": "Agent got blocked",
          "infractions": {"vehicle_blocked": ["Agent got blocked at (x=1.0, y=2.0, z=0.0)"]}}, 37.5, False),
    (22, {"completion": 81.0, "failure": "Agent timed out", "infractions": {"route_timeout": ["Route timeout."]}},
     81.0, False),
    (11, {"completion": 50.0, "failure": "Simulation crashed", "crashed": True}, 50.0, False),
    (11, {"completion": 25.0, "failure": "Agent crashed"}, 25.0, False),
    (10, None, 0.0, False),  # never ran: no record
]  # fmt: skip


@pytest.fixture
def layout(make_settings, tmp_path):
    return Layout(tmp_path / "out", make_settings().recipe.run)


def bench2drive_run(layout, tmp_path):
    """A 220-route run folder: route files as `simdoctor run` writes them and the evaluator's results."""
    specs, outcomes = [], []
    for count, kwargs, score, success in CATEGORIES:
        for _ in range(count):
            i = len(specs)
            specs.append({"id": str(1000 + 7 * i), "town": TOWNS[i % len(TOWNS)], "type": TYPES[i % len(TYPES)]})
            outcomes.append((kwargs, score, success))
    texts = routes.read_routes(builders.routes_xml(tmp_path / "bench2drive220.xml", specs))
    routes.write_route_files(texts, layout.routes_dir)
    for spec, (kwargs, _, _) in zip(specs, outcomes):
        if kwargs is not None:
            builders.results_file(layout.results_file(spec["id"]), spec["id"], spec["town"], spec["type"], **kwargs)
    return specs, outcomes


def test_driving_score_and_success_rate_match_a_hand_computation(layout, tmp_path):
    specs, outcomes = bench2drive_run(layout, tmp_path)
    built, records = report.build(layout.root, layout.names)
    # 100 x 100 + 22 x 100 + 22 x 60 + 22 x 37.5 + 22 x 81 + 11 x 50 + 11 x 25 + 10 x 0 = 16952, over 220 routes
    assert built.driving_score == pytest.approx(16952 / 220)
    assert built.driving_score == pytest.approx(sum(score for _, score, _ in outcomes) / 220)
    # Perfect 100 + Completed with only a min-speed infraction 22 = 122
    assert built.successes == 122 and built.success_rate == pytest.approx(100 * 122 / 220)
    assert (built.routes, built.evaluated, len(records)) == (220, 210, 210)
    assert built.missing == [s["id"] for s in specs[-10:]]
    assert built.crashed == [s["id"] for s in specs[188:210]]  # simulation crashes, agent crashes
    assert built.statuses == {
        "Perfect": 100, "Completed": 44, "Failed - Agent got blocked": 22, "Failed - Agent timed out": 22,
        "Failed - Agent crashed": 11, "Failed - Simulation crashed": 11, "missing": 10,
    }  # fmt: skip


def test_merged_json_is_merge_route_json_format_and_definition(layout, tmp_path):
    """merge_route_json.py: DS = sum(score_composed)/220, SR = successes/220 over the records it merges
    (the same as ours on the full 220-route set, where a missing route adds 0); SimLingo's copy drops
    'Failed - Agent crashed' records and divides by the records left."""
    specs, _ = bench2drive_run(layout, tmp_path)
    assert report.run(layout.root, layout.names, json_out=True) == 0
    merged = json.loads(layout.merged_file.read_text())
    assert set(merged) == {"_checkpoint", "driving score", "success rate", "eval num"}
    assert set(merged["_checkpoint"]) == {"records"}
    rows = merged["_checkpoint"]["records"]
    assert merged["eval num"] == len(rows) == 210
    assert all("index" not in r for r in rows)
    assert [r["route_id"] for r in rows] == sorted((r["route_id"] for r in rows), reverse=True)

    def upstream_success(r):
        return r["status"] in ("Completed", "Perfect") and not any(
            v for k, v in r["infractions"].items() if k != "min_speed_infractions"
        )

    assert merged["driving score"] == pytest.approx(sum(r["scores"]["score_composed"] for r in rows) / 220)
    assert merged["success rate"] == pytest.approx(sum(map(upstream_success, rows)) / 220) == pytest.approx(122 / 220)
    simlingo = [r for r in rows if r["status"] != "Failed - Agent crashed"]
    simlingo_ds = sum(r["scores"]["score_composed"] for r in simlingo) / len(simlingo)
    assert simlingo_ds == pytest.approx(16677 / 199) and simlingo_ds != pytest.approx(merged["driving score"])

    # What ability_benchmark.py and efficiency_smoothness_benchmark.py read from each record.
    by_id = {s["id"]: s for s in specs}
    for r in rows:
        assert r["route_id"].split("_")[1] in by_id  # ability: matched to the routes XML by id
        assert {"status", "infractions", "scores", "save_name"} <= set(r)
        assert {"score_route", "score_composed"} <= set(r["scores"])
        assert {"stop_infraction", "red_light", "min_speed_infractions"} <= set(r["infractions"])
        for message in r["infractions"]["min_speed_infractions"]:
            assert re.search(r"\b\d+\.?\d*%", message)  # efficiency parses the percentage


def test_a_subset_is_scored_over_its_own_routes(layout, tmp_path):
    """Over the route set: 3 routes, one never ran, so DS = (100 + 60 + 0) / 3, not / 220 nor / 2."""
    specs = [{"id": "1", "town": "Town01", "type": "Accident"}, {"id": "2", "town": "Town01", "type": "Accident"},
             {"id": "3", "town": "Town02", "type": "HardBreakRoute"}]  # fmt: skip
    routes.write_route_files(routes.read_routes(builders.routes_xml(tmp_path / "r.xml", specs)), layout.routes_dir)
    builders.results_file(layout.results_file("1"), "1", "Town01", "Accident", length=1000.0)
    builders.results_file(
        layout.results_file("2"), "2", "Town01", "Accident", completion=50.0, length=2000.0,
        failure="Agent deviated from the route",
        infractions={"collisions_vehicle": [COLLISION, COLLISION], "red_light": ["Agent ran a red light 7 at (x=1)"],
                     "outside_route_lanes": ["Agent went outside its route lanes for about 250.0 meters (5.0% of "
                                             "the completed route)"],
                     "route_dev": ["Agent deviated from the route at (x=1, y=2, z=3)"]},
    )  # fmt: skip
    built, _ = report.build(layout.root, layout.names)
    # route 2: 50 % x 0.6 x 0.6 x 0.7 x (1 - 0.05) = 11.97
    assert built.driving_score == pytest.approx((100 + 11.97) / 3)
    assert built.success_rate == pytest.approx(100 / 3) and built.missing == ["3"]
    # km driven = 1 km x 100 % + 2 km x 50 % = 2 km; outside_route_lanes is km outside, as the leaderboard
    assert built.km_driven == 2.0
    assert built.infractions_per_km["collisions_vehicle"] == 1.0
    assert built.infractions_per_km["red_light"] == 0.5
    assert built.infractions_per_km["route_dev"] == 0.5
    assert built.infractions_per_km["outside_route_lanes"] == 0.25
    assert [(g.name, g.routes, g.evaluated, g.driving_score, g.success_rate) for g in built.towns] == [
        ("Town01", 2, 2, pytest.approx((100 + 11.97) / 2), 50.0),
        ("Town02", 1, 0, 0.0, 0.0),
    ]
    assert [g.name for g in built.scenario_types] == ["Accident", "HardBreakRoute"]


def test_a_subset_labels_each_definition(layout, tmp_path):
    """Four routes: Perfect, Completed with a collision (60), 'Failed - Agent crashed' (25), one never ran. Over the
    routes run: (100 + 60 + 25 + 0) / 4; Bench2Drive's merge_route_json.py: / 220; SimLingo's copy drops the agent
    crash and divides by the 2 records kept."""
    specs = [{"id": str(i), "town": "Town01", "type": "Accident"} for i in range(1, 5)]
    routes.write_route_files(routes.read_routes(builders.routes_xml(tmp_path / "r.xml", specs)), layout.routes_dir)
    builders.results_file(layout.results_file("1"), "1", "Town01", "Accident")
    builders.results_file(layout.results_file("2"), "2", "Town01", "Accident",
                          infractions={"collisions_vehicle": [COLLISION]})  # fmt: skip
    builders.results_file(layout.results_file("3"), "3", "Town01", "Accident", completion=25.0, failure="Agent crashed")
    built, _ = report.build(layout.root, layout.names)
    found = {d.name: (d.divisor, d.driving_score, d.success_rate) for d in built.definitions}
    assert found == {
        "routes_run": (4, pytest.approx(185 / 4), 25.0),
        "bench2drive": (220, pytest.approx(185 / 220), pytest.approx(100 / 220)),
        "simlingo": (2, pytest.approx(160 / 2), 50.0),
    }
    labels = [d.label for d in built.definitions]
    assert labels == ["over the 4 routes run (no record: 0)", "Bench2Drive merge_route_json.py (÷ 220)",
                      "SimLingo's copy (drops 'Failed - Agent crashed', ÷ 2 kept)"]  # fmt: skip


def test_crashed_routes_slowest_routes_and_profiling(layout, tmp_path):
    specs = [{"id": str(i), "town": "Town03", "type": "Accident"} for i in range(1, 4)]
    routes.write_route_files(routes.read_routes(builders.routes_xml(tmp_path / "r.xml", specs)), layout.routes_dir)
    builders.results_file(layout.results_file("1"), "1", "Town03", "Accident", system=900.0)
    builders.results_file(layout.results_file("2"), "2", "Town03", "Accident", system=100.0, completion=10.0,
                          failure="Simulation crashed", crashed=True)  # fmt: skip
    finding = results.LogFinding("carla_segfault", "CARLA crashed (signal 11)", 9, "Engine crash ...", 1)
    attempt = results.Attempt(1, 0, {}, 1.0, 2.0, 255, False, results.Kind.RETRY, "Failed - Simulation crashed",
                              "Failed - Simulation crashed; the evaluator exited with code 255", [finding],
                              peak_gpu_bytes=10 * 2**30, peak_ram_bytes=20 * 2**30)  # fmt: skip
    results.write_task(layout.task_file("2"), results.TaskRecord("2", [attempt, attempt], final="crashed"))
    results.write_task(layout.task_file("3"), results.TaskRecord("3", [attempt], final="crashed"))
    steps = [{"kind": "setup", "setup_s": 30.0}] + [
        {"kind": "step", "step": k, "run_step_s": 0.1 * (k + 1), "sim_time": 0.05 * (k + 1), "wall": 100.0 + k}
        for k in range(10)
    ]
    layout.steps_file("1").parent.mkdir(parents=True)
    layout.steps_file("1").write_text("".join(json.dumps(s) + "\n" for s in steps) + '{"kind": "st')  # torn line
    built, _ = report.build(layout.root, layout.names)
    rows = {r.route_id: r for r in built.rows}
    assert built.slowest == ["1", "2"]
    assert built.crashed == ["2", "3"] and built.missing == ["3"]
    assert rows["2"].attempts == 2 and rows["2"].reason.startswith("Failed - Simulation crashed; the evaluator")
    assert rows["2"].log == [finding] and rows["1"].reason is None
    profile = rows["1"].profile
    assert (profile.steps, profile.setup_s, profile.step_max_s) == (10, 30.0, 1.0)
    assert profile.step_p50_s == pytest.approx(0.55) and profile.step_p95_s == pytest.approx(0.955)
    assert profile.steps_per_wall_s == pytest.approx(1.0) and profile.sim_per_wall == pytest.approx(0.05)
    assert rows["2"].profile.peak_gpu_bytes == 10 * 2**30  # from the supervisor's sampling
    assert (built.speed.steps, built.speed.peak_ram_bytes) == (10, 20 * 2**30)
    assert built.speed.step_p50_s == pytest.approx(0.55, rel=0.01)  # over all routes: from merged histograms


def test_report_command(layout, tmp_path):
    bench2drive_run(layout, tmp_path)
    text = simdoctor("report", str(layout.root))
    assert text.returncode == 0, text.stderr
    assert "Driving Score 77.05   Success Rate 55.45 % (122 of 220)" in text.stdout
    assert "missing: " in text.stdout and "by scenario type" in text.stdout
    data = json.loads(simdoctor("report", str(layout.root), "--json").stdout)
    assert data["schema_version"] == 1 and data["driving_score"] == pytest.approx(16952 / 220)
    assert len(data["rows"]) == 220 and layout.merged_file.is_file()
    bad = simdoctor("report", str(tmp_path / "nowhere"))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "nowhere: no such folder" in bad.stderr
    empty = simdoctor("report", str(tmp_path))
    assert empty.returncode == 2 and "not a `simdoctor run` output folder" in empty.stderr


def test_steps_summarised_in_the_task_record_need_no_step_file(layout, tmp_path):
    """A run summarises each attempt's step file into its task record when the attempt ends: the report reads
    that (one small record per route), and the figures are those the step file gives."""
    from simdoctor.run import profiling

    specs = [{"id": str(i), "town": "Town03", "type": "Accident"} for i in (1, 2)]
    routes.write_route_files(routes.read_routes(builders.routes_xml(tmp_path / "r.xml", specs)), layout.routes_dir)
    layout.steps_file("1").parent.mkdir(parents=True)
    for route_id, scale in (("1", 0.1), ("2", 0.2)):
        steps = [{"kind": "step", "step": k, "run_step_s": scale * (k + 1), "sim_time": 0.05 * k, "wall": 1.0 * k}
                 for k in range(10)]  # fmt: skip
        layout.steps_file(route_id).write_text("".join(json.dumps(s) + "\n" for s in steps))
    from_files, _ = report.build(layout.root, layout.names)
    for route_id in ("1", "2"):
        summary = profiling.summarize(layout.steps_file(route_id))
        attempt = results.Attempt(1, 0, {}, 1.0, 2.0, 0, kind=results.Kind.RESULT, status="Perfect", steps=summary)
        results.write_task(layout.task_file(route_id), results.TaskRecord(route_id, [attempt], final="result"))
        layout.steps_file(route_id).unlink()
    summarised, _ = report.build(layout.root, layout.names)
    assert [r.profile for r in summarised.rows] == [r.profile for r in from_files.rows]
    assert summarised.rows[1].profile.step_p50_s == pytest.approx(1.1) and summarised.speed.steps == 20
    exact = profiling.percentile([0.1 * (k + 1) for k in range(10)] + [0.2 * (k + 1) for k in range(10)], 95)
    assert summarised.speed.step_p95_s == pytest.approx(exact, rel=0.01)  # from the merged histograms


def _multi_route(path, tmp_path, specs):
    """One results JSON holding several routes' records, as a Bench2Drive task of run_evaluation_multi_*.sh
    writes it (tfpp_b2d_traj/eval_bench2drive220_0.json in SimLingo's copy)."""
    records = []
    for route_id, kwargs in specs:
        one = builders.results_file(tmp_path / "one" / f"{route_id}.json", route_id, "Town05", "Accident", **kwargs)
        records += json.loads(one.read_text())["_checkpoint"]["records"]
    data = json.loads(one.read_text())
    data["_checkpoint"]["records"] = records
    data["_checkpoint"]["progress"] = [len(records), len(records)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4))
    return path


def test_a_bench2drive_results_folder_is_read_as_it_is(tmp_path):
    """No routes/ folder: the multi-route JSONs of a Bench2Drive run, every record counted as merge_route_json.py
    counts it (its merged.json skipped), nothing written into the folder."""
    folder = tmp_path / "tfpp_b2d_traj"
    _multi_route(folder / "eval_bench2drive220_0.json", tmp_path, [("1711", {}), ("1773", {"completion": 40.0,
                 "failure": "Agent got blocked"})])  # fmt: skip
    _multi_route(folder / "eval_bench2drive220_1.json", tmp_path, [("2086", {"completion": 25.0,
                 "failure": "Agent crashed"})])  # fmt: skip
    (folder / "merged.json").write_text('{"_checkpoint": {"records": []}}')
    before = sorted(p.name for p in folder.iterdir())
    done = simdoctor("report", str(folder), "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["routes"] == data["evaluated"] == 3
    assert [r["route_id"] for r in data["rows"]] == ["1711", "1773", "2086"]
    found = {d["name"]: (d["divisor"], d["driving_score"]) for d in data["definitions"]}
    assert found == {"routes_run": (3, pytest.approx(165 / 3)), "bench2drive": (220, pytest.approx(165 / 220)),
                     "simlingo": (2, pytest.approx(140 / 2))}  # fmt: skip
    assert data["definitions"][0]["label"] == "over the 3 records found"
    assert data["crashed"] == ["2086"] and {g["name"] for g in data["scenario_types"]} == {"Accident"}
    assert sorted(p.name for p in folder.iterdir()) == before  # read as it is
    text = simdoctor("report", str(folder))
    assert "DS  55.00  SR  33.33 %   over the 3 records found" in text.stdout, text.stdout


def test_simlingos_seed_folders_are_read_as_it_left_them(tmp_path):
    """start_eval_simlingo.py's `<agent>/<benchmark>/<seed>/res/<index>_res.json`: one set per seed, with the
    seeds' mean ± std."""
    root = tmp_path / "simlingo" / "bench2drive"
    builders.results_file(root / "1" / "res" / "0_res.json", "1711", "Town12", "Accident")
    builders.results_file(root / "1" / "res" / "1_res.json", "1773", "Town12", "Accident", completion=50.0,
                          failure="Agent got blocked")  # fmt: skip
    builders.results_file(root / "2" / "res" / "0_res.json", "1711", "Town12", "Accident")
    builders.results_file(root / "2" / "res" / "1_res.json", "1773", "Town12", "Accident")
    data = json.loads(simdoctor("report", str(root), "--json").stdout)
    assert [(s["seed"], s["routes"], s["driving_score"]) for s in data["seeds"]] == [
        ("seed 1", 2, 75.0),
        ("seed 2", 2, 100.0),
    ]
    assert data["driving_score_mean"] == 87.5 and data["driving_score_std"] == pytest.approx(17.678, abs=1e-3)
    one = json.loads(simdoctor("report", str(root / "1"), "--json").stdout)  # a seed folder alone: its res/
    assert one["driving_score"] == 75.0 and one["success_rate"] == 50.0


def test_html_without_matplotlib_is_one_line_with_the_install_before_anything_is_written(layout, tmp_path):
    """matplotlib is the `viz` extra, which the README's first command does not install: `report --html` was an
    internal error (exit 70) after the text report. Blocked here as Python does for a missing module."""
    import subprocess
    import sys

    spec = {"id": "1", "town": "Town12", "type": "Accident"}
    routes.write_route_files(routes.read_routes(builders.routes_xml(tmp_path / "r.xml", [spec])), layout.routes_dir)
    blocked = "import sys; sys.modules['matplotlib'] = None; from simdoctor.cli import main; main()"
    done = subprocess.run([sys.executable, "-c", blocked, "report", str(layout.root), "--html"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2, done.stderr
    install = f"{sys.executable} -m pip install 'imageio-ffmpeg>=0.5' 'matplotlib>=3.7'"
    assert done.stderr == f"simdoctor: --html draws its plots with matplotlib, which is not installed: {install}\n"
    assert done.stdout == "" and not layout.merged_file.exists()


def test_html_on_results_simdoctor_did_not_produce_is_refused_before_anything_is_printed(tmp_path):
    """`report --html` on a folder of Bench2Drive results JSONs printed the whole report, then failed with exit 2
    (not a `simdoctor run` folder). Such a folder is read as it is and nothing is written into it, and the page
    is made of a run's own files (route files, step timings, videos): refused up front, one line, exit 2."""
    folder = tmp_path / "tfpp_b2d_traj"
    _multi_route(folder / "eval_bench2drive220_0.json", tmp_path, [("1711", {})])
    seeds = tmp_path / "simlingo" / "bench2drive"  # start_eval_simlingo.py's <seed>/res/
    builders.results_file(seeds / "1" / "res" / "0_res.json", "1711", "Town12", "Accident")
    for where in (folder, seeds):
        before = sorted(p.relative_to(where) for p in where.rglob("*"))
        for extra in ((), ("--json",)):
            done = simdoctor("report", str(where), "--html", *extra)
            assert done.returncode == 2, done.stdout + done.stderr
            line = (f"simdoctor: --html: {where} holds results simdoctor did not produce, which report reads as they "
                    "are and writes nothing into; the page is drawn from a `simdoctor run` folder\n")  # fmt: skip
            assert done.stderr == line
            if extra:  # --json: the error as one document, the report not before it
                assert json.loads(done.stdout)["exit_code"] == 2
            else:
                assert done.stdout == ""
        assert sorted(p.relative_to(where) for p in where.rglob("*")) == before


def test_nothing_driven_is_said_not_rounded_up_to_a_metre(layout, tmp_path):
    """Every route crashed at the start, or none ran: the leaderboard's statistics_manager.py (Bench2Drive 7ec25d1,
    lines 490-500) floors km driven at 0.001 before dividing, so one collision read '0.001 km driven' and
    'collisions_vehicle 1000' per km. Here 0 km is said, the per-km rates are null (undefined), the counts shown."""
    folder = tmp_path / "crashed"
    builders.results_file(folder / "a.json", "1711", "Town12", "Accident", completion=0.0, failure="Agent crashed",
                          infractions={"collisions_vehicle": [COLLISION]})  # fmt: skip
    builders.results_file(folder / "b.json", "1773", "Town12", "Accident", completion=0.0,
                          failure="Simulation crashed", crashed=True)  # fmt: skip
    data = json.loads(simdoctor("report", str(folder), "--json").stdout)
    assert data["km_driven"] == 0.0
    assert data["infractions_per_km"]["collisions_vehicle"] is None and data["infractions_per_km"]["red_light"] is None
    assert data["infractions_per_km"]["outside_route_lanes"] == 0.0  # km outside the lanes: defined, none
    assert data["infraction_counts"]["collisions_vehicle"] == 1 and data["infraction_counts"]["red_light"] == 0
    text = " ".join(simdoctor("report", str(folder)).stdout.split())  # as words: the lines fit 80 columns
    assert "0.001 km" not in text and "collisions_vehicle 1000" not in text, text
    assert "infractions: nothing was driven (0 km), so no rate per km; counted: collisions_vehicle 1 " in text, text
    # A run folder none of whose routes ran: nothing driven, nothing counted.
    spec = {"id": "1", "town": "Town12", "type": "Accident"}
    routes.write_route_files(routes.read_routes(builders.routes_xml(tmp_path / "r.xml", [spec])), layout.routes_dir)
    built, _ = report.build(layout.root, layout.names)
    assert built.km_driven == 0.0 and set(built.infractions_per_km.values()) == {None, 0.0}
    assert "infractions: nothing was driven (0 km), none counted" in simdoctor("report", str(layout.root)).stdout


def test_under_a_metre_driven_reads_in_metres_and_rates_use_it(tmp_path):
    """0.4 m driven (1 km at 0.04 %) is not rounded to '0.000 km' or floored to 0.001 km: it reads in metres and the
    rates are over the distance driven (1 collision / 0.0004 km)."""
    folder = tmp_path / "short"
    builders.results_file(folder / "a.json", "1711", "Town12", "Accident", completion=0.04, failure="Agent crashed",
                          infractions={"collisions_vehicle": [COLLISION]})  # fmt: skip
    data = json.loads(simdoctor("report", str(folder), "--json").stdout)
    assert data["km_driven"] == pytest.approx(0.0004)
    assert data["infractions_per_km"]["collisions_vehicle"] == pytest.approx(2500.0)
    text = " ".join(simdoctor("report", str(folder)).stdout.split())
    assert "infractions per km (0.4 m driven; outside_route_lanes in km)" in text, text
