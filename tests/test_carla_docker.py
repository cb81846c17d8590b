"""The docker backend against a real Docker daemon (tests/conftest.py `dockerd`) and the stand-in CARLA
image built locally; simdoctor runs as root here, which the docker backend allows."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import docker
import pytest

from simdoctor.config.recipe import DEFAULT_RECIPE, bundled_recipe_dirs
from simdoctor.system import procs
from tests.conftest import REPO, DockerDaemon, free_port

LAUNCHER = "/home/carla/CarlaUE4.sh"


@pytest.fixture
def recipe(tmp_path: Path, dockerd: DockerDaemon) -> Path:
    """The bundled recipe with the stand-in image as its docker_image."""
    source = next(
        d / f"{DEFAULT_RECIPE}.toml" for d in bundled_recipe_dirs() if (d / f"{DEFAULT_RECIPE}.toml").is_file()
    )
    text = source.read_text().replace('docker_image = "carlasim/carla:0.9.15"', f'docker_image = "{dockerd.image}"')
    assert dockerd.image in text
    path = tmp_path / "recipe.toml"
    path.write_text(text)
    return path


@pytest.fixture
def client(dockerd: DockerDaemon):
    c = docker.DockerClient(base_url=dockerd.host, timeout=60)
    yield c
    leftovers = c.containers.list(all=True, filters={"label": "simdoctor=carla"})
    for container in leftovers:
        container.remove(force=True)
    c.close()
    assert not leftovers, [x.name for x in leftovers]


def simdoctor(dockerd: DockerDaemon, home: Path, *args: str, path: str = "") -> subprocess.CompletedProcess:
    env = {
        "HOME": str(home),
        "PATH": f"{path}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".lstrip(":"),
        "DOCKER_HOST": dockerd.host,
        "SIMDOCTOR_STATE_DIR": str(home / "state"),
        "SIMDOCTOR_CONFIG": str(home / "config.toml"),
        "SIMDOCTOR_CARLA_PORT": str(free_port(8)),
        "NO_COLOR": "1",
    }
    return subprocess.run([sys.executable, "-m", "simdoctor", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def test_docker_start_inspect_and_stop(tmp_path: Path, dockerd: DockerDaemon, recipe: Path, client) -> None:
    done = simdoctor(dockerd, tmp_path, "carla", "start", "--backend", "docker", "--gpu", "0", "--json",
                     "--recipe", str(recipe))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout)
    assert out["status"] == "ready" and out["ready"]["version"] == "0.9.15"
    record = out["record"]
    port = record["port"]
    assert record["backend"] == "docker" and record["container_name"] == f"simdoctor-carla-{port}"
    assert "NVML is not available here" in " ".join(out["notes"])
    container = client.containers.get(record["container_id"])
    attrs = container.attrs
    assert attrs["Name"] == f"/simdoctor-carla-{port}"
    assert attrs["HostConfig"]["NetworkMode"] == "host"
    assert attrs["Config"]["User"] == "carla"
    assert attrs["Config"]["Cmd"] == [LAUNCHER, "-RenderOffScreen", "-nosound", f"-carla-rpc-port={port}",
                                      "-graphicsadapter=0", "-quality-level=Epic"]  # fmt: skip
    (request,) = attrs["HostConfig"]["DeviceRequests"]
    assert request["Driver"] == "nvidia" and request["DeviceIDs"] == ["0"]
    assert "graphics" in request["Capabilities"][0] and "gpu" in request["Capabilities"][0]
    assert "NVIDIA_DRIVER_CAPABILITIES=all" in attrs["Config"]["Env"]
    assert attrs["Config"]["Labels"]["simdoctor"] == "carla"
    assert attrs["Config"]["Labels"]["simdoctor.port"] == str(port)
    assert attrs["HostConfig"]["Init"] is True
    # the server inside really runs as the image's non-root user: its host processes are uid 1000
    root_pid = attrs["State"]["Pid"]
    shipping = [p for p in procs.processes() if procs.matches_name(p, "CarlaUE4-Linux-Shipping")
                and root_pid in (p.ppid, procs.process(p.ppid).ppid if procs.process(p.ppid) else 0)]  # fmt: skip
    assert shipping and all(p.uid == 1000 for p in shipping)
    # the log file gets the container's output (the follower streams it)
    log = Path(record["log"])
    deadline = time.monotonic() + 10
    while "LogVulkanRHI: Display: Using Device 0" not in log.read_text():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    status = json.loads(simdoctor(dockerd, tmp_path, "carla", "status", "--json", "--recipe", str(recipe)).stdout)
    mine = [s for s in status["servers"] if s["started_by_simdoctor"]]
    assert mine[0]["alive"] and mine[0]["version"] == "0.9.15" and mine[0]["backend"] == "docker"
    assert not [s for s in status["servers"] if not s["started_by_simdoctor"]]  # its processes are not orphans

    stop = simdoctor(dockerd, tmp_path, "carla", "stop", str(port), "--recipe", str(recipe))
    assert stop.returncode == 0, stop.stdout + stop.stderr
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(record["container_id"])
    assert not [p for p in shipping if procs.is_alive(p.pid)]
    assert not list((tmp_path / "state" / "carla").glob("*.json"))


def test_docker_crash_is_diagnosed_from_the_container_log(
    tmp_path: Path, dockerd: DockerDaemon, recipe: Path, client
) -> None:
    # an image whose stand-in crashes with a Vulkan line before `Signal 11 caught.`
    base = client.containers.create(dockerd.image, command=["/bin/sh"])
    data = json.dumps({"fail": "signal11"}).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("standin.json")
        info.size, info.uid, info.gid = len(data), 1000, 1000
        tar.addfile(info, io.BytesIO(data))
    base.put_archive("/home/carla", buf.getvalue())
    crashing = "simdoctor-test/carla-standin:crash"
    base.commit(repository=crashing.split(":")[0], tag="crash")
    base.remove()
    text = recipe.read_text().replace(dockerd.image, crashing)
    recipe.write_text(text)
    done = simdoctor(dockerd, tmp_path, "carla", "start", "--backend", "docker", "--gpu", "none", "--json",
                     "--recipe", str(recipe))  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    out = json.loads(done.stdout)
    assert out["status"] == "failed"
    trailer = next(d for d in out["diagnoses"] if d["key"] == "signal11")
    assert trailer["lines"][0].startswith("LogVulkanRHI: Error")
    assert client.containers.list(all=True, filters={"label": "simdoctor=carla"}) == []
    client.images.remove(crashing)


def test_docker_missing_image_is_refused(tmp_path: Path, dockerd: DockerDaemon, recipe: Path, client) -> None:
    recipe.write_text(recipe.read_text().replace(dockerd.image, "simdoctor-test/absent:1"))
    done = simdoctor(dockerd, tmp_path, "carla", "start", "--backend", "docker", "--recipe", str(recipe))
    assert done.returncode == 1
    assert "is not on this machine" in done.stderr and "docker pull simdoctor-test/absent:1" in done.stderr


def test_check_backend_docker(tmp_path: Path, dockerd: DockerDaemon, recipe: Path) -> None:
    without = simdoctor(dockerd, tmp_path, "check", "--backend", "docker", "--only", "docker", "--json",
                        "--recipe", str(recipe))  # fmt: skip
    found = {r["id"]: r for r in json.loads(without.stdout)["results"]}
    assert found["docker.daemon"]["status"] == "ok" and "20.10" in found["docker.daemon"]["summary"]
    assert found["docker.image"]["status"] == "ok" and "user carla" in found["docker.image"]["summary"]
    assert found["docker.sdk"]["status"] == "ok"
    hook_visible = found["docker.nvidia"]["status"] == "ok"
    assert not hook_visible or "/usr" in found["docker.nvidia"]["summary"]  # only a real toolkit
    with_hook = simdoctor(dockerd, tmp_path, "check", "--backend", "docker", "--only", "docker", "--json",
                          "--recipe", str(recipe), path=str(dockerd.hook_dir))  # fmt: skip
    found = {r["id"]: r for r in json.loads(with_hook.stdout)["results"]}
    assert found["docker.nvidia"]["status"] == "ok"
    # without the docker backend there are no docker findings at all
    plain = simdoctor(dockerd, tmp_path, "check", "--json", "--recipe", str(recipe))
    assert not [r for r in json.loads(plain.stdout)["results"] if r["group"] == "docker"]


def test_check_never_imports_the_docker_sdk(tmp_path: Path, dockerd: DockerDaemon) -> None:
    code = (
        "import sys\nfrom simdoctor.doctor import diagnosis\nfrom simdoctor.config.settings import load_settings\n"
        "diagnosis.run(load_settings(), backend='docker', json_out=True)\n"
        "assert 'docker' not in sys.modules, 'docker SDK imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env={"DOCKER_HOST": dockerd.host, "HOME": str(tmp_path),
                          "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
