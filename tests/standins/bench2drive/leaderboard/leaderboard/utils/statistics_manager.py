"""Stand-in for Bench2Drive's `leaderboard/utils/statistics_manager.py` (+ checkpoint_tools.save_dict): the
results JSON of one evaluator run, with upstream's keys and their order, status strings, penalties,
global statistics (means, std dev, infractions per km, values/labels), entry status and eligibility,
written in place with `open(path, 'w')` + `json.dump(indent=4)` (reference §2.3).

Upstream derives a route's completion and infractions from the scenario's criteria; here the caller
gives them (`compute_route_statistics(..., completion, infractions, failure)`). The tests also use it
to build results files with known scores. Standard library only, Python 3.8 compatible.
"""

import json
import math

INFRACTION_NAMES = (
    "collisions_layout", "collisions_pedestrian", "collisions_vehicle", "red_light", "stop_infraction",
    "outside_route_lanes", "min_speed_infractions", "yield_emergency_vehicle_infractions", "scenario_timeouts",
    "route_dev", "vehicle_blocked",
)  # fmt: skip
PENALTIES = {"collisions_pedestrian": 0.5, "collisions_vehicle": 0.6, "collisions_layout": 0.65, "red_light": 0.7,
             "stop_infraction": 0.8, "scenario_timeouts": 0.7, "yield_emergency_vehicle_infractions": 0.7}  # fmt: skip
ELIGIBLE = {"Started": False, "Finished": True, "Rejected": False, "Crashed": False, "Invalid": False}
LABELS = [
    "Avg. driving score", "Avg. route completion", "Avg. infraction penalty", "Collisions with pedestrians",
    "Collisions with vehicles", "Collisions with layout", "Red lights infractions", "Stop sign infractions",
    "Off-road infractions", "Route deviations", "Route timeouts", "Agent blocked",
    "Yield emergency vehicles infractions", "Scenario timeouts", "Min speed infractions",
]  # fmt: skip
VALUE_KEYS = [
    "collisions_pedestrian", "collisions_vehicle", "collisions_layout", "red_light", "stop_infraction",
    "outside_route_lanes", "route_dev", "route_timeout", "vehicle_blocked", "yield_emergency_vehicle_infractions",
    "scenario_timeouts", "min_speed_infractions",
]  # fmt: skip


