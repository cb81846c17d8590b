"""Fixes per distribution, from the facts of real /etc/os-release files (tests/data/os-release/README.md).

There is no RPM repository here to install from: the RHEL-family commands are checked as the text a
user would run, and only the Debian ones run for real (tests/test_setup_bare.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from healthy import (
    breaking,
    context,
    healthy_facts,
    settings_fixture,  # noqa: F401  (the `settings` fixture)
)

from simdoctor.config.settings import Settings
from simdoctor.doctor import distro
from simdoctor.doctor.diagnosis import Selection, diagnose, select
from simdoctor.doctor.findings import Finding
from simdoctor.doctor.probes.system import OsRelease, parse_os_release
from simdoctor.doctor.probing import Facts

DATA = Path(__file__).parent / "data" / "os-release"


def release(name: str) -> OsRelease:
    return parse_os_release((DATA / name).read_text())


@pytest.mark.parametrize(
    ("name", "id", "like", "version", "family"),
    [
        ("rocky-8", "rocky", ["rhel", "centos", "fedora"], "8.4", "rhel"),
        ("rocky-9", "rocky", ["rhel", "centos", "fedora"], "9.3", "rhel"),
        ("alma-9", "almalinux", ["rhel", "centos", "fedora"], "9.2", "rhel"),
        ("centos-stream-8", "centos", ["rhel", "fedora"], "8", "rhel"),
        ("centos-7", "centos", ["rhel", "fedora"], "7", "centos7"),
        ("ubuntu-22.04", "ubuntu", ["debian"], "22.04", "debian"),
        ("ubuntu-24.04", "ubuntu", ["debian"], "24.04", "debian"),
        ("debian-12", "debian", [], "12", "debian"),
    ],
)
def test_os_release_facts_and_family(name, id, like, version, family, settings: Settings) -> None:
    os = release(name)
    assert (os.id, os.id_like, os.version_id) == (id, like, version)
    assert distro.family(settings.recipe.platform, os).name == family


def test_parsing_follows_shell_quoting_and_skips_junk() -> None:
    os = parse_os_release("# comment\nID='opensuse-leap'\nID_LIKE=\"suse opensuse\"\nVERSION_ID=15.5\nBROKEN='x\n=\n")
    assert (os.id, os.id_like, os.version_id) == ("opensuse-leap", ["suse", "opensuse"], "15.5")


def on(facts: Facts, name: str, **system: object) -> Facts:
    return breaking(facts, "system", os_release=release(name), **system)


def finding(check_id: str, facts: Facts, settings: Settings) -> Finding:
    return next(f for f in diagnose(facts, select(Selection(only=(check_id,))), context(settings)) if f.id == check_id)


def no_loader(facts: Facts) -> Facts:
    return breaking(facts, "vulkan", loader=None, enumeration=None)


@pytest.mark.parametrize(
    ("name", "commands"),
    [
        ("rocky-8", ["sudo dnf install -y vulkan-loader"]),
        ("alma-9", ["sudo dnf install -y vulkan-loader"]),
        ("centos-7", ["sudo yum install -y vulkan-loader"]),
        ("ubuntu-22.04", ["sudo apt-get install -y libvulkan1"]),
        ("debian-12", ["sudo apt-get install -y libvulkan1"]),
    ],
)
def test_the_vulkan_loader_fix_uses_the_distributions_package_manager(name, commands, settings: Settings) -> None:
    f = finding("vulkan.loader", on(no_loader(healthy_facts(settings)), name), settings)
    assert f.fix.commands == commands


def test_root_gets_no_sudo_and_a_user_without_sudo_is_told_to_be_root(settings: Settings) -> None:
    facts = no_loader(healthy_facts(settings))
    as_root = finding("vulkan.loader", on(facts, "rocky-9", euid=0, user="root", sudo=None), settings)
    assert as_root.fix.commands == ["dnf install -y vulkan-loader"]
    no_sudo = finding("vulkan.loader", on(facts, "rocky-9", sudo=None), settings)
    assert no_sudo.fix.commands == ["dnf install -y vulkan-loader"]
    assert "Run the commands as root (this machine has no sudo)" in no_sudo.fix.text


def test_an_unknown_distribution_gets_the_names_and_no_command(settings: Settings) -> None:
    facts = breaking(no_loader(healthy_facts(settings)), "system", os_release=OsRelease("arch", [], "", "Arch Linux"))
    f = finding("vulkan.loader", facts, settings)
    assert f.fix.commands == []
    assert "no command known for Arch Linux: install libvulkan1 / vulkan-loader" in f.fix.text


NO_DRIVER = {"nvml_error": "NVML: Driver Not Loaded", "driver_version": None, "cuda_driver_version": None, "gpus": []}


@pytest.mark.parametrize(
    ("name", "commands"),
    [
        ("ubuntu-24.04", ["apt-get install -y ubuntu-drivers-common", "ubuntu-drivers install", "reboot"]),
        ("debian-12", ["apt-get update", "apt-get install -y linux-headers-amd64 nvidia-driver", "reboot"]),
        (
            "rocky-9",
            [
                "dnf install -y epel-release dnf-plugins-core",
                "dnf config-manager --add-repo "
                "https://developer.download.nvidia.com/compute/cuda/repos/rhel9/x86_64/cuda-rhel9.repo",
                "dnf module install -y nvidia-driver:latest-dkms",
                "reboot",
            ],
        ),
        (
            "rocky-8",
            [
                "dnf install -y epel-release dnf-plugins-core",
                "dnf config-manager --add-repo "
                "https://developer.download.nvidia.com/compute/cuda/repos/rhel8/x86_64/cuda-rhel8.repo",
                "dnf module install -y nvidia-driver:latest-dkms",
                "reboot",
            ],
        ),
        (
            "centos-7",
            [
                "yum install -y epel-release yum-utils",
                "yum-config-manager --add-repo "
                "https://developer.download.nvidia.com/compute/cuda/repos/rhel7/x86_64/cuda-rhel7.repo",
                "yum install -y nvidia-driver-latest-dkms",
                "reboot",
            ],
        ),
    ],
)
def test_the_driver_fix_per_distribution_as_root(name, commands, settings: Settings) -> None:
    facts = on(breaking(healthy_facts(settings), "gpu", **NO_DRIVER), name, euid=0, user="root", sudo=None)
    f = finding("gpu.driver", facts, settings)
    assert f.fix.commands == commands
    assert "sudo" not in " ".join(f.fix.commands)


def test_debian_is_told_to_enable_non_free(settings: Settings) -> None:
    facts = on(breaking(healthy_facts(settings), "gpu", **NO_DRIVER), "debian-12")
    assert "non-free" in finding("gpu.driver", facts, settings).fix.text


def test_epel_comes_first_where_a_package_needs_it(settings: Settings) -> None:
    p = settings.recipe.platform
    assert distro.install_commands(p, release("centos-7"), ["git", "git_lfs"]) == [
        "sudo yum install -y epel-release",
        "sudo yum install -y git git-lfs",
    ]
    assert distro.install_commands(p, release("rocky-9"), ["git", "git_lfs"]) == ["sudo dnf install -y git git-lfs"]
    assert distro.install_commands(p, release("rocky-9"), ["slurm_client"]) == [
        "sudo dnf install -y epel-release",
        "sudo dnf install -y slurm",
    ]


def test_glxinfo_and_the_container_toolkit_on_rhel(settings: Settings) -> None:
    p = settings.recipe.platform
    assert distro.install_commands(p, release("alma-9"), ["glxinfo"]) == ["sudo dnf install -y glx-utils"]
    toolkit = distro.guide(p, release("alma-9"), "container_toolkit", "")
    assert "sudo dnf install -y nvidia-container-toolkit" in toolkit.commands


def test_simdoctor_is_named_as_installed_and_sudo_iu_becomes_su_for_root() -> None:
    here = distro.Machine(root=True, sudo=False, simdoctor="/opt/sd/bin/simdoctor")
    assert distro.localize_command("simdoctor setup --only carla", here) == "/opt/sd/bin/simdoctor setup --only carla"
    assert distro.localize_command("sudo -iu carla simdoctor run", here) == (
        "su - carla -c '/opt/sd/bin/simdoctor run'"
    )
    user = replace(here, root=False, sudo=True)
    assert distro.localize_command("curl x | sudo tee /etc/y", user) == "curl x | sudo tee /etc/y"
    assert distro.localize_command("curl x | sudo tee /etc/y", here) == "curl x | tee /etc/y"


def packages_plan(settings: Settings, name: str, **system: object):
    """setup's packages step on a machine of that distribution whose packages are all missing."""
    from simdoctor.provision import setup

    facts = on(healthy_facts(settings), name, **system)
    p = facts.get("packages")
    facts = breaking(facts, "packages", installed=dict.fromkeys(p.installed, False))
    checks = select(Selection(only=("system.packages",)))
    state = setup.State(settings, facts, {f.id: f for f in diagnose(facts, checks, context(settings))})
    return setup.plan_packages(state)


