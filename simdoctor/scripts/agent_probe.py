"""Facts about the agent's interpreter, gathered inside it (run by simdoctor as a subprocess).

Reads a JSON request on stdin: {"modules": [names], "agent_file": path, "packages": [names], "deep": bool,
"deep_modules": [names], "hub_repos": [repo ids], "node": bool, "paths": [paths]}; prints one JSON line.
Without "deep" nothing heavy is imported: versions come from package metadata (importlib.metadata, by pip's
name or its underscore spelling, as Python 3.8's lookup does not normalize) and torch/version.py. With
"deep" each of "deep_modules" and the agent module are imported for real, and each of "hub_repos" is
resolved by name as the agent resolves it (transformers' AutoConfig, offline under the agent's
HF_HUB_OFFLINE=1; huggingface_hub's snapshot_download with local files only where transformers is not
installed). With "node" (a Slurm probe job) it also says which host it ran on, the GPU variables Slurm
set, and whether each of "paths" exists there. Standard library only, Python 3.8 compatible.
"""

import importlib
import importlib.util
import json
import os
import platform
import re
import socket
import sys
import time
import traceback

try:
    from importlib import metadata
except ImportError:  # Python < 3.8: no metadata, versions stay unknown
    metadata = None


def last_line(exc):
    return ("%s: %s" % (type(exc).__name__, exc)).strip().splitlines()[-1][:300]


def package_version(name):
    """The version importlib.metadata.version gives, read from the metadata's header only: parsing whole
    files, long descriptions included, took half this probe's time (issue 15)."""
    if metadata is None:
        return None
    for spelling in dict.fromkeys((name, name.replace("-", "_"))):  # a name without '-' is looked up once
        try:
            dist = metadata.distribution(spelling)
            return header(dist.read_text("METADATA") or dist.read_text("PKG-INFO") or "", "version")
        except Exception:
            continue
    return None


def header(text, key):
    """The first `key:` header's value (names compared without case), before the first blank line."""
    for line in text.splitlines():
        if not line.strip():
            break
        name, colon, value = line.partition(":")
        if colon and name.strip().lower() == key:
            return value.strip()
    return None


def find(name):
    try:
        spec = importlib.util.find_spec(name)
    except Exception as exc:  # a parent package failed to import
        return {"found": False, "origin": None, "error": last_line(exc)}
    if spec is None:
        return {"found": False, "origin": None, "error": None}
    origin = spec.origin
    if origin in (None, "namespace") and spec.submodule_search_locations:
        origin = next(iter(spec.submodule_search_locations))
    return {"found": True, "origin": origin, "error": None}


def torch_build():
    """torch's version and CUDA build from torch/version.py, without importing torch."""
    spec = find("torch")
    if not spec["found"]:
        return None
    path = os.path.join(os.path.dirname(spec["origin"]), "version.py")
    info = {"path": path, "version": None, "cuda": None}
    try:
        with open(path) as handle:
            text = handle.read()
    except OSError:
        return info
    version = re.search(r"^__version__\s*(?::[^=]+)?=\s*['\"]([^'\"]+)['\"]", text, re.M)
    cuda = re.search(r"^cuda\s*(?::[^=]+)?=\s*['\"]([^'\"]+)['\"]", text, re.M)
    info["version"] = version.group(1) if version else None
    info["cuda"] = cuda.group(1) if cuda else None
    return info


def import_carla():
    try:
        import carla
    except Exception as exc:
        return {"ok": False, "file": None, "error": last_line(exc)}
    return {"ok": True, "file": getattr(carla, "__file__", None), "error": None}


def import_error(name):
    """None when `name` imports, else its error's last line and where it was raised."""
    try:
        importlib.import_module(name)
        return None
    except BaseException as exc:  # modules may sys.exit on bad setups
        error = last_line(exc)
        tb = traceback.extract_tb(exc.__traceback__)
        return error + (" (at %s:%d)" % (tb[-1].filename, tb[-1].lineno) if tb else "")


def resolve_repo(repo):
    """How the agent's from_pretrained(repo) fares offline: {"ok", "via", "detail"}."""
    try:
        import transformers
    except Exception:
        transformers = None
    try:
        if transformers is not None:
            config = transformers.AutoConfig.from_pretrained(repo, trust_remote_code=True)
            via, detail = "transformers %s" % transformers.__version__, type(config).__name__
        else:
            from huggingface_hub import snapshot_download

            via = "huggingface_hub (transformers is not installed)"
            detail = snapshot_download(repo, local_files_only=True)
        return {"ok": True, "via": via, "detail": detail}
    except BaseException as exc:
        return {
            "ok": False,
            "via": "transformers" if transformers is not None else "huggingface_hub",
            "detail": last_line(exc),
        }


def deep(agent_file, modules, repos):
    out = {
        "torch_error": None,
        "cuda_available": None,
        "device_count": None,
        "arch_list": None,
        "op_ok": None,
        "op_error": None,
        "agent_import_ok": None,
        "agent_import_error": None,
        "module_errors": {},
        "hub": {},
        "seconds": None,
    }
    start = time.time()
    try:
        import torch

        out["cuda_available"] = bool(torch.cuda.is_available())
        out["device_count"] = torch.cuda.device_count()
        out["arch_list"] = list(torch.cuda.get_arch_list()) if out["cuda_available"] else []
        if out["cuda_available"]:
            try:
                x = torch.ones((64, 64), device="cuda")
                out["op_ok"] = float((x @ x).sum().item()) == 64.0 * 64 * 64
            except Exception as exc:
                out["op_ok"], out["op_error"] = False, last_line(exc)
    except Exception as exc:
        out["torch_error"] = last_line(exc)
    out["module_errors"] = dict((name, import_error(name)) for name in modules)
    out["hub"] = dict((repo, resolve_repo(repo)) for repo in repos)
    if agent_file and os.path.isfile(agent_file):
        sys.path.insert(0, os.path.dirname(agent_file))
        out["agent_import_error"] = import_error(os.path.splitext(os.path.basename(agent_file))[0])
        out["agent_import_ok"] = out["agent_import_error"] is None
    out["seconds"] = round(time.time() - start, 2)
    return out


NODE_VARIABLES = ("SLURM_JOB_ID", "SLURM_JOB_NODELIST", "CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS")


def node(paths):
    return {
        "hostname": socket.gethostname(),
        "variables": dict((k, os.environ[k]) for k in NODE_VARIABLES if k in os.environ),
        "paths": dict((p, os.path.exists(p)) for p in paths),
    }


def main():
    request = json.loads(sys.stdin.read() or "{}")
    agent_file = request.get("agent_file")
    agent = None
    if agent_file:
        sys.path.insert(0, os.path.dirname(agent_file))
        agent = find(os.path.splitext(os.path.basename(agent_file))[0])
        agent["file_exists"] = os.path.isfile(agent_file)
        sys.path.pop(0)
    result = {
        "version": platform.python_version(),
        "executable": sys.executable,
        "packages": dict((name, package_version(name)) for name in request.get("packages", [])),
        "carla": import_carla(),
        "modules": dict((name, find(name)) for name in request.get("modules", [])),
        "agent": agent,
        "torch": torch_build(),
        "deep": deep(agent_file, request.get("deep_modules", []), request.get("hub_repos", []))
        if request.get("deep")
        else None,
        "node": node(request.get("paths", [])) if request.get("node") else None,
    }
    sys.stdout.write("\n" + json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
