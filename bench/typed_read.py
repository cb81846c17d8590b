"""simdoctor.typed against the well-kept converters (cattrs, dacite, pydantic, msgspec), side by side in one run:
import time, reading the recipe and a `check --dump-facts` dump as simdoctor does, and what each keeps of
typed's rules (issue 15, "Hand-written where a well-kept library exists").

    python bench/typed_read.py [--runs 5] [--facts DUMP]

The libraries are no dependencies of simdoctor: `pip install cattrs dacite pydantic msgspec` into the interpreter
that runs this (one that is missing is reported, not timed). Each figure is the median over --runs fresh
processes; "import" is the library's own import on top of what simdoctor imports before it (dataclasses, typing,
enum, pathlib, json, tomllib), "first read" converts the recipe and every probe's facts once in a fresh process
(what `check` and `check --facts` pay: the per-type set-up included), "warm read" the same again. Without --facts
the dump comes from `python -m simdoctor check --dump-facts` on this machine. "same" says whether the library
built objects equal to typed's; the rule columns say which of typed's refusals it keeps (an unknown key, a bool or
a string where an int belongs) and whether an int is taken where a float belongs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHOICES = ("typed", "cattrs", "dacite", "pydantic", "msgspec")
IMPORTS = {"typed": "simdoctor.config.typed", "cattrs": "cattrs", "dacite": "dacite", "pydantic": "pydantic",
           "msgspec": "msgspec"}  # fmt: skip


def reader(choice: str):
    """`read(tp, data)` with the library set up to follow typed's rules as far as it can; its set-up lines are
    what simdoctor would keep in place of typed.from_data."""
    if choice == "typed":
        from simdoctor.config.typed import from_data

        return from_data
    if choice == "cattrs":
        import cattrs

        converter = cattrs.Converter(forbid_extra_keys=True)

        def strict(kind):
            def hook(value, _):
                if (type(value) is bool and kind is not bool) or not isinstance(value, kind):
                    raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
                return value

            return hook

        for kind in (str, int, bool):
            converter.register_structure_hook(kind, strict(kind))
        converter.register_structure_hook(float, lambda v, _: float(strict((int, float))(v, _)))
        converter.register_structure_hook(Path, lambda v, _: Path(strict(str)(v, _)))
        return lambda tp, data: converter.structure(data, tp)
    if choice == "dacite":
        import enum

        import dacite

        config = dacite.Config(strict=True, cast=[enum.Enum, Path, tuple], type_hooks={float: float})
        return lambda tp, data: dacite.from_dict(tp, data, config=config)
    if choice == "pydantic":
        import dataclasses
        import functools
        import typing

        import pydantic

        def forbid_extra(tp) -> None:  # a stdlib dataclass takes its pydantic config from an attribute
            if dataclasses.is_dataclass(tp) and "__pydantic_config__" not in vars(tp):
                tp.__pydantic_config__ = pydantic.ConfigDict(extra="forbid")
                for hint in typing.get_type_hints(tp, vars(sys.modules[tp.__module__])).values():
                    forbid_extra(hint)
            for arg in typing.get_args(tp):
                forbid_extra(arg)

        @functools.cache
        def adapter(tp):
            forbid_extra(tp)
            return pydantic.TypeAdapter(tp)

        return lambda tp, data: adapter(tp).validate_python(data)
    if choice == "msgspec":
        import msgspec

        def path_hook(tp, value):
            if tp is Path and isinstance(value, str):
                return Path(value)
            raise NotImplementedError

        return lambda tp, data: msgspec.convert(data, tp, dec_hook=path_hook)
    raise ValueError(choice)


def child(choice: str, recipe_path: Path, facts_path: Path) -> dict:
    """One fresh process's figures for `choice`."""
    import dataclasses
    import enum  # noqa: F401  simdoctor imports these before any converter
    import typing  # noqa: F401

    import tomllib

    start = time.perf_counter()
    try:
        __import__(IMPORTS[choice])
    except ImportError as exc:
        return {"missing": str(exc)}
    imported = time.perf_counter() - start

    from simdoctor.config import recipe
    from simdoctor.config.typed import from_data
    from simdoctor.doctor import probing

    probing._load_all()
    recipe_data = tomllib.loads(recipe_path.read_text(encoding="utf-8"))
    entries = json.loads(facts_path.read_text(encoding="utf-8"))["probes"]
    work = [(recipe.Recipe, recipe_data)] + [
        (probing.ProbeFailure, e["failure"]) if "failure" in e else (probing.REGISTRY[name].facts_type, e["facts"])
        for name, e in entries.items()
    ]
    read = reader(choice)

    def read_all() -> list:
        return [read(tp, data) for tp, data in work]

    start = time.perf_counter()
    built = read_all()
    first = time.perf_counter() - start
    warm = []
    for _ in range(20):
        start = time.perf_counter()
        read_all()
        warm.append(time.perf_counter() - start)
    same = built == [from_data(tp, data) for tp, data in work]

    @dataclasses.dataclass(frozen=True)
    class Probe:
        count: int
        ratio: float = 0.0

    def refuses(data: dict) -> bool:
        try:
            read(Probe, data)
        except Exception:
            return True
        return False

    def error_of(data: dict) -> str:
        try:
            read(recipe.Recipe, data)
        except Exception as exc:
            return str(exc).splitlines()[0][:70]
        return "(accepted)"

    typo = json.loads(json.dumps(recipe_data))
    typo["carla"]["prot"] = 2000
    return {
        "import_ms": imported * 1000,
        "first_ms": first * 1000,
        "warm_ms": statistics.median(warm) * 1000,
        "same": same,
        "unknown key": refuses({"count": 1, "extra": 2}),
        "bool as int": refuses({"count": True}),
        "str as int": refuses({"count": "1"}),
        "int as float": not refuses({"count": 1, "ratio": 1}),
        "typo error": error_of(typo),
    }


