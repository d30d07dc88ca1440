"""cluster/onprem.yaml for real: `ray up` over SSH, a sweep on the cluster, `ray down`.

The "lab machines" are this machine at two loopback addresses: the head at 127.0.0.1 and a
worker at 127.0.0.2, both reached by Debian's OpenSSH server, which the test starts on those two
addresses only. The cluster's user is a throwaway account without root or sudo, as on a lab
machine, whose home is a temporary folder: nothing lands in root's home. Its Python environment
is provisioned as a lab's shared one would be (cluster.env: LMGAN_ENV): its dependencies are the
tests' own. Everything else is what a user's `ray up` does: rsync of the project and the file
mounts, node.sh's setup (`pip install -e` of the project), a PostgreSQL cluster and the MLflow
server (basic auth) on the head, Ray with token auth, the head's autoscaler starting the worker
over SSH.
"""

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from tests.services import ensure

pytestmark = pytest.mark.slow   # sshd, a Ray cluster, PostgreSQL, MLflow and a sweep: minutes

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
USER = "lmganlab"
HEAD, WORKER = "127.0.0.1", "127.0.0.2"


def _port_free(host: str, port: int) -> bool:
    """Nothing listens there (a port in TIME_WAIT after an earlier cluster is free)."""
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex((host, port)) != 0


