"""Which of the system packages the stack needs are installed, asked of the distribution's package database."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from typing import Optional

from simdoctor.config.recipe import Recipe
from simdoctor.doctor import distro
from simdoctor.doctor.probes.system import read_os_release
from simdoctor.doctor.probing import ProbeContext, probe
from simdoctor.system.subproc import run_bounded

QUERY_TIMEOUT = 3.0


@dataclass(frozen=True)
class PackagesFacts:
    family: Optional[str]  # the recipe's family of this distribution, None when it has none
    database: Optional[str]  # dpkg-query or rpm; None when neither is on PATH
    installed: dict[str, bool] = field(default_factory=dict)  # the distribution's package name -> installed
    error: Optional[str] = None  # why the database could not tell (then `installed` is empty): never "missing"


def wanted(recipe: Recipe) -> list[str]:
    """The packages `setup` installs, by [platform.packages] name: CARLA's runtime libraries, then git's."""
    return list(dict.fromkeys([*recipe.carla.host_packages, *recipe.platform.setup.packages]))


def _dpkg(names: list[str]) -> tuple[dict[str, bool], Optional[str]]:
    out = run_bounded(["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\n", *names], timeout=QUERY_TIMEOUT)
    # dpkg-query(1): 1 is "some package not found" (still an answer), 2 a fatal error such as an unreadable database
    if out.timed_out or out.error or out.returncode not in (0, 1):
        return {}, f"dpkg-query {out.describe()}"
    seen = dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)
    return {n: seen.get(n) == "installed" for n in names}, None


def _rpm(names: list[str]) -> tuple[dict[str, bool], Optional[str]]:
    out = run_bounded(["rpm", "-q", "--qf", "%{NAME}\n", *names], timeout=QUERY_TIMEOUT)
    lines = set(out.stdout.splitlines())  # a missing one is the line "package NAME is not installed", not NAME
    # rpm -q exits with the count of packages not installed, so its code tells nothing; an answer is a line for
    # every name, and an unreadable database (`error: cannot open Packages database`) still calls each one missing
    answered = all(n in lines or f"package {n} is not installed" in lines for n in names)
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    if out.timed_out or out.error or (out.returncode or 0) < 0:
        return {}, f"rpm {out.describe()}"
    if errors or not answered:
        return {}, f"rpm {errors[0] if errors else 'gave no answer for some of the packages'}"
    return {n: n in lines for n in names}, None


@probe("packages", PackagesFacts, timeout=4.0, description="system packages (dpkg/rpm)")
def probe_packages(ctx: ProbeContext) -> PackagesFacts:
    platform = ctx.settings.recipe.platform
    fam = distro.family(platform, read_os_release())
    if fam is None:
        return PackagesFacts(None, None)
    names = distro.package_names(platform, fam, wanted(ctx.settings.recipe))
    for database, query in (("dpkg-query", _dpkg), ("rpm", _rpm)):
        if shutil.which(database):
            installed, error = query(names)
            return PackagesFacts(fam.name, database, installed, error)
    return PackagesFacts(fam.name, None, error="neither dpkg-query nor rpm is on PATH")