@pytest.mark.parametrize(
    ("name", "commands"),
    [
        ("rocky-9", ["dnf install -y SDL2 vulkan-loader libomp xdg-user-dirs git git-lfs"]),
        ("centos-7", ["yum install -y epel-release",
                      "yum install -y SDL2 vulkan-loader libomp xdg-user-dirs git git-lfs"]),
        ("ubuntu-24.04", ["env DEBIAN_FRONTEND=noninteractive apt-get update",
                          "env DEBIAN_FRONTEND=noninteractive apt-get install -y libsdl2-2.0-0 libvulkan1 libomp5 "
                          "xdg-user-dirs git git-lfs"]),
    ],
)  # fmt: skip
def test_setup_installs_the_packages_with_the_distributions_manager_as_root(name, commands, settings) -> None:
    planned = packages_plan(settings, name, euid=0, user="root", sudo=None)
    assert planned.blocked is None
    assert [a.show().removeprefix("$ ") for a in planned.actions] == commands


def test_setup_uses_sudo_for_a_user_and_names_the_command_for_root_without_it(settings) -> None:
    with_sudo = packages_plan(settings, "alma-9")
    assert with_sudo.actions[0].command[:4] == ["sudo", "dnf", "install", "-y"]
    no_sudo = packages_plan(settings, "alma-9", sudo=None)
    assert no_sudo.actions == []
    assert no_sudo.blocked == (
        "installing packages needs root and this machine has no sudo: as root, run "
        "dnf install -y SDL2 vulkan-loader libomp xdg-user-dirs git git-lfs"
    )


def test_rpm_counts_a_package_it_says_is_not_installed_as_missing(tmp_path, monkeypatch) -> None:
    """`rpm -q` names a missing package on stdout inside a sentence ("package NAME is not installed", exit 1)."""
    from simdoctor.doctor.probes import packages

    rpm = tmp_path / "rpm"
    rpm.write_text('#!/bin/sh\necho libomp\necho "package SDL2 is not installed"\nexit 1\n')
    rpm.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    assert packages._rpm(["libomp", "SDL2"]) == ({"libomp": True, "SDL2": False}, None)  # and no error
