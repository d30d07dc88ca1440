"""How many CPUs and GPUs each trial gets, and how many trials fit at once: from the nodes Ray
reports, plus the node types an autoscaling cluster may still start."""

from __future__ import annotations

import math
import os
from pathlib import Path

from lmgan.errors import LmganError


def local_nodes() -> list[dict]:
    """This machine as Ray would see it, without starting Ray (a --dry-run's resources)."""
    import torch
    return [{"Alive": True, "Resources": {"CPU": float(os.cpu_count() or 1),
                                          "GPU": float(torch.cuda.device_count())}}]


def _autoscaler_types() -> list[tuple[dict, int]]:
    """(resources, max_workers) of the node types an autoscaling cluster may still start, from
    the bootstrap config Ray writes on the head: right after `ray up` only the head is alive,
    and trials asking for GPUs are what makes the autoscaler start GPU workers."""
    import yaml
    path = Path(os.environ.get("LMGAN_AUTOSCALER_CONFIG", "~/ray_bootstrap_config.yaml")).expanduser()
    if not path.is_file():
        return []
    try:
        types = (yaml.safe_load(path.read_text()) or {}).get("available_node_types") or {}
    except (OSError, yaml.YAMLError):
        return []
    return [(t["resources"], int(t.get("max_workers") or 0)) for t in types.values()
            if isinstance(t, dict) and t.get("resources") and int(t.get("max_workers") or 0) > 0]


def default_gpu_share(image_size: int) -> float:
    """GPUs per trial when the user gives none. One B=1 window of a small model leaves most of
    a big GPU idle (16-channel layers, a sequential DirConvGRU scan), so small trials share:
    four per GPU up to 64², two at 128², one above (256² and 512² fill a GPU's memory and
    compute). `python -m lmgan.bench --concurrent 2 4` measures what sharing gains."""
    return 0.25 if image_size <= 64 else 0.5 if image_size <= 128 else 1.0


def per_trial(args, nodes: list[dict], image_size: int = 128) -> tuple[float, float, int]:
    """(cpus, gpus) per trial, checked against the nodes present or startable, and how many
    trials fit at once (Tune still places each by the resources it finds)."""
    pool = [(n["Resources"], 1) for n in nodes if n.get("Alive")] + _autoscaler_types()
    most_gpus = max((r.get("GPU", 0.0) for r, _ in pool), default=0.0)
    most_cpus = max((r.get("CPU", 0.0) for r, _ in pool), default=0.0)
    gpus = args.gpus_per_trial if args.gpus_per_trial is not None else (
        min(default_gpu_share(image_size), most_gpus) if most_gpus else 0.0)
    if gpus < 0 or (gpus > 1 and not float(gpus).is_integer()):
        raise LmganError(f"--gpus-per-trial {gpus:g}: must be a fraction in (0, 1] or a whole number")
    if gpus > most_gpus:
        have = f"the largest node has {most_gpus:g}" if most_gpus else "no node has a GPU"
        raise LmganError(f"--gpus-per-trial {gpus:g}: more GPUs than any node has ({have})")
    if args.cpus_per_trial is not None:
        cpus = args.cpus_per_trial
    elif gpus:
        cpus = min(2.0, min(r.get("CPU", 0.0) for r, _ in pool if r.get("GPU", 0.0) >= gpus))
    else:
        cpus = min((r["CPU"] for r, _ in pool if r.get("CPU", 0.0) > 0), default=1.0)
    if cpus <= 0 or cpus > most_cpus:
        raise LmganError(f"--cpus-per-trial {cpus:g}: must be positive and at most the largest "
                         f"node's {most_cpus:g} CPUs")
    fit = 0
    for r, count in pool:
        by_cpu = math.floor(r.get("CPU", 0.0) / cpus + 1e-9)
        by_gpu = math.floor(r.get("GPU", 0.0) / gpus + 1e-9) if gpus else by_cpu
        fit += count * min(by_cpu, by_gpu)
    return cpus, gpus, max(fit, 1)
