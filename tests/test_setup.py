"""`simdoctor setup` as the non-root test user, on a machine state built by the test: CARLA and AdditionalMaps
archives and the two Hub repos served on loopback, a bare git repository standing in for RenzKa/simlingo, a
recipe pointing there, uv with a local Python 3.8 for the agent env (its pins installed for real from PyPI,
torch only resolved: --no-torch), or a stand-in conda (tests/standins/conda) keeping conda's command line.

The root path (packages, the user, the hand-off) runs for real in tests/test_setup_bare.py, in a bare Debian
12 root filesystem; here root only plans it (a real user on the test machine is not ours to create)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import builders
import pytest
from conftest import USER_AGENT_PYTHON, UserRuntime
from standins.hf_hub import Hub

from simdoctor.config.recipe import load_recipe
from simdoctor.download import manifest

STANDINS = Path(__file__).parent / "standins"
# The test recipe's pins: the client, one small pin, transformers (real, from PyPI), torch and torchvision
# (resolved only, with --no-torch) and accelerate (needs torch: left out with --no-torch).
PINS = {"carla": "0.9.15", "six": "1.16.0", "transformers": "4.46.3", "torch": "2.2.0", "torchvision": "0.17.0",
        "accelerate": "1.0.1"}  # fmt: skip


def network_env() -> dict[str, str]:
    """This machine's way out to PyPI (its CA bundle, proxies), which uv and pip need as any user."""
    names = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "PIP_CERT", "GIT_SSL_CAINFO", "HTTPS_PROXY",
             "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy")  # fmt: skip
    return {k: os.environ[k] for k in names if k in os.environ}