def dump_facts(path: Path) -> None:
    subprocess.run([sys.executable, "-m", "simdoctor", "check", "--dump-facts", str(path)], cwd=REPO,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)  # fmt: skip
    if not path.is_file():
        sys.exit(f"simdoctor check --dump-facts wrote no {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--facts", type=Path)
    parser.add_argument("--child", choices=CHOICES, help=argparse.SUPPRESS)
    parser.add_argument("--recipe", type=Path, default=REPO / "recipes" / "simlingo-bench2drive.toml")
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, str(REPO))
        print(json.dumps(child(args.child, args.recipe, args.facts)))
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        facts = args.facts or Path(tmp) / "facts.json"
        if args.facts is None:
            dump_facts(facts)
        entries = len(json.loads(facts.read_text(encoding="utf-8"))["probes"])
        print(f"reading {args.recipe.name} and {entries} probes' facts; medians of {args.runs} fresh processes")
        print(f"{'choice':9} {'import':>8} {'1st read':>9} {'warm read':>10}  same  unknown-key bool-as-int "
              "str-as-int int-as-float  error for a typo'd recipe key")  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        for choice in CHOICES:
            command = [sys.executable, __file__, "--child", choice, "--facts", str(facts), "--recipe", str(args.recipe)]
            runs = [json.loads(subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout)
                    for _ in range(args.runs)]  # fmt: skip
            if "missing" in runs[0]:
                print(f"{choice:9} not installed: {runs[0]['missing']}")
                continue
            med = {key: statistics.median(r[key] for r in runs) for key in ("import_ms", "first_ms", "warm_ms")}
            last = runs[-1]
            yes = {True: "refuses", False: "accepts"}
            print(f"{choice:9} {med['import_ms']:6.1f}ms {med['first_ms']:7.1f}ms {med['warm_ms']:8.2f}ms  "
                  f"{'yes' if last['same'] else 'NO':4}  {yes[last['unknown key']]:11} {yes[last['bool as int']]:11} "
                  f"{yes[last['str as int']]:10} {'accepts' if last['int as float'] else 'refuses':12}  "
                  f"{last['typo error']}")  # fmt: skip
    lines = (REPO / "simdoctor" / "config" / "typed.py").read_text(encoding="utf-8").splitlines()
    reading = len(lines) - next(i for i, line in enumerate(lines) if line.startswith("def from_data("))
    print(f"simdoctor/config/typed.py: {len(lines)} lines; a library would replace from_data and its converters, "
          f"{reading} lines, by a reader() like those above (to_data and DataError stay)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
