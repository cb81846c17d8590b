"""The docker backend: the recipe's CARLA image, on the host network, on one GPU, as a non-root user.

- GPU: a DeviceRequest for the chosen GPU (by UUID) with the recipe's capabilities, `graphics`
  among them (Vulkan needs it), plus NVIDIA_DRIVER_CAPABILITIES=all in the environment.
- `-graphicsadapter=0`: inside the container the NVIDIA runtime shows only the requested GPU, and
  the upstream image carries no other Vulkan driver, so that GPU is Vulkan device 0 (UE4 indexes
  devices in enumeration order, reference/carla.md §2). The host's Vulkan index would be wrong
  there for any GPU but the first. The server log's LogVulkanRHI lines confirm the device.
- User: the image's own user (`carla` upstream); an image that runs as root is refused, since
  CARLA refuses root. So this backend may be used by root.
- Stopping: the container runs under docker's init (tini) with TINI_KILL_PROCESS_GROUP=1, so
  `docker stop` TERMs the launcher script and the shipping binary alike; then it is removed.
- Logs: a small follower process (`python -m simdoctor.carla.docker follow ID`, in its own
  process tree) streams the container's output into the server's log file.

The docker SDK is imported only here and only when this backend is used; `simdoctor check`
talks to the daemon through simdoctor.doctor.probes.docker instead.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

from simdoctor.carla.errors import Refusal
from simdoctor.carla.process import Launched
from simdoctor.config.recipe import CarlaRecipe
from simdoctor.doctor.findings import Fix
from simdoctor.system import extras, procs, proctree
from simdoctor.system.proctree import StopResult
from simdoctor.system.serverstate import ServerRecord, hostname

LABEL = "simdoctor"
API_TIMEOUT_S = 30
FOLLOW_STOP_S = 3.0
ROOT_USERS = ("", "root", "0")


def sdk() -> Any:
    try:
        import docker
    except ImportError:
        raise Refusal(
            "the docker backend needs the docker Python package, which is not installed",
            Fix("Install it into simdoctor's interpreter.", [extras.install_command("docker")]),
        ) from None
    return docker


def client() -> Any:
    docker = sdk()
    try:
        c = docker.from_env(timeout=API_TIMEOUT_S)
        c.ping()
    except docker.errors.DockerException as exc:
        raise Refusal(
            f"cannot reach the Docker daemon: {exc}",
            Fix(
                "Start the daemon, and make sure you may use its socket (the docker group).",
                ["sudo systemctl start docker", "sudo usermod -aG docker $USER", "simdoctor check --backend docker"],
            ),
        ) from None
    return c


@dataclass(frozen=True)
class Image:
    name: str
    user: str


def image(c: Any, name: str) -> Image:
    """The recipe's image, present locally and running as a non-root user; never pulled implicitly."""
    docker = sdk()
    try:
        found = c.images.get(name)
    except docker.errors.ImageNotFound:
        raise Refusal(
            f"the image {name} is not on this machine",
            Fix("Pull it (about 10 GB), or build containers/carla/Dockerfile on top of it.", [f"docker pull {name}"]),
        ) from None
    user = (found.attrs.get("Config") or {}).get("User") or ""
    if user.split(":", 1)[0] in ROOT_USERS:
        raise Refusal(
            f"the image {name} runs as root: CARLA refuses to run as root",
            Fix("Use the upstream image (USER carla) or one built from containers/carla/Dockerfile."),
        )
    return Image(name, user)


def container_name(carla: CarlaRecipe, port: int) -> str:
    return f"{carla.docker_name_prefix}-{port}"


def remove_stale(c: Any, name: str) -> None:
    """A stopped container of that name (left by a crash) is removed; a running one is refused."""
    docker = sdk()
    try:
        old = c.containers.get(name)
    except docker.errors.NotFound:
        return
    if old.status == "running":
        raise Refusal(
            f"container {name} is already running",
            Fix("Stop it first.", [f"docker rm -f {name}"]),
        )
    old.remove(force=True)


