"""carla: the package on disk, its maps, its ports, and a server answering on them."""

from __future__ import annotations

import shlex

from simdoctor.doctor.checking import CheckContext, check, fail, ok, skip, warn
from simdoctor.doctor.findings import Fix
from simdoctor.doctor.probes.agent import AgentFacts
from simdoctor.doctor.probes.carla import CarlaInstallFacts
from simdoctor.doctor.probes.ports import PortsFacts
from simdoctor.doctor.probes.server import ServerFacts
from simdoctor.doctor.probing import Facts


def install_fix(ctx: CheckContext) -> Fix:
    r = ctx.settings.recipe.carla
    return Fix(
        f"Download and extract CARLA {r.version} (simdoctor verifies and resumes the download).",
        ["simdoctor setup --only carla", f"export CARLA_ROOT={ctx.settings.carla_root}"],
    )


def safe_root_fix(ctx: CheckContext, carla_root: str) -> Fix:
    link = f"~/carla-{ctx.settings.recipe.carla.version}"
    return Fix("Link CARLA to a path of letters, digits and _ - . / only, and point CARLA_ROOT at the link.",
               [f"ln -sfn {shlex.quote(carla_root)} {link}", f"export CARLA_ROOT={link}"])  # fmt: skip


@check("carla.root", "CARLA_ROOT", needs=("carla",))
def root(facts: Facts, ctx: CheckContext):
    c: CarlaInstallFacts = facts.get("carla")
    launcher = ctx.settings.recipe.carla.launcher
    if c.root is None:
        if c.setting_source != "recipe":
            return fail(f"CARLA_ROOT={c.setting} (from {c.setting_source}) does not exist", install_fix(ctx))
        return fail(
            f"CARLA {ctx.settings.recipe.carla.version} not found (looked in {', '.join(c.searched)})",
            install_fix(ctx),
        )
    if c.launcher is None or not c.launcher.exists:
        return fail(
            f"{c.root} has no {launcher}: not a packaged CARLA (a source checkout, or one folder too high?)",
            install_fix(ctx),
        )
    from simdoctor.doctor.probes.carla import carla_root_problem  # imported here, not at the top: `check` starts faster

    problem = carla_root_problem(str(c.root))
    if problem:
        return fail(problem, safe_root_fix(ctx, str(c.root)))
    if c.found_by_search:
        return warn(
            f"CARLA_ROOT is not set; found CARLA at {c.root}",
            Fix("Point CARLA_ROOT at it (the evaluator reads it too).", [f"export CARLA_ROOT={c.root}"]),
        )
    return ok(f"CARLA_ROOT={c.root} (from {c.setting_source})")


@check("carla.binaries", "Launcher and binary", needs=("carla",))
def binaries(facts: Facts, ctx: CheckContext):
    c: CarlaInstallFacts = facts.get("carla")
    if c.root is None or c.launcher is None or c.binary is None or not c.launcher.exists:
        return skip("no CARLA package")
    if not c.binary.exists:
        return fail(f"{c.binary.path} is missing: the archive was not fully extracted", install_fix(ctx))
    not_exec = [f.path for f in (c.launcher, c.binary) if not f.executable]
    if not_exec:
        return fail(
            f"not executable: {', '.join(not_exec)}",
            Fix("Restore the execute bits (lost by some copy tools).", [f"chmod +x {' '.join(not_exec)}"]),
        )
    return ok(f"{ctx.settings.recipe.carla.launcher} and {ctx.settings.recipe.carla.process_name} are executable")


@check("carla.version", "CARLA version", needs=("carla",))
def version(facts: Facts, ctx: CheckContext):
    c: CarlaInstallFacts = facts.get("carla")
    want = ctx.settings.recipe.carla.version
    if c.root is None:
        return skip("no CARLA package")
    if c.version is None:
        return warn(
            f"{c.root} has no {ctx.settings.recipe.carla.version_file} file: cannot tell its version",
            install_fix(ctx),
        )
    if c.version.split("-", 1)[0] != want:
        return fail(f"CARLA at {c.root} is {c.version}; this recipe needs {want}", install_fix(ctx))
    return ok(f"CARLA {c.version}")