@dataclass
class Machine:
    rt: UserRuntime
    home: Path
    recipe_file: Path
    carla_root: Path
    work_dir: Path
    venv: Path
    commit: str
    hub: Hub

    def run(self, *args: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
        """The real CLI as the test user, with this machine's settings."""
        flags = [
            "--recipe",
            str(self.recipe_file),
            "--carla-root",
            str(self.carla_root),
            "--work-dir",
            str(self.work_dir),
        ]
        full = self.rt.env(self.home, HF_ENDPOINT=self.hub.endpoint, **network_env(), **env)
        command = self.rt.simdoctor(*args, *flags)
        return subprocess.run(command, env=full, capture_output=True, text=True, timeout=timeout, cwd="/")


@pytest.fixture
def machine(tmp_path: Path, hub: Hub, user_runtime: UserRuntime) -> Machine:
    rt = user_runtime
    home = rt.mkdir("setup")
    url, commit = builders.simlingo_remote(home / "remote", towns=("Town01", "Town12", "Town13"))
    pythons = 'pythons = ["{home}/.pyenv/versions/3.8*/bin/python3.8", "python3.8", "/usr/bin/python3.8"]'
    text = builders.standin_recipe(hub, tmp_path / "build", url, commit, PINS,
                                   {pythons: f'pythons = ["{USER_AGENT_PYTHON}"]'})  # fmt: skip
    recipe_file = home / "recipe.toml"
    recipe_file.write_text(text)
    rt.chown_tree(home)
    return Machine(
        rt, home, recipe_file, home / "carla0915", home / "simlingo",
        home / ".local/share/simdoctor/agent-env", commit, hub,
    )  # fmt: skip


def test_dry_run_prints_every_step_with_its_commands_and_sizes_and_changes_nothing(machine: Machine) -> None:
    result = machine.run("setup", "--dry-run", "--no-torch")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    root, work, venv = machine.carla_root, machine.work_dir, machine.venv
    downloads = f"{root}.downloads"
    uv = "/opt/simdoctor-test/venv/bin/uv"
    for line in [
        "1. checkout: no SimLingo checkout at ",
        f"   $ git -c init.defaultBranch=main init -q {work}",
        f"   $ git -C {work} fetch --depth 1 origin {machine.commit}",
        f"   $ env GIT_LFS_SKIP_SMUDGE=1 git -C {work} checkout -q --detach {machine.commit}",
        "2. agent_env: no agent interpreter: ",
        f"   $ env UV_PYTHON_DOWNLOADS=never {uv} venv --seed --python {USER_AGENT_PYTHON} {venv}",
        f"   $ {uv} pip install --dry-run --python {venv}/bin/python --index-url https://pypi.org/simple "
        "torch==2.2.0 torchvision==0.17.0",
        f"   $ {uv} pip install --python {venv}/bin/python -r {venv}/simdoctor-requirements.txt",
        "   --no-torch: torch is resolved, not installed; left out: accelerate, peft, timm, pytorch-lightning",
        "3. carla: ",
        f"download {machine.hub.cdn_url}/Linux/CARLA_0.9.15.tar.gz --local-dir {downloads}",
        "(about 7.81 GiB to download)",
        "4. maps: a fresh CARLA has no AdditionalMaps  [fixes carla.maps]",
        f"   $ cd {root} && bash ImportAssets.sh",
        f"download RenzKa/simlingo --revision 26c7c89e797d4e25bbf640013317af8da26a5454 --local-dir {work}/outputs",
        f"download OpenGVLab/InternVL2-1B --revision main --local-dir {work}/pretrained/InternVL2-1B",
        "7. env: ",
        "about 22.6 GiB to download, ",
    ]:
        assert line in out, line
    assert "client" not in out  # the new env gets the pinned client with the other pins
    assert not root.exists() and not Path(downloads).exists() and not work.exists() and not venv.exists()
    assert not [r for r in machine.hub.log if r.server == "cdn" or "/resolve/" in r.path]


def test_setup_provisions_everything_and_a_second_run_does_nothing(machine: Machine) -> None:
    first = machine.run("setup", "--yes", "--no-torch")
    out = first.stdout
    assert "setup: 7 step(s) done" in out, out + first.stderr
    root, work, r = machine.carla_root, machine.work_dir, load_recipe(machine.recipe_file)
    # the checkout at the pinned commit, not the remote's tip; the weights inside it, ignored by git
    git = ["git", "-c", "safe.directory=*", "-C", str(work)]
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert head.strip() == machine.commit and not (work / "README.md").exists()
    assert (work / "Bench2Drive/leaderboard/leaderboard/leaderboard_evaluator.py").is_file()
    # the agent env: the pins installed for real, torch resolved only
    python = machine.venv / "bin" / "python"
    versions = subprocess.run(
        [str(python), "-c", "import carla, six, transformers; print(six.__version__, transformers.__version__)"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert versions.stdout.split() == ["1.16.0", "4.46.3"], versions.stderr
    assert subprocess.run([str(python), "-c", "import torch"], capture_output=True).returncode != 0
    assert "Would install" in first.stderr or "Would install" in out  # uv's dry run of torch
    # CARLA unpacked, AdditionalMaps imported, archives gone
    assert (root / r.carla.launcher).is_file() and (root / r.carla.version_file).read_text().strip() == "0.9.15"
    assert {p.stem for p in (root / r.carla.maps_dir).glob("*.xodr")} >= {"Town01", "Town12", "Town13"}
    assert not Path(f"{root}.downloads").exists()
    for local_dir, rel in [(work / "outputs", r.weights.checkpoint), (work / "pretrained/InternVL2-1B", "config.json")]:
        record = manifest.read(local_dir)
        assert record is not None and manifest.still_verified(local_dir / rel, record.files[rel])
    # InternVL2-1B also resolves by hub name offline: huggingface_hub's cache layout, blobs hard-linked to the
    # verified files (one copy of the bytes), snapshot entries relative links to the blobs, refs/main the commit
    base_dir = work / "pretrained/InternVL2-1B"
    folder = machine.home / ".cache/huggingface/hub/models--OpenGVLab--InternVL2-1B"
    commit = (folder / "refs" / "main").read_text()
    record = manifest.read(base_dir)
    assert record.source.endswith(f"@{commit}")
    for rel, entry in record.files.items():
        blob = folder / "blobs" / (entry.sha256 or entry.git_sha1)
        pointer = folder / "snapshots" / commit / rel
        assert os.readlink(pointer) == os.path.relpath(blob, pointer.parent)
        assert blob.stat().st_ino == (base_dir / rel).stat().st_ino and blob.stat().st_nlink == 2
    status = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True)
    assert (
        status.returncode == 0 and status.stdout == ""
    )  # outputs/ and pretrained/ are the checkout's own ignored folders
    # each step's wall time, and the check it ended with
    assert re.search(r"\(agent_env: [0-9.]+ s\)", out)
    for title in ["SimLingo checkout", "Agent interpreter", "CARLA version", "SimLingo checkpoint", "InternVL2-1B",
                  "InternVL2-1B by hub name (offline)"]:  # fmt: skip
        assert f"✓ {title}" in out, title

    before = len(machine.hub.log)
    second = machine.run("setup", "--yes", "--no-torch")
    assert second.stdout.startswith("nothing to do: every step is already done"), second.stdout
    assert len(machine.hub.log) == before

    # a setup killed while it filled the agent env: the next one installs what is missing, no new venv
    uv = "/opt/simdoctor-test/venv/bin/uv"
    gone = subprocess.run(machine.rt.command([uv, "pip", "uninstall", "-q", "--python", str(python), "six"]),
                          env=machine.rt.env(machine.home), capture_output=True, text=True)  # fmt: skip
    assert gone.returncode == 0, gone.stderr
    third = machine.run("setup", "--yes", "--no-torch")
    assert "agent_env: the agent env setup makes lacks six (an interrupted setup?)" in third.stdout, third.stdout
    assert f"{uv} venv " not in third.stdout and "setup: 1 step(s) done" in third.stdout
    assert subprocess.run([str(python), "-c", "import six"]).returncode == 0


def test_an_interrupted_clone_carries_on(machine: Machine) -> None:
    work = machine.work_dir
    url = load_recipe(machine.recipe_file).agent.repo_url
    # what a killed first run leaves: the repository made and named, nothing fetched or checked out
    for args in (["init", "-q", str(work)], ["-C", str(work), "remote", "add", "origin", url]):
        subprocess.run(machine.rt.command(["git", *args]), check=True, env=machine.rt.env(machine.home))
    check = machine.run("check", "--only", "agent.checkout")
    assert "unfinished clone" in check.stdout
    plan = machine.run("setup", "--dry-run", "--only", "checkout")
    assert " init " not in plan.stdout and "remote add" not in plan.stdout and "fetch --depth 1" in plan.stdout
    done = machine.run("setup", "--yes", "--only", "checkout")
    assert "setup: 1 step(s) done" in done.stdout, done.stdout + done.stderr
    assert "✓ SimLingo checkout" in machine.run("check", "--only", "agent.checkout").stdout


def test_a_foreign_folder_is_refused_with_the_way_out(machine: Machine) -> None:
    work = machine.work_dir
    work.mkdir()
    (work / "notes.txt").write_text("mine\n")
    machine.rt.chown_tree(work)
    done = machine.run("setup", "--yes", "--only", "checkout,weights")
    assert done.returncode == 1
    assert f"cannot run: {work} is not a SimLingo checkout; move it away first: mv {work} {work}.old" in done.stdout
    assert "weights" in done.stdout and "not run: checkout failed" in done.stdout
    assert sorted(p.name for p in work.iterdir()) == ["notes.txt"]  # nothing written into it


def test_the_conda_path_creates_the_env_from_environment_yaml(machine: Machine) -> None:
    conda = machine.home / "miniconda3" / "bin" / "conda"
    conda.parent.mkdir(parents=True)
    shutil.copy(STANDINS / "conda", conda)
    machine.rt.chown_tree(machine.home / "miniconda3")
    plan = machine.run("setup", "--dry-run", "--only", "checkout", "--only", "agent_env")
    assert f"   $ {conda} env create -f {machine.work_dir}/environment.yaml" in plan.stdout, plan.stdout
    base = subprocess.run([USER_AGENT_PYTHON, "-c", "import sys; print(sys._base_executable)"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    done = machine.run("setup", "--yes", "--only=checkout,agent_env", STANDIN_CONDA_PYTHON=base)
    assert "setup: 2 step(s) done" in done.stdout, done.stdout + done.stderr
    python = machine.home / "miniconda3" / "envs" / "simlingo" / "bin" / "python"
    six = subprocess.run([str(python), "-c", "import six; print(six.__version__)"], capture_output=True, text=True)
    assert six.stdout.strip() == "1.16.0"
    assert "✓ Agent interpreter" in done.stdout and str(python) in done.stdout


def test_a_conda_elsewhere_on_path_has_its_env_remembered_in_the_config(machine: Machine) -> None:
    conda = machine.home / "tools" / "conda" / "bin" / "conda"
    conda.parent.mkdir(parents=True)
    shutil.copy(STANDINS / "conda", conda)
    machine.rt.chown_tree(machine.home / "tools")
    base = subprocess.run([USER_AGENT_PYTHON, "-c", "import sys; print(sys._base_executable)"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    path = f"{conda.parent}:/usr/local/bin:/usr/bin:/bin"
    done = machine.run("setup", "--yes", "--only=checkout,agent_env", STANDIN_CONDA_PYTHON=base, PATH=path)
    assert "setup: 2 step(s) done" in done.stdout, done.stdout + done.stderr
    python = machine.home / "tools" / "conda" / "envs" / "simlingo" / "bin" / "python"
    assert f'agent_python = "{python}"' in (machine.home / "config.toml").read_text()
    assert "✓ Agent interpreter" in done.stdout and str(python) in done.stdout


def test_only_takes_several_steps_and_usage_errors(machine: Machine) -> None:
    only = machine.run("setup", "--yes", "--only", "env,checkout")
    assert "setup: 2 step(s) done" in only.stdout, only.stdout + only.stderr
    assert not machine.carla_root.exists()
    again = machine.run("setup", "--yes", "--only", "env", "--only", "checkout")
    assert again.stdout.startswith("nothing to do: steps env, checkout are already done"), again.stdout
    unknown = machine.run("setup", "--only", "env,gpu")
    assert unknown.returncode == 2 and "unknown step 'gpu'" in unknown.stderr
    no_terminal = machine.run("setup")
    assert no_terminal.returncode == 2 and "pass --yes" in no_terminal.stderr
    not_root = machine.run("setup", "--user", "carla", "--dry-run")
    assert not_root.returncode == 2 and "--user is for root" in not_root.stderr


def test_the_plan_warns_before_the_disk_runs_out(machine: Machine) -> None:
    """CARLA_ROOT on a real 64 MiB filesystem (a tmpfs root mounts): CARLA and its maps need 34 GiB there."""
    small = machine.home / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(small)], check=True)
    try:
        machine.rt.chown_tree(small)
        machine.carla_root = small / "carla0915"
        out = machine.run("setup", "--dry-run", "--only", "carla,maps").stdout
        assert f"warning: 34.0 GiB are needed on the filesystem of {small}, which has 0.1 GiB free" in out, out
        roomy = machine.run("setup", "--dry-run", "--only", "env,base_model").stdout
        assert "warning" not in roomy
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_root_plans_the_hand_over_to_a_normal_user(simdoctor) -> None:
    assert os.geteuid() == 0, "CI runs as root"
    out = simdoctor("setup", "--dry-run", "--user", "sd-nobody-here").stdout
    assert "as root: " in out and "then the rest as sd-nobody-here" in out
    assert "$ useradd --create-home --shell /bin/bash sd-nobody-here" in out
    home = "/home/sd-nobody-here"
    assert f"ln -sfn {home}/.local/share/simdoctor/venv/bin/simdoctor {home}/.local/bin/simdoctor" in out
    assert f"as sd-nobody-here: $ runuser -u sd-nobody-here -- {home}/.local/bin/simdoctor setup --dry-run" in out
    assert not Path(home).exists()
    bad = simdoctor("setup", "--dry-run", "--user", "root")
    assert bad.returncode == 2 and "give the name of a normal user" in bad.stderr
