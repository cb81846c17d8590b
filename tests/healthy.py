"""Hand-built facts of a healthy GPU server, for testing verdicts one broken fact at a time.

The machine: an H100 node on Ubuntu 22.04 (NVIDIA driver 580 from apt, CUDA 13.0), one GPU that
the Vulkan loader lists first as a DISCRETE_GPU with the NVML UUID, DISPLAY unset, CARLA 0.9.15
with every Bench2Drive town at the recipe's CARLA_ROOT, its ports free and no server running, the
SimLingo conda env (Python 3.8, carla 0.9.15, torch 2.2.0+cu121, transformers 4.46.3) with the
evaluator's modules importable, the weights downloaded and verified, Hugging Face reachable.

Every value is one of the probes' own dataclasses, as the probes would fill them; paths come from
the settings (HOME is a test directory), so the facts agree with the recipe the checks read.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from builders import BENCH2DRIVE_TOWNS

from simdoctor.config.agentenv import pythonpath
from simdoctor.config.settings import Settings
from simdoctor.doctor import distro
from simdoctor.doctor.checking import CheckContext
from simdoctor.doctor.probes.agent import AgentFacts, CarlaImport, ModuleState, NodeFacts, TorchBuild
from simdoctor.doctor.probes.carla import CarlaInstallFacts, FileState
from simdoctor.doctor.probes.checkout import CheckoutFacts
from simdoctor.doctor.probes.display import DisplayFacts
from simdoctor.doctor.probes.docker import DockerFacts
from simdoctor.doctor.probes.gpu import GRAPHICS_LIBS, GpuDevice, GpuFacts
from simdoctor.doctor.probes.network import NetworkFacts
from simdoctor.doctor.probes.packages import PackagesFacts, wanted
from simdoctor.doctor.probes.ports import PortsFacts, PortState, carla_ports
from simdoctor.doctor.probes.server import ServerFacts
from simdoctor.doctor.probes.servers import ServersFacts
from simdoctor.doctor.probes.slurm import SlurmFacts, SlurmJobFacts
from simdoctor.doctor.probes.system import DiskSpace, OsRelease, SystemFacts
from simdoctor.doctor.probes.viz import VizFacts
from simdoctor.doctor.probes.vulkan import (
    NVIDIA_VENDOR_ID,
    Enumeration,
    IcdFile,
    VkDevice,
    VulkanFacts,
    icd_search_dirs,
)
from simdoctor.doctor.probes.weights import WeightFile, WeightsFacts
from simdoctor.doctor.probes.window import WindowFacts
from simdoctor.doctor.probing import Facts
from simdoctor.download.hfcache import CachedRepo
from simdoctor.system.slurm import Partition

GIB = 2**30
DRIVER = "580.95.05"
CUDA_DRIVER = "13.0"
GPU_NAME = "NVIDIA H100 80GB HBM3"
# NVML names a GPU `GPU-<uuid>`; Vulkan's deviceUUID is the same <uuid> (reference/carla.md §6).
VK_UUID = "5f2b8c1e-3d4a-4b6c-9e7f-0a1b2c3d4e5f"
GPU_UUID = f"GPU-{VK_UUID}"
LIB_DIR = "/usr/lib/x86_64-linux-gnu"
NVIDIA_ICD = "/usr/share/vulkan/icd.d/nvidia_icd.json"
# What `dpkg` lists for Ubuntu's packaged 580 driver (desktop flavour, with its graphics part).
DRIVER_PACKAGES = ["libnvidia-compute-580", "libnvidia-gl-580", "nvidia-driver-580", "nvidia-utils-580"]
WEIGHT_SIZES = {  # by file name
    "pytorch_model.pt": 2_263_412_778,
    "config.yaml": 6_120,
    "config.json": 4_137,
    "conversation.py": 15_284,
    "model.safetensors": 1_876_440_584,
    "tokenizer_config.json": 4_236,
}


@pytest.fixture(name="settings")
def settings_fixture(make_settings) -> Settings:
    """The default recipe with nothing overridden, for an isolated HOME (conftest's `home`)."""
    return make_settings()


def context(settings: Settings, **intent: object) -> CheckContext:
    """What the user asked for: --window, --deep, --backend (defaults: off-screen, shallow, process)."""
    return CheckContext(settings, **intent)


def gpu_device(index: int = 0, uuid: str = GPU_UUID, capability: str = "9.0") -> GpuDevice:
    return GpuDevice(
        index=index,
        name=GPU_NAME,
        uuid=uuid,
        pci_bus_id=f"00000000:{0x18 + index:02X}:00.0",
        memory_total_bytes=85_520_809_984,
        memory_used_bytes=503_316_480,
        memory_free_bytes=85_017_493_504,
        compute_capability=capability,
        processes=[],
    )


def vk_device(index: int = 0, uuid: str = VK_UUID) -> VkDevice:
    """The NVIDIA ICD's view of a GPU, as the loader enumerates it."""
    return VkDevice(
        index=index,
        name=GPU_NAME,
        type="DISCRETE_GPU",
        vendor_id=NVIDIA_VENDOR_ID,
        device_id=0x2330,
        api_version="1.4.312",
        driver_version=2_435_301_632,
        uuid=uuid,
        driver_name="NVIDIA",
        driver_info=DRIVER,
    )


def llvmpipe(index: int = 0) -> VkDevice:
    """Mesa's lavapipe as the loader lists it on the test machine (reference/test-environment.md)."""
    return VkDevice(
        index=index,
        name="llvmpipe (LLVM 15.0.6, 256 bits)",
        type="CPU",
        vendor_id=0x10005,
        device_id=0,
        api_version="1.3.238",
        driver_version=1,
        uuid="6d657361-3233-2e31-2e32-000000000000",
        driver_name="llvmpipe",
        driver_info="Mesa 22.3.6 (LLVM 15.0.6)",
    )


def icd(path: str = NVIDIA_ICD, library: str = "libGLX_nvidia.so.0", resolved: bool = True) -> IcdFile:
    return IcdFile(
        path=path,
        real_path=path,
        library_path=library,
        library_resolved=f"{LIB_DIR}/{library}" if resolved else None,
        api_version="1.4.312",
        is_nvidia="nvidia" in library.lower(),
    )


def lavapipe_icd() -> IcdFile:
    return icd("/usr/share/vulkan/icd.d/lvp_icd.x86_64.json", "libvulkan_lvp.so")


def system(settings: Settings) -> SystemFacts:
    home = str(Path.home())
    disks = [
        DiskSpace(purpose, path, home, 66306, 812 * GIB, 1760 * GIB)
        for purpose, path in (("carla", str(settings.carla_root)), ("weights", settings.recipe.weights.local_dir))
    ]
    return SystemFacts(
        os_name="Ubuntu 22.04.4 LTS",
        kernel="5.15.0-119-generic",
        arch="x86_64",
        glibc="2.35",
        cpu_model="Intel(R) Xeon(R) Platinum 8480+",
        cpu_count=32,
        cpus_usable=32,
        mem_total_bytes=251 * GIB,
        mem_available_bytes=238 * GIB,
        euid=1000,
        user="researcher",
        disks=disks,
        os_release=OsRelease("ubuntu", ["debian"], "22.04", "Ubuntu 22.04.4 LTS"),
        sudo="/usr/bin/sudo",
    )


def gpu() -> GpuFacts:
    return GpuFacts(
        nvml_error=None,
        driver_version=DRIVER,
        cuda_driver_version=CUDA_DRIVER,
        gpus=[gpu_device()],
        graphics_libs={name: f"{LIB_DIR}/{name}" for name in GRAPHICS_LIBS},
        driver_packages=list(DRIVER_PACKAGES),
    )


def vulkan() -> VulkanFacts:
    return VulkanFacts(
        loader=f"{LIB_DIR}/libvulkan.so.1",
        variables={},
        search_dirs=icd_search_dirs({"HOME": str(Path.home())}),
        icds=[icd()],
        enumeration=Enumeration(ok=True, devices=[vk_device()]),
    )


def display() -> DisplayFacts:
    return DisplayFacts(
        display=None, wayland_display=None, server=None, socket=None, glxinfo=None, glx=None, vglrun=None
    )


def carla(settings: Settings) -> CarlaInstallFacts:
    c = settings.recipe.carla
    root = Path(settings.carla_root)
    return CarlaInstallFacts(
        setting=str(root),
        setting_source="recipe",
        root=str(root),
        found_by_search=False,
        searched=[str(root)],
        launcher=FileState(str(root / c.launcher), True, True),
        binary=FileState(str(root / c.binary), True, True),
        version="0.9.15",
        maps=sorted(BENCH2DRIVE_TOWNS),
        import_pending=[],
        routes_file=settings.recipe.routes.file,
        routes_towns=sorted(BENCH2DRIVE_TOWNS),
    )


def ports(settings: Settings) -> PortsFacts:
    roles = carla_ports(settings.recipe.carla, settings.carla_port)
    return PortsFacts(
        host=settings.carla_host,
        local=True,
        ports=[PortState(role, port, False, [], None, False) for role, port in roles.items()],
    )


def server(settings: Settings) -> ServerFacts:
    return ServerFacts(settings.carla_host, settings.carla_port, False, None, None, "Connection refused")


def agent_python(settings: Settings) -> str:
    """The first recipe candidate: SimLingo's conda env under miniconda."""
    return settings.recipe.agent.python_candidates[0]


def site_packages(settings: Settings) -> str:
    return str(Path(agent_python(settings)).parent.parent / "lib" / "python3.8" / "site-packages")


def agent(settings: Settings) -> AgentFacts:
    a = settings.recipe.agent
    python = agent_python(settings)
    site = site_packages(settings)
    modules = {
        name: ModuleState(True, f"{entry}/{name.replace('.', '/')}/__init__.py", None)
        for name, entry in a.modules.items()
    }
    return AgentFacts(
        requested="",
        source="recipe",
        python=python,
        tried=[python],
        error=None,
        pythonpath=pythonpath(settings),
        version="3.8.18",
        executable=python,
        packages=dict(a.packages),
        carla=CarlaImport(True, f"{site}/carla/__init__.py", None),
        modules=modules,
        agent=ModuleState(True, a.file, None, file_exists=True),
        torch=TorchBuild(f"{site}/torch/version.py", "2.2.0+cu121", "12.1"),
        deep=None,
    )


def weight_file(role: str, repo: str, local_dir: str, relpath: str) -> WeightFile:
    size = WEIGHT_SIZES[Path(relpath).name]
    return WeightFile(role, repo, local_dir, relpath, True, size, False, [], True, True)


BASE_COMMIT = "9f5a5c3e0c0e9a1f2b3c4d5e6f708192a3b4c5d6"  # the base model's commit, made up


def weights(settings: Settings) -> WeightsFacts:
    w, b = settings.recipe.weights, settings.recipe.base_model
    files = [
        weight_file("checkpoint", w.repo, w.local_dir, w.checkpoint),
        weight_file("config", w.repo, w.local_dir, w.config),
    ]
    files += [weight_file("base_model", b.repo, b.local_dir, rel) for rel in b.required]
    cache = f"{Path(settings.recipe.carla.search[0]).parent.parent}/.cache/huggingface/hub"
    folder = f"{cache}/models--{b.repo.replace('/', '--')}"
    return WeightsFacts(files, CachedRepo(cache, folder, b.revision, BASE_COMMIT, [], BASE_COMMIT))


def network(settings: Settings) -> NetworkFacts:
    return NetworkFacts(settings.hf_endpoint, "huggingface.co", 443, True, 0.021, None)


def docker(settings: Settings) -> DockerFacts:
    """A daemon with the NVIDIA Container Toolkit registered and the upstream image pulled."""
    return DockerFacts(
        host="unix:///var/run/docker.sock",
        reachable=True,
        error=None,
        server_version="27.3.1",
        runtimes=["io.containerd.runc.v2", "nvidia", "runc"],
        default_runtime="runc",
        nvidia_hook="/usr/bin/nvidia-container-runtime-hook",
        nvidia_ctk="/usr/bin/nvidia-ctk",
        cdi_specs=[],
        image=settings.recipe.carla.docker_image,
        image_present=True,
        image_user="carla",
        sdk_installed=True,
    )


def carla_servers() -> ServersFacts:
    return ServersFacts([])  # simdoctor started no CARLA server yet


def breaking(facts: Facts, probe: str, **changes: object) -> Facts:
    """The same facts with one probe's dataclass changed (dataclasses.replace); the rest stays healthy."""
    return Facts({**facts.by_probe, probe: replace(facts.get(probe), **changes)})


CLUSTER_NODES = ["gpu-node-01", "gpu-node-02"]


def slurm(settings: Settings) -> SlurmFacts:
    """A cluster with a default GPU partition of two 4-GPU nodes, accounting on, /shared on Lustre."""
    return SlurmFacts(
        tools={t: f"/usr/bin/{t}" for t in ("sbatch", "squeue", "sacct", "scancel", "sinfo", "scontrol")},
        version="23.11.4",
        controller="Slurmctld(primary) at slurm-head is UP",
        error=None,
        partitions=[
            Partition("gpu", True, "up", CLUSTER_NODES, [4, 4], [64, 64], [512000, 512000]),
            Partition("cpu", False, "up", ["cpu-node-01"], [0], [128], [256000]),
        ],
        requested_partition=settings.slurm_partition,
        accounting_error=None,
        login_host="login-01",
        out_dir="/shared/eval",
        out_mount="/shared",
        out_fstype="lustre",
    )


def slurm_job(settings: Settings) -> SlurmJobFacts:
    """The probe job as it comes back from a healthy GPU node: the agent's facts plus the node's."""
    a = agent(settings)
    node = NodeFacts(
        hostname="gpu-node-01",
        variables={"SLURM_JOB_ID": "4242", "CUDA_VISIBLE_DEVICES": "0", "SLURM_JOB_GPUS": "2"},
        paths={str(settings.carla_root / settings.recipe.carla.launcher): True, settings.recipe.agent.evaluator: True},
    )
    return SlurmJobFacts("4242", "COMPLETED", "None", None, 3.2, replace(a, node=node))


def packages(settings: Settings) -> PackagesFacts:
    """Every package `setup` installs, installed (dpkg on Ubuntu)."""
    platform = settings.recipe.platform
    names = distro.package_names(
        platform, distro.family(platform, system(settings).os_release), wanted(settings.recipe)
    )
    return PackagesFacts("debian", "dpkg-query", dict.fromkeys(names, True))


def checkout(settings: Settings) -> CheckoutFacts:
    """SimLingo at the recipe's commit, cloned from upstream, its downloads inside."""
    return CheckoutFacts(
        str(settings.work_dir), True, [".git", "Bench2Drive", "outputs", "pretrained", "team_code"], True,
        settings.recipe.agent.commit, settings.recipe.agent.repo_url,
    )  # fmt: skip


def viz(settings: Settings) -> VizFacts:
    """`check --viz`: no arial.ttf anywhere (a plain Ubuntu), Liberation Sans installed, imageio-ffmpeg's ffmpeg."""
    return VizFacts(
        font_name="arial.ttf",
        found=None,
        source="/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        encoder="/home/eval/.venv/lib/python3.12/site-packages/imageio_ffmpeg/binaries/ffmpeg-linux-x86_64-v7.1",
        encoder_source="imageio-ffmpeg",
        h264=True,
    )


def healthy_facts(settings: Settings) -> Facts:
    """Every probe's facts on the healthy machine, keyed as the probe registry names them."""
    return Facts(
        by_probe={
            "system": system(settings),
            "gpu": gpu(),
            "vulkan": vulkan(),
            "display": display(),
            "carla": carla(settings),
            "ports": ports(settings),
            "server": server(settings),
            "agent": agent(settings),
            "weights": weights(settings),
            "network": network(settings),
            "docker": docker(settings),
            "carla_servers": carla_servers(),
            "slurm": slurm(settings),
            "slurm_job": slurm_job(settings),
            "packages": packages(settings),
            "checkout": checkout(settings),
            "viz": viz(settings),
            "window": WindowFacts(None, []),  # DISPLAY unset: nothing to present to
        }
    )