class DockerBackend:
    name = "docker"

    def __init__(self, carla: CarlaRecipe) -> None:
        self.carla = carla
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = client()
        return self._client

    def launch(self, record: ServerRecord, img: Image, device_id: Optional[str], display: Optional[str]) -> Launched:
        docker = sdk()
        remove_stale(self.client, record.container_name or "")
        environment = {"NVIDIA_DRIVER_CAPABILITIES": "all", "TINI_KILL_PROCESS_GROUP": "1"}
        volumes = {}
        if display:
            environment["DISPLAY"] = display
            volumes["/tmp/.X11-unix"] = {"bind": "/tmp/.X11-unix", "mode": "rw"}
        requests = []
        if device_id is not None:
            requests.append(
                docker.types.DeviceRequest(
                    driver="nvidia", device_ids=[device_id], capabilities=[list(self.carla.docker_capabilities)]
                )
            )
        labels = {LABEL: "carla", f"{LABEL}.port": str(record.port), f"{LABEL}.host": hostname()}
        if record.gpu_uuid:
            labels[f"{LABEL}.gpu"] = record.gpu_uuid
        try:
            container = self.client.containers.run(
                img.name,
                command=record.command,
                name=record.container_name,
                detach=True,
                network_mode="host",
                user=img.user,
                environment=environment,
                labels=labels,
                init=True,
                device_requests=requests,
                volumes=volumes,
                working_dir=self.carla.docker_carla_root,
            )
        except docker.errors.APIError as exc:
            raise Refusal(
                f"Docker could not start the container: {exc.explanation or exc}",
                Fix(
                    "A GPU request needs the NVIDIA Container Toolkit; see what the docker checks say.",
                    ["simdoctor check --backend docker --only docker -v"],
                ),
            ) from None
        follower = [sys.executable, "-m", "simdoctor.carla.docker", "follow", container.id]
        popen, tree = proctree.start(follower, Path(record.log))
        return Launched(replace(record, container_id=container.id, tree=tree), popen)

    def _container(self, record: ServerRecord) -> Any:
        docker = sdk()
        try:
            return self.client.containers.get(record.container_id or record.container_name)
        except docker.errors.NotFound:
            return None

    def pids(self, record: ServerRecord) -> set[int]:
        """Host pids of the container's processes (NVML lists host pids)."""
        container = self._container(record)
        if container is None or container.status != "running":
            return set()
        root = int((container.attrs.get("State") or {}).get("Pid") or 0)
        if not root:
            return set()
        table = procs.processes()
        return proctree.descendants({root}, table) & {p.pid for p in table}

    def alive(self, record: ServerRecord, launched: Optional[Launched] = None) -> bool:
        container = self._container(record)
        return container is not None and container.status == "running"

    def log_text(self, record: ServerRecord) -> str:
        container = self._container(record)
        if container is not None:
            return container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
        return proctree.read_log(Path(record.log))

    def exit_status(self, launched: Launched) -> Optional[int]:
        container = self._container(launched.record)
        if container is None:
            return None
        return (container.attrs.get("State") or {}).get("ExitCode")

    def stop(self, record: ServerRecord, grace: float, launched: Optional[Launched] = None) -> StopResult:
        """`docker stop` (TERM, KILL after `grace`), remove the container, then the log follower."""
        before = [p for p in map(procs.process, self.pids(record)) if p is not None]
        container = self._container(record)
        if container is not None:
            container.stop(timeout=max(1, round(grace)))
            container.remove(force=True)
        if self._container(record) is not None:
            raise Refusal(
                f"container {record.container_name} could not be removed",
                Fix("", [f"docker rm -f {record.container_name}"]),
            )
        follower = StopResult()
        if record.tree is not None:
            follower = proctree.stop(record.tree, FOLLOW_STOP_S, popen=launched.popen if launched else None)
        left = [p for p in before if (cur := procs.process(p.pid)) is not None and cur.start_ticks == p.start_ticks]
        return StopResult(
            terminated=[p.pid for p in before],
            killed=follower.killed,
            left=left + follower.left,
            denied=follower.denied,
            seconds=follower.seconds,
        )


def follow(container_id: str) -> int:
    """Copy a container's output to stdout (the server's log file) until the container ends."""
    docker = sdk()
    c = docker.from_env(timeout=None)
    try:
        container = c.containers.get(container_id)
        for chunk in container.logs(stream=True, follow=True, stdout=True, stderr=True):
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
    except docker.errors.NotFound:
        return 0
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "follow":
        sys.exit(follow(sys.argv[2]))
    sys.exit("usage: python -m simdoctor.carla.docker follow CONTAINER")