class Stats(object):
    """statistics_manager.py's Results/Checkpoint/RouteRecord/GlobalRecord, written the same way."""

    def __init__(self, endpoint):
        self.endpoint = endpoint
        self.records = []
        self.progress = []
        self.global_record = {}
        self.entry_status = "Started"
        self.sensors = []
        self.values = []
        self.labels = []

    def clear_records(self):
        with open(self.endpoint, "w") as fd:
            fd.truncate(0)

    def add_file_records(self):
        try:
            with open(self.endpoint) as fd:
                data = json.load(fd)
        except (OSError, ValueError):
            return
        self.records = list(data.get("_checkpoint", {}).get("records", []))

    def write(self):
        data = {
            "_checkpoint": {"global_record": self.global_record, "progress": self.progress,
                            "records": [r for r in self.records if r["index"] != -1]},
            "entry_status": self.entry_status,
            "eligible": ELIGIBLE[self.entry_status],
            "sensors": self.sensors,
            "values": self.values,
            "labels": self.labels,
        }  # fmt: skip
        with open(self.endpoint, "w") as fd:
            json.dump(data, fd, indent=4)

    def create_route_data(self, route_id, scenario_name, weather_id, save_name, town_name, index):
        infractions = {name: [] for name in INFRACTION_NAMES}
        infractions["route_timeout"] = []
        record = {
            "index": -1, "route_id": route_id, "scenario_name": scenario_name, "weather_id": weather_id,
            "save_name": save_name, "status": "Started", "num_infractions": 0, "infractions": infractions,
            "scores": {"score_route": 0, "score_penalty": 0, "score_composed": 0},
            "meta": {"route_length": 0, "duration_game": 0, "duration_system": 0}, "town_name": town_name,
        }  # fmt: skip
        if index < len(self.records):
            self.records[index] = record
        else:
            self.records.append(record)

    def compute_route_statistics(self, index, length, game, system, completion, infractions, failure):
        record = self.records[index]
        record["index"] = index
        for name, messages in infractions.items():
            record["infractions"][name] = list(messages)
        penalty = 1.0
        for name, messages in infractions.items():
            penalty *= PENALTIES.get(name, 1.0) ** len(messages)
        for message in infractions.get("outside_route_lanes", []):  # 'increases' with value 0: x (1 - %/100)
            penalty *= 1 - float(message.rsplit("(", 1)[1].split("%")[0]) / 100
        record["meta"] = {"route_length": round(length, 3), "duration_game": round(game, 3),
                          "duration_system": round(system, 3)}  # fmt: skip
        record["scores"] = {"score_route": round(completion, 6), "score_penalty": round(penalty, 6),
                            "score_composed": round(max(completion * penalty, 0.0), 6)}  # fmt: skip
        record["num_infractions"] = sum(len(v) for v in record["infractions"].values())
        if completion >= 100:
            record["status"] = "Completed" if record["num_infractions"] > 0 else "Perfect"
        else:
            record["status"] = "Failed" + (" - " + failure if failure else "")

    def compute_global_statistics(self, total):
        scores = ("score_composed", "score_route", "score_penalty")
        mean = {k: round(sum(r["scores"][k] / total for r in self.records), 6) for k in scores}
        status, exceptions = "Perfect", []
        for r in self.records:
            result = "Failed" if "Failed" in r["status"] else r["status"]
            if result == "Failed":
                exceptions.append((r["route_id"], r["index"], r["status"]))
                status = result
            elif status == "Perfect" and result != "Perfect":
                status = result
        if total == 1:
            std = {k: 0 for k in scores}
        else:
            std = {k: round(math.sqrt(sum((r["scores"][k] - mean[k]) ** 2 for r in self.records) / (total - 1)), 3)
                   for k in scores}  # fmt: skip
        km = max(sum(r["meta"]["route_length"] / 1000 * r["scores"]["score_route"] / 100 for r in self.records), 0.001)
        per_km = {}
        for key in (*INFRACTION_NAMES, "route_timeout"):
            if key == "outside_route_lanes":
                per_km[key] = round(sum(float(r["infractions"][key][0].split(" ")[8]) / 1000
                                        for r in self.records if r["infractions"][key]), 3)  # fmt: skip
            else:
                per_km[key] = round(sum(len(r["infractions"][key]) for r in self.records) / km, 3)
        self.global_record = {
            "index": -1, "route_id": -1, "status": status, "infractions": per_km, "scores_mean": mean,
            "scores_std_dev": std,
            "meta": {"total_length": sum(r["meta"]["route_length"] for r in self.records),
                     "duration_game": sum(r["meta"]["duration_game"] for r in self.records),
                     "duration_system": sum(r["meta"]["duration_system"] for r in self.records),
                     "exceptions": exceptions},
        }  # fmt: skip
        self.values = [str(mean["score_composed"]), str(mean["score_route"]), str(mean["score_penalty"])]
        self.values += [str(per_km[k]) for k in VALUE_KEYS]
        self.labels = list(LABELS)
        entry = "Finished"
        for r in self.records:
            if "Simulation crashed" in r["status"]:
                entry = "Crashed"
            elif "Agent's sensors were invalid" in r["status"]:
                entry = "Rejected"
        self.entry_status = entry

    def validate_and_write(self, crashed):
        error = ""
        if not self.values:
            error = "Missing 'values' data"
        elif self.entry_status == "Started":
            error = "'entry_status' has the 'Started' value"
        elif not crashed and (self.progress[0] != self.progress[1] or self.progress[0] != len(self.records)):
            error = "'progress' data doesn't match its expected value"
        if error:
            print("\n\033[91mThe statistics are badly formed. Setting their status to 'Invalid':")
            print("> {}\033[0m\n".format(error))
            self.entry_status = "Invalid"
        self.write()