@check("carla.maps", "Maps for the routes", needs=("carla",))
def maps(facts: Facts, ctx: CheckContext):
    c: CarlaInstallFacts = facts.get("carla")
    r = ctx.settings.recipe
    if c.root is None:
        return skip("no CARLA package")
    needed = c.routes_towns if c.routes_towns is not None else r.routes.towns
    source = c.routes_file if c.routes_towns is not None else "the recipe's town list"
    missing = [t for t in needed if t not in c.maps]
    if not missing:
        return ok(f"all {len(needed)} towns of {source} are installed")
    details = [f"needed by {source}: {', '.join(needed)}", f"installed: {', '.join(c.maps) or 'none'}"]
    import_dir = f"{c.root}/{r.carla.import_dir}"
    if set(missing) <= set(r.carla.additional_towns):
        if c.import_pending:
            return fail(
                f"{', '.join(missing)} missing: {', '.join(c.import_pending)} waits in {import_dir}, not imported",
                Fix("Run CARLA's import script.", [f"cd {c.root} && ./{r.carla.import_script}"]),
                details,
            )
        return fail(
            f"{', '.join(missing)} missing: AdditionalMaps_{r.carla.version} is not imported",
            Fix(
                "Download AdditionalMaps into Import/ and import it.",
                ["simdoctor setup --only maps"],
            ),
            details,
        )
    return fail(f"{', '.join(missing)} missing from the CARLA package: it is incomplete", install_fix(ctx), details)


@check("carla.ports", "CARLA ports", needs=("ports",))
def ports(facts: Facts, ctx: CheckContext):
    p: PortsFacts = facts.get("ports")
    if not p.local:
        return skip(f"CARLA host {p.host} is remote")
    details = []
    blocked = []
    for s in p.ports:
        if not s.listening:
            details.append(f"{s.role} {s.port}: free")
        elif s.owner_is_carla:
            details.append(f"{s.role} {s.port}: held by CARLA (pid {', '.join(map(str, s.pids))})")
        else:
            who = f"pid {', '.join(map(str, s.pids))}: {s.owner}" if s.pids else "a process of another user"
            details.append(f"{s.role} {s.port}: held by {who}")
            blocked.append(s)
    if blocked:
        s = blocked[0]
        who = f"`{s.owner}` (pid {s.pids[0]})" if s.pids and s.owner else "another user's process"
        return fail(
            f"{s.role} port {s.port} is held by {who}: CARLA would fail with `bind: Address already in use`",
            Fix(
                "Stop that process, or use other ports (the RPC port P also needs P+1 and P+2).",
                [f"kill {s.pids[0]}"] if s.pids else [f"ss -ltnp 'sport = :{s.port}'"],
            ),
            details,
        )
    carla_held = [s for s in p.ports if s.listening]
    if carla_held:
        return ok("held by a running CARLA server", details)
    return ok(f"{', '.join(str(s.port) for s in p.ports)} are free", details)


@check("carla.server", "Running CARLA server", needs=("server",), uses=("ports",))
def server(facts: Facts, ctx: CheckContext):
    s: ServerFacts = facts.get("server")
    p: PortsFacts = facts.get("ports")
    want = ctx.settings.recipe.carla.version
    where = f"{s.host}:{s.port}"
    if not s.listening:
        return skip(f"no server on {where} ({s.error})")
    if s.version is None:
        return fail(
            f"something listens on {where} but does not answer CARLA's `version` call: {s.error}",
            Fix("Check what holds the port (see carla.ports) and point --carla-port at a CARLA server."),
        )
    if s.version.split("-", 1)[0] != want:
        holder = next((st for st in (p.ports if p else []) if st.role == "rpc" and st.pids), None)
        return fail(
            f"the server on {where} is CARLA {s.version}; this recipe needs {want}",
            Fix(
                f"Stop it and start CARLA {want} (the one CARLA_ROOT points at).",
                [f"kill {' '.join(map(str, holder.pids))}"] if holder else [],
            ),
            [f"read via {s.via}"] + ([f"held by pid {holder.pids[0]}: {holder.owner}"] if holder else []),
        )
    return ok(f"CARLA {s.version} answers on {where}", [f"read via {s.via}"])


@check("carla.client_version", "Client and server versions", needs=("server", "agent"))
def client_version(facts: Facts, ctx: CheckContext):
    s: ServerFacts = facts.get("server")
    a: AgentFacts = facts.get("agent")
    if s.version is None:
        return skip("no server version to compare")
    client = (a.packages or {}).get("carla")
    if not client:
        return skip("the agent's interpreter has no carla client (see agent.carla_client)")
    release = s.version.split("-", 1)[0]  # a source build says e.g. 0.9.15-dirty
    if client != release:
        return fail(
            f"the agent's carla client is {client} but the server is {s.version}: "
            "CARLA only warns (`Version mismatch detected`) and then misbehaves",
            Fix(
                "Install the client that matches the server.",
                [f"{a.python} -m pip install carla=={release}"],
            ),
        )
    return ok(f"client {client} matches server {s.version}")
