"""The one place that installs the system services the tests need, from Debian's packages.

What is installed, and for which tests:

| package        | for                                                                     |
| -------------- | ----------------------------------------------------------------------- |
| postgresql     | MLflow's backend store behind a tracking server (as on a cluster head)  |
| openssh-server | sshd on loopback: `ray up` of the on-premise cluster file over SSH      |
| rsync          | how `ray up` copies the project and the file mounts to every node       |
| iproute2       | `ip`: the second loopback address of the on-premise cluster's worker    |
| slurm-wlm      | slurmctld + slurmd: a one-node Slurm that runs the Slurm batch script   |
| munge          | Slurm's authentication daemon                                            |

`ensure(...)` installs the missing ones in one `apt-get install` (root only) and returns "" or
why they cannot be had, for the test to skip with. Nothing here starts a daemon: each test
starts what it needs and stops it again, by process id, even when it fails.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

# package -> a file that exists once it is installed
PACKAGES = {
    "postgresql": "/usr/lib/postgresql/*/bin/initdb",
    "openssh-server": "/usr/sbin/sshd",
    "rsync": "/usr/bin/rsync",
    "iproute2": "/usr/sbin/ip",
    "slurm-wlm": "/usr/sbin/slurmctld",
    "munge": "/usr/sbin/munged",
}
# Debian's slurm-wlm also brings slurmd and the client commands (sbatch, squeue, scancel, sinfo).
_EXTRA = {"slurm-wlm": ["slurmd", "slurm-client"]}


def installed(package: str) -> bool:
    return bool(glob.glob(PACKAGES[package]))


def ensure(*packages: str) -> str:
    """Install the missing `packages` with apt-get; "" when all are there, else why not."""
    missing = [p for p in packages if not installed(p)]
    if not missing:
        return ""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return f"{', '.join(missing)} not installed, and apt-get is not usable here (needs root)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    names = [n for p in missing for n in [p, *_EXTRA.get(p, [])]]
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *names]):
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if r.returncode:
            return f"`{' '.join(cmd)}` failed: {(r.stderr or r.stdout).strip().splitlines()[-1:]}"
    still = [p for p in missing if not installed(p)]
    return f"apt-get installed {', '.join(still)} but {PACKAGES[still[0]]} is missing" if still else ""


def postgres_bin() -> Path | None:
    """The folder of PostgreSQL's server programs (initdb, postgres, pg_ctl), if installed."""
    found = sorted(glob.glob(PACKAGES["postgresql"]))
    return Path(found[-1]).parent if found else None