def _run_as(user: str, *cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", user, "--", *cmd], capture_output=True, text=True)


def _user_processes(uid: int) -> list[str]:
    r = subprocess.run(["ps", "-u", str(uid), "-o", "pid=,args="], capture_output=True, text=True)
    return [line.strip() for line in r.stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """sshd on 127.0.0.1:22 and 127.0.0.2:22 for a throwaway user; yields what `ray up` needs."""
    if os.geteuid() != 0:
        pytest.skip("needs root: the test creates a user and runs sshd on port 22")
    why = ensure("openssh-server", "rsync", "postgresql")
    if why:
        pytest.skip(why)
    for host in (HEAD, WORKER):
        for port in (22, 5000, 6379):      # sshd, MLflow, Ray's GCS (the dashboard finds another)
            if not _port_free(host, port):
                pytest.skip(f"{host}:{port} is in use on this machine; the on-premise cluster needs it")
    root = Path(tempfile.mkdtemp(prefix="lmgan-lab-", dir="/tmp"))   # short: Unix socket paths
    root.chmod(0o755)
    home = root / "home"
    subprocess.run(["userdel", "-f", USER], capture_output=True)   # left by a killed run
    subprocess.run(["useradd", "-M", "-d", str(home), "-s", "/bin/bash", USER], check=True)
    subprocess.run(["usermod", "-p", "*", USER], check=True)     # no password, but not locked
    sshd = None
    uid = pwd.getpwnam(USER).pw_uid
    try:
        shutil.copytree("/etc/skel", home)
        key = root / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        (home / ".ssh").mkdir(mode=0o700)
        shutil.copy(key.with_suffix(".pub"), home / ".ssh" / "authorized_keys")
        subprocess.run(["chown", "-R", f"{USER}:{USER}", str(home)], check=True)
        _lab_env(root / "env")
        host_key = root / "ssh_host_ed25519_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
        config = root / "sshd_config"
        config.write_text("\n".join([
            "Port 22", f"ListenAddress {HEAD}", f"ListenAddress {WORKER}", f"HostKey {host_key}",
            f"PidFile {root / 'sshd.pid'}", f"AllowUsers {USER}", "AuthorizedKeysFile .ssh/authorized_keys",
            "PubkeyAuthentication yes", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            "UsePAM no", "StrictModes no",   # the home lies under /tmp, which StrictModes rejects
            "MaxStartups 100", "MaxSessions 100", "Subsystem sftp internal-sftp", ""]))
        Path("/run/sshd").mkdir(exist_ok=True)
        sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-f", str(config), "-E", str(root / "sshd.log")])
        for _ in range(50):
            if not _port_free(WORKER, 22):
                break
            time.sleep(0.1)
        yield {"root": root, "home": home, "key": key, "uid": uid, "env": root / "env"}
    finally:
        subprocess.run(["pkill", "-KILL", "-u", USER], capture_output=True)   # whatever a failure left
        if sshd is not None:
            sshd.send_signal(signal.SIGTERM)
            sshd.wait(timeout=30)
        time.sleep(0.5)
        subprocess.run(["userdel", "-f", USER], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def _lab_env(env: Path) -> None:
    """The lab's Python environment, as an admin would provision a shared one: a venv of the
    system's Python 3.11 whose dependencies are the tests' own (a .pth naming their folder; the
    tests' interpreter may live where another user cannot reach it), and console scripts for
    ray and mlflow. lmgan itself is not in it: `ray up` installs it (node.sh setup)."""
    import sysconfig
    system_python = Path("/usr/bin/python3")
    if not system_python.is_file():
        pytest.skip("no /usr/bin/python3 for the lab user's environment")
    version = subprocess.run([str(system_python), "-c", "import sys; print(sys.version_info[:2])"],
                             capture_output=True, text=True).stdout.strip()
    if version != str(sys.version_info[:2]):
        pytest.skip(f"/usr/bin/python3 is {version}, the tests' venv {sys.version_info[:2]}")
    subprocess.run([str(system_python), "-m", "venv", str(env)], check=True)
    site = next((env / "lib").glob("python3*/site-packages"))
    (site / "lmgan-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    for name in ("ray", "mlflow"):
        script = (BIN / name).read_text().split("\n", 1)[1]
        (env / "bin" / name).write_text(f"#!{env}/bin/python\n{script}")
        (env / "bin" / name).chmod(0o755)
    subprocess.run(["chown", "-R", f"{USER}:{USER}", str(env)], check=True)
    r = _run_as(USER, str(env / "bin" / "python"), "-c", "import torch, ray, mlflow")
    if r.returncode:
        pytest.skip(f"the tests' venv cannot be read by another user here: {r.stderr.strip()[-200:]}")


def _cluster_file(lab) -> Path:
    """cluster/onprem.yaml with its placeholders filled in, as a user does."""
    cfg = yaml.safe_load((REPO / "cluster" / "onprem.yaml").read_text())
    cfg["provider"].update(head_ip=HEAD, worker_ips=[WORKER])
    cfg["auth"] = {"ssh_user": USER, "ssh_private_key": str(lab["key"])}
    # Two "machines" that share two cores: one CPU each, so that trials run on both nodes.
    cfg["head_start_ray_commands"] = [c + " --num-cpus=1" for c in cfg["head_start_ray_commands"]]
    cfg["worker_start_ray_commands"] = [c + " --num-cpus=1" for c in cfg["worker_start_ray_commands"]]
    path = lab["root"] / "onprem.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def test_ray_up_a_sweep_and_ray_down_over_ssh(lab, sweep_clip):
    from support import check_sweep

    # The user's own machine: ~/.ray/auth_token and ~/.lmgan/cluster/cluster.env (docs/cluster.md).
    laptop = lab["root"] / "laptop"
    password = secrets.token_hex(12)
    env = {**os.environ, "HOME": str(laptop), "RAY_TMPDIR": str(lab["root"] / "laptop-tmp"),
           "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_AUTH_TOKEN_PATH", None)
    (laptop / ".lmgan" / "cluster").mkdir(parents=True, mode=0o700)
    ray = str(BIN / "ray")
    r = subprocess.run([ray, "get-auth-token", "--generate"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and (laptop / ".ray" / "auth_token").is_file(), r.stdout + r.stderr
    cluster_env = laptop / ".lmgan" / "cluster" / "cluster.env"
    cluster_env.write_text(f"MLFLOW_TRACKING_USERNAME=admin\nMLFLOW_TRACKING_PASSWORD={password}\n"
                           f"LMGAN_ENV={lab['env']}\n"
                           f"LMGAN_CACHE={lab['home']}/.cache/lmgan\nOMP_NUM_THREADS=1\n")
    cluster_env.chmod(0o600)
    cluster = _cluster_file(lab)
    log = lab["root"] / "ray.log"

    def ray_cmd(*args, timeout=600):
        with open(log, "a") as f:
            f.write(f"\n$ ray {' '.join(args)}\n")
            f.flush()
            r = subprocess.run([ray, *args], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=f,
                               text=True, timeout=timeout)
            f.write(r.stdout)
        return r

    def tail():
        return log.read_text()[-4000:] + "\n--- mlflow.log\n" + \
            ((lab["home"] / ".lmgan" / "mlflow.log").read_text()[-2000:]
             if (lab["home"] / ".lmgan" / "mlflow.log").is_file() else "")

    try:
        t0 = time.time()
        r = ray_cmd("up", "-y", "--no-config-cache", str(cluster))
        assert r.returncode == 0, tail()
        up = time.time() - t0
        # The head's autoscaler starts the worker over SSH on its own, after `ray up` returns.
        count = ("python -c 'import ray; ray.init(address=\"auto\", logging_level=\"ERROR\"); "
                 "print(\"alive\", sum(n[\"Alive\"] for n in ray.nodes()))'")
        deadline, nodes = time.time() + 300, 0
        while time.time() < deadline:
            r = ray_cmd("exec", str(cluster), count, timeout=120)
            nodes = max([int(line.split()[1]) for line in r.stdout.splitlines() if line.startswith("alive ")] or [0])
            if nodes >= 2:
                break
            time.sleep(5)
        if nodes < 2:
            ray_cmd("exec", str(cluster), "ray status; cd $RAY_TMPDIR/ray/session_latest/logs; "
                    "tail -n 40 monitor.err; grep -iE -A12 'error|exception|traceback' monitor.log | tail -n 80")
        assert nodes >= 2, tail()
        joined = time.time() - t0

        r = ray_cmd("rsync-up", str(cluster), str(sweep_clip), "~/clip6s.mp4")
        assert r.returncode == 0, tail()
        r = ray_cmd("exec", str(cluster),
                    "cd ~/lmgan && lmgan sweep --video ~/clip6s.mp4 --address auto "
                    "--tracking-uri $LMGAN_TRACKING_URI --preset tiny --objective ssim "
                    "--cpus-per-trial 1 --trials 2 --max-iters 4 --eval-every 2 --grace-iters 2 "
                    "--name onprem --verbose 0")
        assert r.returncode == 0, tail()
        swept = time.time() - t0

        # The head's MLflow server, as the user reaches it (here without a tunnel: same machine).
        os.environ.update(MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=password)
        try:
            uri = f"http://{HEAD}:5000"
            c, parent, trials = check_sweep(uri, "lmgan-clip6s", "onprem", 2)
            nodes_used = {t.data.tags["lmgan.node_id"] for t in trials}
            assert len(nodes_used) == 2, "the two trials ran at once, one on each node"
        finally:
            os.environ.pop("MLFLOW_TRACKING_USERNAME")
            os.environ.pop("MLFLOW_TRACKING_PASSWORD")
    finally:
        r = ray_cmd("down", "-y", str(cluster))
    assert r.returncode == 0, tail()
    # Nothing of the cluster's is left: Ray on both nodes, MLflow, PostgreSQL.
    deadline = time.time() + 60
    while time.time() < deadline and _user_processes(lab["uid"]):
        time.sleep(1)
    assert not _user_processes(lab["uid"]), _user_processes(lab["uid"])
    print(f"ray up {up:.0f} s, worker joined at {joined:.0f} s, sweep done at {swept:.0f} s, "
          f"ray down at {time.time() - t0:.0f} s")
