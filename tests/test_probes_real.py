"""Probes and checks on the real machine: real Xvfb, Mesa's Vulkan, sockets, the carla client, interpreters."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from builders import BASE_TOWNS, bench2drive_standin, carla_root, simlingo_checkout, venv_without
from conftest import free_port

from simdoctor import scripts
from simdoctor.doctor.checking import CheckContext
from simdoctor.doctor.diagnosis import Selection, diagnose, select
from simdoctor.doctor.findings import Status
from simdoctor.doctor.probing import ProbeContext, run_probes
from simdoctor.download import hfcache
from tests.standins.carla_rpc import serve


def findings_for(settings, probes, only, **ctx):
    facts = run_probes(probes, ProbeContext(settings, deep=ctx.get("deep", False)))
    checks = select(Selection(only=tuple(only)))
    return {f.id: f for f in diagnose(facts, checks, CheckContext(settings, **ctx))}, facts


# --- display -------------------------------------------------------------------------------------------


def test_display_under_real_xvfb_names_llvmpipe_and_vulkan_decides_the_window(make_settings, xvfb, monkeypatch):
    monkeypatch.setenv("DISPLAY", xvfb)
    settings = make_settings()
    found, facts = findings_for(settings, ["display", "window", "gpu", "vulkan"], ["display"], window=True)
    d = facts.get("display")
    assert d.server.kind == "xvfb" and d.server.pid and "Xvfb" in d.server.command
    assert "llvmpipe" in d.glx.renderer and d.glx.accelerated is False
    assert found["display.server"].status is Status.OK and "Xvfb" in found["display.server"].summary
    assert found["display.renderer"].status is Status.WARN  # OpenGL on the CPU: informative only
    # Mesa's lavapipe really presents to Xvfb: the probe's surface and swapchain path works end to end...
    [lavapipe] = facts.get("window").devices
    assert lavapipe.ok and lavapipe.presentation_support and lavapipe.swapchain_images >= 2
    assert lavapipe.stages == ["x_window", "device", "presentation_support", "surface", "surface_formats",
                               "logical_device", "vkCreateSwapchainKHR"]  # fmt: skip
    # ...but it is not an NVIDIA GPU: a CARLA window would not be on the GPU.
    window = found["display.window"]
    assert window.status is Status.FAIL and "no NVIDIA GPU among the Vulkan devices" in window.summary
    assert "simdoctor watch" in " ".join(window.fix.commands)


def test_window_probe_on_a_display_that_is_not_there(monkeypatch):
    from simdoctor.doctor.probes.window import present

    monkeypatch.setenv("DISPLAY", ":9876")
    p = present(0)
    assert (p.ok, p.stage, p.error) == (False, "XOpenDisplay", "cannot open display ':9876'")


def test_display_under_xvfb_only_warns_for_off_screen_runs(make_settings, xvfb, monkeypatch):
    monkeypatch.setenv("DISPLAY", xvfb)
    found, _ = findings_for(make_settings(), ["display"], ["display"])
    assert found["display.renderer"].status is Status.WARN
    assert found["display.renderer"].fix.commands == ["unset DISPLAY"]


def test_display_unset_recommends_off_screen_rendering(make_settings):
    found, _ = findings_for(make_settings(), ["display"], ["display"])
    assert found["display.server"].status is Status.OK
    assert "-RenderOffScreen" in found["display.server"].summary
    assert found["display.renderer"].status is Status.SKIP


def test_display_pointing_at_no_server_warns(make_settings, monkeypatch):
    monkeypatch.setenv("DISPLAY", ":4711")
    found, _ = findings_for(make_settings(), ["display"], ["display"])
    assert found["display.server"].status is Status.WARN
    assert "no X server" in found["display.server"].summary


# --- vulkan --------------------------------------------------------------------------------------------


def test_lavapipe_as_only_vulkan_device_fails_and_is_named(make_settings):
    found, facts = findings_for(make_settings(), ["vulkan", "gpu"], ["vulkan"])
    v = facts.get("vulkan")
    assert v.loader and v.enumeration.ok
    cpu = [d for d in v.enumeration.devices if d.is_cpu]
    assert cpu and "llvmpipe" in cpu[0].name and cpu[0].vendor_id == 0x10005
    devices = found["vulkan.devices"]
    assert devices.status is Status.FAIL and "llvmpipe" in devices.summary
    assert found["vulkan.loader"].status is Status.OK


def test_our_enumeration_agrees_with_vulkaninfo(make_settings):
    vulkaninfo = shutil.which("vulkaninfo")
    assert vulkaninfo, "vulkan-tools is installed by tests/setup.sh"
    out = subprocess.run([vulkaninfo, "--summary"], capture_output=True, text=True, timeout=30).stdout
    _, facts = findings_for(make_settings(), ["vulkan"], ["vulkan"])
    for device in facts.get("vulkan").enumeration.devices:
        assert f"deviceName         = {device.name}" in out
        assert f"deviceUUID         = {device.uuid}" in out


def test_vk_driver_files_pointing_nowhere_is_a_failed_enumeration(make_settings, monkeypatch, tmp_path):
    monkeypatch.setenv("VK_DRIVER_FILES", str(tmp_path / "nvidia_icd.json"))
    found, facts = findings_for(make_settings(), ["vulkan", "gpu"], ["vulkan"])
    v = facts.get("vulkan")
    assert v.search_dirs == [f"VK_DRIVER_FILES={tmp_path / 'nvidia_icd.json'}"]
    assert v.icds[0].error  # the forced manifest is reported even though it is missing
    assert found["vulkan.devices"].status is Status.FAIL
    assert "VK_ERROR_INCOMPATIBLE_DRIVER" in found["vulkan.devices"].summary


def test_an_nvidia_icd_whose_library_is_missing_is_found_and_flagged(make_settings, monkeypatch, tmp_path):
    icd_dir = tmp_path / "xdg" / "vulkan" / "icd.d"
    icd_dir.mkdir(parents=True)
    manifest = icd_dir / "nvidia_icd.json"
    manifest.write_text(
        json.dumps(
            {"file_format_version": "1.0.0", "ICD": {"library_path": "libGLX_nvidia.so.0", "api_version": "1.3.277"}}
        )
    )
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "xdg"))
    _, facts = findings_for(make_settings(), ["vulkan"], ["vulkan"])
    nvidia = [i for i in facts.get("vulkan").icds if i.is_nvidia]
    assert [i.path for i in nvidia] == [str(manifest)]
    assert nvidia[0].library_resolved is None


# --- carla: ports, server, install ---------------------------------------------------------------------


def test_a_real_listening_socket_on_the_rpc_port_is_reported_with_its_holder(make_settings):
    port = free_port(3)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        found, facts = findings_for(make_settings(carla_port=port), ["ports"], ["carla.ports"])
    rpc = next(p for p in facts.get("ports").ports if p.role == "rpc")
    assert rpc.listening and os.getpid() in rpc.pids and not rpc.owner_is_carla
    f = found["carla.ports"]
    assert f.status is Status.FAIL and f"rpc port {port}" in f.summary and f"pid {os.getpid()}" in f.summary
    assert f.fix.commands == [f"kill {os.getpid()}"]


def test_standin_server_is_read_through_the_real_carla_client(make_settings):
    port = free_port()
    server = serve(port, "0.9.15")
    try:
        found, facts = findings_for(make_settings(carla_port=port), ["server"], ["carla.server"])
    finally:
        server.shutdown()
    s = facts.get("server")
    assert s.version == "0.9.15" and s.via.startswith("carla client ")
    assert found["carla.server"].status is Status.OK


def test_server_version_mismatch_is_flagged(make_settings):
    port = free_port()
    server = serve(port, "0.9.14")
    try:
        found, _ = findings_for(make_settings(carla_port=port), ["server"], ["carla.server"])
    finally:
        server.shutdown()
    f = found["carla.server"]
    assert f.status is Status.FAIL and "0.9.14" in f.summary and "0.9.15" in f.summary


def test_agent_client_against_a_newer_server_is_flagged(make_settings, agent_python, tmp_path):
    port = free_port()
    server = serve(port, "0.9.16")
    try:
        found, facts = findings_for(
            make_settings(carla_port=port, agent_python=agent_python), ["server", "agent"], ["carla.client_version"]
        )
    finally:
        server.shutdown()
    client = facts.get("agent").packages["carla"]
    f = found["carla.client_version"]
    assert f.status is Status.FAIL and client in f.summary and "0.9.16" in f.summary
    assert f.fix.commands == [f"{agent_python} -m pip install carla==0.9.16"]


def test_something_that_is_not_carla_on_the_port_fails_the_version_call(make_settings):
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        found, _ = findings_for(make_settings(carla_port=port), ["server"], ["carla.server"])
    assert found["carla.server"].status is Status.FAIL
    assert "does not answer CARLA's `version` call" in found["carla.server"].summary


def test_nothing_listening_is_a_skip(make_settings):
    found, _ = findings_for(make_settings(carla_port=free_port()), ["server"], ["carla.server"])
    assert found["carla.server"].status is Status.SKIP


@pytest.fixture
def installed(make_settings, tmp_path):
    """Settings whose CARLA_ROOT is a package tree built by the test."""
    root = tmp_path / "carla"

    def build(**kw):
        settings = make_settings(carla_root=str(root), work_dir=str(tmp_path / "simlingo"))
        carla_root(root, settings.recipe, **kw)
        return settings

    return build


def test_a_complete_carla_tree_passes_the_install_checks(installed):
    found, _ = findings_for(installed(), ["carla"], ["carla.root", "carla.binaries", "carla.version", "carla.maps"])
    assert {k: f.status for k, f in found.items()} == {
        "carla.root": Status.OK,
        "carla.binaries": Status.OK,
        "carla.version": Status.OK,
        "carla.maps": Status.OK,
    }


def test_a_non_executable_binary_gets_chmod(installed):
    settings = installed(executable=False)
    found, _ = findings_for(settings, ["carla"], ["carla.binaries"])
    binary = f"{settings.carla_root}/{settings.recipe.carla.binary}"
    assert found["carla.binaries"].status is Status.FAIL
    assert found["carla.binaries"].fix.commands == [f"chmod +x {binary}"]


def test_a_wrong_version_file_fails(installed):
    found, _ = findings_for(installed(version="0.9.14"), ["carla"], ["carla.version"])
    assert found["carla.version"].status is Status.FAIL and "0.9.14" in found["carla.version"].summary


def test_additional_maps_waiting_in_import_are_named_with_the_import_command(installed):
    settings = installed(towns=BASE_TOWNS, pending=["AdditionalMaps_0.9.15.tar.gz"])
    found, _ = findings_for(settings, ["carla"], ["carla.maps"])
    f = found["carla.maps"]
    assert f.status is Status.FAIL and "Town12" in f.summary and "AdditionalMaps_0.9.15.tar.gz" in f.summary
    assert f.fix.commands == [f"cd {settings.carla_root} && ./ImportAssets.sh"]


def test_maps_come_from_the_routes_file_when_it_exists(installed, tmp_path):
    settings = installed(towns=("Town01",))
    simlingo_checkout(tmp_path / "simlingo", towns=("Town01",))
    found, facts = findings_for(settings, ["carla"], ["carla.maps"])
    assert facts.get("carla").routes_towns == ["Town01"]
    assert found["carla.maps"].status is Status.OK


def test_carla_root_pointing_nowhere_names_its_source(make_settings, tmp_path, monkeypatch):
    monkeypatch.setenv("CARLA_ROOT", str(tmp_path / "nope"))
    found, _ = findings_for(make_settings(), ["carla"], ["carla.root"])
    f = found["carla.root"]
    assert f.status is Status.FAIL and "environment CARLA_ROOT" in f.summary


def test_carla_found_in_a_usual_place_asks_to_export_it(make_settings, home):
    settings = make_settings()
    carla_root(home / "CARLA_0.9.15", settings.recipe)
    found, _ = findings_for(settings, ["carla"], ["carla.root"])
    assert found["carla.root"].status is Status.WARN
    assert found["carla.root"].fix.commands == [f"export CARLA_ROOT={home / 'CARLA_0.9.15'}"]


# --- agent: a real interpreter with and without srunner ------------------------------------------------


@pytest.fixture
def agent_settings(make_settings, agent_python, tmp_path):
    def build(**kw):
        settings = make_settings(
            agent_python=agent_python, carla_root=str(tmp_path / "carla"), work_dir=str(tmp_path / "simlingo")
        )
        carla_root(tmp_path / "carla", settings.recipe)
        simlingo_checkout(tmp_path / "simlingo", **kw)
        return settings

    return build


def test_real_interpreter_with_the_stack_importable(agent_settings, agent_python):
    settings = agent_settings()
    found, facts = findings_for(settings, ["agent"], ["agent"])
    a = facts.get("agent")
    assert a.version.startswith("3.") and a.carla.ok
    assert found["agent.imports"].status is Status.OK
    assert found["agent.module"].status is Status.OK
    for name in ("srunner", "leaderboard", "agents.navigation"):
        assert a.modules[name].found, name
    if a.version.startswith("3.8."):
        assert found["agent.python"].status is Status.OK
        assert found["agent.carla_client"].status is Status.OK and a.packages["carla"] == "0.9.15"


def test_real_interpreter_without_srunner_names_the_missing_entry(agent_settings):
    settings = agent_settings(srunner=False)
    found, _ = findings_for(settings, ["agent"], ["agent.imports"])
    f = found["agent.imports"]
    assert f.status is Status.FAIL
    assert "`srunner`" in f.summary and settings.recipe.agent.scenario_runner in f.summary


def test_every_missing_distribution_is_named_and_deep_imports_the_evaluator(make_settings, agent_python, tmp_path):
    """The agent env lacks requests and pexpect, which `find_spec("leaderboard")` never notices: the default
    check names both from package metadata (six found by its pip name, py-trees by its underscore spelling), with
    one install command; --deep imports leaderboard.leaderboard_evaluator for real (the stand-in, which needs
    what upstream's needs, in upstream's order) and says which import fails."""
    python = venv_without(tmp_path / "venv", os.path.dirname(os.path.dirname(agent_python)), "requests", "pexpect")
    settings = make_settings(agent_python=python, carla_root=str(tmp_path / "carla"), work_dir=str(tmp_path / "s"))
    carla_root(tmp_path / "carla", settings.recipe)
    bench2drive_standin(tmp_path / "s")
    found, facts = findings_for(settings, ["agent"], ["agent"])
    a = facts.get("agent")
    assert found["agent.imports"].status is Status.OK  # find_spec: leaderboard and srunner are there
    assert (a.packages["requests"], a.packages["pexpect"]) == (None, None)
    assert (a.packages["six"], a.packages["py-trees"]) == ("1.16.0", "0.8.3")
    f = found["agent.packages"]
    missing = f.summary.split("missing: ", 1)[1].split(";", 1)[0].split(", ")
    assert f.status is Status.FAIL and {"requests", "pexpect"} <= set(missing) and "six" not in missing
    (command,) = f.fix.commands
    assert command.startswith(f"{python} -m pip install ") and "requests==2.31.0" in command
    assert "pexpect==4.9.0" in command and "six==" not in command
    found, facts = findings_for(settings, ["agent"], ["agent.deep"], deep=True)
    errors = facts.get("agent").deep.module_errors
    assert errors["leaderboard.leaderboard_evaluator"].startswith("ModuleNotFoundError: No module named 'pexpect'")
    assert errors["leaderboard.scenarios.route_scenario"] is None


def test_deep_resolves_the_base_model_by_name_offline(agent_settings, simdoctor, hub, tmp_path, monkeypatch):
    """--deep asks the agent's own interpreter to resolve OpenGVLab/InternVL2-1B by name under HF_HUB_OFFLINE=1
    (here through huggingface_hub 0.27.0: the test interpreter has no transformers): a copy in pretrained/ alone
    does not resolve; once setup's links are in the cache it does."""
    settings = agent_settings()
    repo, local = settings.recipe.base_model.repo, Path(settings.recipe.base_model.local_dir)
    commit = hub.add_repo(repo, {"config.json": b"{}\n", "conversation.py": b"# conv\n"}).commit
    done = simdoctor("download", repo, "--local-dir", str(local), env={"HF_ENDPOINT": hub.endpoint})
    assert done.returncode == 0, done.stderr
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    _, facts = findings_for(settings, ["agent"], ["agent.deep"], deep=True)
    before = facts.get("agent").deep.hub[repo]
    assert not before.ok and before.via.startswith("huggingface_hub"), before
    hfcache.link(local, tmp_path / "hf" / "hub", "main")
    _, facts = findings_for(settings, ["agent"], ["agent.deep"], deep=True)
    after = facts.get("agent").deep.hub[repo]
    assert after.ok and after.detail.endswith(f"models--OpenGVLab--InternVL2-1B/snapshots/{commit}"), after


def test_missing_agent_file_is_named(agent_settings):
    settings = agent_settings(agent=False)
    found, _ = findings_for(settings, ["agent"], ["agent.module"])
    assert found["agent.module"].status is Status.FAIL and settings.recipe.agent.file in found["agent.module"].summary


def test_an_interpreter_that_crashes_is_reported_not_raised(make_settings, tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'boom: cannot start' >&2\nexit 3\n")
    fake.chmod(0o755)
    found, _ = findings_for(make_settings(agent_python=str(fake)), ["agent"], ["agent.python"])
    f = found["agent.python"]
    assert f.status is Status.FAIL and "exited with code 3" in f.summary and "boom" in f.summary


def test_no_agent_interpreter_at_all(make_settings, tmp_path):
    found, _ = findings_for(make_settings(agent_python=str(tmp_path / "nope")), ["agent"], ["agent.python"])
    assert found["agent.python"].status is Status.FAIL and "not an executable Python" in found["agent.python"].summary


# --- network ------------------------------------------------------------------------------------------


def test_unreachable_endpoint_is_a_quick_warning(make_settings, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    found, facts = findings_for(make_settings(), ["network"], ["network.hf"])
    assert found["network.hf"].status is Status.WARN
    assert facts.get("network").seconds < 1.0


def test_reachable_endpoint_is_ok(make_settings, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{s.getsockname()[1]}")
        found, _ = findings_for(make_settings(), ["network"], ["network.hf"])
    assert found["network.hf"].status is Status.OK


# --- system and gpu on this machine -------------------------------------------------------------------


def test_system_probe_reads_this_machine(make_settings):
    _, facts = findings_for(make_settings(), ["system"], ["system"])
    s = facts.get("system")
    assert s.cpu_count >= 1 and s.mem_total_bytes > 0 and s.glibc and s.euid == os.geteuid()
    assert {d.purpose for d in s.disks} == {"carla", "weights"}


def test_gpu_probe_without_a_driver_reports_why(make_settings):
    found, facts = findings_for(make_settings(), ["gpu"], ["gpu"])
    g = facts.get("gpu")
    if g.nvml_error is None:
        pytest.skip("this machine has an NVIDIA driver")
    assert found["gpu.driver"].status is Status.FAIL and "NVML" in found["gpu.driver"].summary
    assert all(found[i].status is Status.SKIP for i in ("gpu.devices", "gpu.processes", "gpu.graphics_libs"))


def test_routes_file_towns_are_read(tmp_path):
    from simdoctor.doctor.probes.carla import route_towns

    path = (
        Path(simlingo_checkout(tmp_path, towns=("Town12", "Town01", "Town12"))) / "leaderboard/data/bench2drive220.xml"
    )
    assert route_towns(path) == ["Town01", "Town12"]


def test_agent_probe_reads_each_version_as_importlib_metadata_does(agent_python):
    """agent_probe.py reads only the metadata's header (issue 15, start-up): for every distribution in the
    agent's Python 3.8, under each spelling, it must give what importlib.metadata.version gives."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import agent_probe as a; from importlib import metadata\n"
        "names = {d.metadata['Name'] for d in metadata.distributions()}\n"
        "def version(n):\n"
        "    for s in (n, n.replace('-', '_')):\n"
        "        try:\n"
        "            return metadata.version(s)\n"
        "        except Exception:\n"
        "            pass\n"
        "spellings = [s for n in names for s in (n, n.lower(), n.upper(), n.replace('_', '-'), n + '-nosuch')]\n"
        "print(len(names), [(s, version(s), a.package_version(s)) for s in spellings"
        " if version(s) != a.package_version(s)])\n"
    )
    folder = str(Path(scripts.path("agent_probe.py")).parent)
    done = subprocess.run([agent_python, "-c", code, folder], capture_output=True, text=True, timeout=60, check=True)
    count, mismatches = done.stdout.split(" ", 1)
    assert int(count) > 10 and mismatches.strip() == "[]", done.stdout


# --- system packages -----------------------------------------------------------------------------------

RPM_ANSWERS = """#!/bin/sh
# rpm -q --qf '%{NAME}\\n' NAME...: each installed name, or "package NAME is not installed"; exit code: how many are not
shift 3
missing=0
for name in "$@"; do
    case "$name" in
        libsdl2-2.0-0|git) echo "$name" ;;
        *) echo "package $name is not installed"; missing=$((missing + 1)) ;;
    esac
done
exit $missing
"""


def on_path(tmp_path: Path, programs: dict[str, str], keep_path: bool = True) -> str:
    """PATH with these stand-in scripts first (alone, without the system's, when not keep_path)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in programs.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return f"{bin_dir}:{os.environ['PATH']}" if keep_path else str(bin_dir)


def packages_verdict(simdoctor, path: str) -> dict:
    done = simdoctor("check", "--only", "system.packages", "--json", env={"PATH": path})
    [finding] = json.loads(done.stdout)["results"]
    assert done.returncode == (1 if finding["status"] == "fail" else 0), done.stderr
    return finding


@pytest.mark.parametrize(
    ("programs", "says"),
    [
        ({"dpkg-query": "#!/bin/sh\necho 'dpkg-query: error: cannot access archive: Permission denied' >&2\nexit 2\n"},
         "dpkg-query exited with code 2: dpkg-query: error: cannot access archive: Permission denied"),
        ({"dpkg-query": "#!/bin/sh\nexec sleep 30\n"}, "dpkg-query gave no answer in time and was stopped"),
        ({"dpkg-query": "#!/bin/sh\nkill -SEGV $$\n"}, "dpkg-query crashed (SIGSEGV)"),
    ],
    ids=["fails", "hangs", "crashes"],
)  # fmt: skip
def test_a_package_database_that_cannot_answer_is_not_every_package_missing(simdoctor, tmp_path, programs, says):
    """A dpkg-query that fails, hangs (stopped after QUERY_TIMEOUT, 3 s) or crashes: the check says it cannot tell,
    with the reason, and prints no install command, as if every package were missing."""
    f = packages_verdict(simdoctor, on_path(tmp_path, programs))
    assert (f["status"], f["summary"], f["fix"]) == ("warn", f"cannot tell which packages are installed: {says}", None)


def test_rpm_answers_and_its_unreadable_database_are_told_apart(simdoctor, tmp_path):
    """rpm exits with the count of packages not installed, so its answer is read from its lines; and on an unreadable
    database real rpm still prints "package X is not installed" for each name: its `error:` lines decide.
    (No dpkg-query on this PATH; the names are this Debian machine's.)"""
    path = on_path(tmp_path, {"rpm": RPM_ANSWERS}, keep_path=False)
    f = packages_verdict(simdoctor, path)
    assert f["status"] == "fail" and f["summary"] == "not installed: libvulkan1, libomp5, xdg-user-dirs, git-lfs"
    unreadable = "#!/bin/sh\necho 'error: cannot open Packages database in /var/lib/rpm' >&2\n"
    (tmp_path / "bin" / "rpm").write_text(unreadable + RPM_ANSWERS.split("\n", 1)[1])
    f = packages_verdict(simdoctor, path)
    says = "cannot tell which packages are installed: rpm error: cannot open Packages database in /var/lib/rpm"
    assert (f["status"], f["summary"], f["fix"]) == ("warn", says, None)
