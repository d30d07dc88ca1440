"""cluster/slurm.sbatch on a real Slurm: munged, slurmctld and two slurmd (nodes lmgan1 on
127.0.0.1 and lmgan2 on 127.0.0.2, one CPU each) started by the test, sweeps submitted with
sbatch. The job starts Ray's head and a worker through srun, an MLflow server on the head and
`lmgan sweep`; a cancelled sweep submitted again continues, each trial recorded once. Nothing
is mocked, and every daemon the test started is stopped by its process id, even on failure."""

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from support import check_sweep, free_port

pytestmark = pytest.mark.slow     # a Slurm cluster and three sweep jobs: minutes

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "cluster" / "slurm.sbatch"
NODES = {"lmgan1": "127.0.0.1", "lmgan2": "127.0.0.2"}
TINY = ["--preset", "tiny", "--objective", "ssim", "--cpus-per-trial", "1", "--verbose", "0", "--trials", "2"]
ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
         "PREEMPTED"}


def _wait(what, check, timeout, every=0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout} s")


def _environ(pid: int) -> dict:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def _pids_with(key: str, value: str) -> list[int]:
    """Processes whose environment has key=value (a job's, or this Slurm's)."""
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and _environ(int(p)).get(key) == value]


def _stop(pids, wait_s=15.0):
    """SIGTERM, and SIGKILL to any still running wait_s later (never to a pid that has gone)."""
    import signal

    def running():
        return [p for p in pids if _state(p) not in ("Z", "X")]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in running():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait_s
        while running() and time.monotonic() < deadline:
            time.sleep(0.2)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


@pytest.fixture(scope="module")
def slurm():
    """A two-node Slurm on this machine; yields (env for the client commands, root folder)."""
    from tests.services import ensure
    why = ensure("slurm-wlm", "munge")
    if why:
        pytest.skip(why)
    if os.geteuid() != 0:
        pytest.skip("slurmd runs as root, and the test is not root")
    root = Path(tempfile.mkdtemp(prefix="lmgan-slurm-", dir="/tmp"))
    root.chmod(0o755)                                  # munged (user munge) reaches its folder
    munge = root / "munge"
    munge.mkdir(mode=0o755)
    for d in ("state", "spool", "log"):
        (root / d).mkdir()
    shutil.chown(munge, "munge", "munge")
    key = munge / "munge.key"
    key.write_bytes(os.urandom(1024))
    shutil.chown(key, "munge", "munge")
    key.chmod(0o400)
    host = socket.gethostname().split(".")[0]
    sbin = {name: shutil.which(name) or f"/usr/sbin/{name}" for name in ("munged", "slurmctld", "slurmd")}
    memory = int(re.search(r"RealMemory=(\d+)", subprocess.run([sbin["slurmd"], "-C"], capture_output=True,
                                                                text=True).stdout).group(1))
    ctl_port = free_port()
    conf = root / "slurm.conf"
    (root / "plugstack.conf").write_text("")           # no site SPANK plugins
    conf.write_text("\n".join([
        "ClusterName=lmgantest", f"SlurmctldHost={host}(127.0.0.1)", f"SlurmctldPort={ctl_port}",
        "SlurmUser=root", "AuthType=auth/munge", f"AuthInfo=socket={munge / 'munge.sock'}",
        f"StateSaveLocation={root / 'state'}", f"SlurmdSpoolDir={root / 'spool'}/%n",
        f"SlurmctldPidFile={root / 'slurmctld.pid'}", f"SlurmdPidFile={root}/slurmd-%n.pid",
        f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}", f"SlurmdLogFile={root / 'log'}/slurmd-%n.log",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core", "MpiDefault=none",
        "ReturnToService=2", "KillWait=10", "MinJobAge=600", f"PlugStackConfig={root / 'plugstack.conf'}",
        *(f"NodeName={name} NodeHostname={host} NodeAddr={addr} Port={free_port()} CPUs=1 "
          f"RealMemory={memory // 2 - 512} State=UNKNOWN" for name, addr in NODES.items()),
        "PartitionName=lmgan Nodes=ALL Default=YES MaxTime=INFINITE State=UP", ""]))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_"))}
    env["SLURM_CONF"] = str(conf)
    daemons: list[subprocess.Popen] = []
    log = open(root / "log" / "daemons.out", "ab")
    try:
        daemons.append(subprocess.Popen(
            [sbin["munged"], "--foreground", f"--socket={munge / 'munge.sock'}", f"--key-file={key}",
             f"--log-file={munge / 'munged.log'}", f"--pid-file={munge / 'munged.pid'}",
             f"--seed-file={munge / 'munged.seed'}"],
            user="munge", group="munge", extra_groups=[], stdout=log, stderr=log, env=env))

        def idle():
            out = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %t"], capture_output=True, text=True, env=env).stdout
            return sorted(out.split()) == sorted(w for n in NODES for w in (n, "idle"))
        try:
            _wait("munged's socket", lambda: (munge / "munge.sock").exists(), 30)
            daemons.append(subprocess.Popen([sbin["slurmctld"], "-D", "-i"], stdout=log, stderr=log, env=env))
            for name in NODES:
                daemons.append(subprocess.Popen([sbin["slurmd"], "-D", "-N", name], stdout=log, stderr=log, env=env))
            _wait("both nodes idle in sinfo", idle, 60)
        except AssertionError as e:
            logs = "".join(p.read_text()[-1500:] for p in [munge / "munged.log", *sorted((root / "log").glob("*"))]
                           if p.is_file())
            raise AssertionError(f"Slurm did not come up ({e}):\n{logs}") from None
        yield env, root
    finally:
        jobs = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, env=env).stdout.split()
        if jobs:
            subprocess.run(["scancel", *jobs], env=env, capture_output=True)
            try:
                _wait("the jobs to end", lambda: not subprocess.run(
                    ["squeue", "-h"], capture_output=True, text=True, env=env).stdout.strip(), 60)
            except AssertionError:
                pass
        # whatever a job left (Ray, MLflow, a driver) has the job's id and this Slurm's configuration
        _stop([p for p in _pids_with("SLURM_CONF", str(conf)) if "SLURM_JOB_ID" in _environ(p)])
        _stop([p.pid for p in reversed(daemons)])      # slurmd, slurmctld, then munged
        for p in daemons:
            p.wait(timeout=10)
        _stop([p for p in _pids_with("SLURM_CONF", str(conf)) if p != os.getpid()])   # e.g. slurmscriptd
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def sbatch(slurm, runs, job_name, *args, **extra_env):
    env, _ = slurm
    env = {**env, "LMGAN_ENV": sys.prefix, "LMGAN_RAY_PORT": str(free_port()),
           "LMGAN_MLFLOW_PORT": str(free_port()),
           "LMGAN_RAY_HEAD_ARGS": f"--include-dashboard=false --ray-client-server-port={free_port()}", **extra_env}
    env = {k: v for k, v in env.items() if v is not None}
    r = subprocess.run(["sbatch", "--parsable", f"--job-name={job_name}", "--nodes=2", "--cpus-per-task=1",
                        "--gpus-per-node=0", "--mem=1G", "--time=10", f"--chdir={runs}",
                        f"--output={runs}/%x-%j.out", str(SCRIPT), *map(str, args)],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().split(";")[0]


def job_state(slurm, job) -> tuple[str, str]:
    out = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True, env=slurm[0]).stdout
    state, code = re.search(r"JobState=(\S+)", out), re.search(r"ExitCode=(\S+)", out)
    return (state.group(1) if state else "?"), (code.group(1) if code else "?")


def wait_job(slurm, job, timeout=300) -> tuple[str, str]:
    """The job's end state and exit code, once it ended and none of its processes remain."""
    state = _wait(f"job {job} to end", lambda: (s := job_state(slurm, job))[0] in ENDED and s, timeout)
    conf = slurm[0]["SLURM_CONF"]
    _wait(f"job {job}'s processes (Ray, MLflow, the driver) to end",
          lambda: not [p for p in _pids_with("SLURM_JOB_ID", job) if _environ(p).get("SLURM_CONF") == conf], 30)
    return state


def output(runs, job_name, job) -> str:
    return (Path(runs) / f"{job_name}-{job}.out").read_text()


def test_a_sweep_job_runs_ray_and_mlflow_and_stops_them(slurm, sweep_clip, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    job = sbatch(slurm, runs, "first", "--video", sweep_clip, *TINY, "--max-iters", 4, "--eval-every", 2,
                 "--grace-iters", 2, "--runs-dir", runs)
    state, code = wait_job(slurm, job)
    text = output(runs, "first", job)
    assert (state, code) == ("COMPLETED", "0:0"), text[-3000:]
    assert re.search(r"Ray at 127\.0\.0\.1:\d+: 2 of 2 nodes, 2 CPUs, 0 GPUs", text), text[-3000:]
    assert "sweep first: 2 trials (" in text and "stopped Ray and MLflow; exit 0" in text
    # The store is in the runs folder, readable without the server that is gone with the job.
    _, _, trials = check_sweep(f"sqlite:///{runs / 'mlflow.db'}", "lmgan-clip6s", "first", 2)
    assert len({t.data.tags["lmgan.node_id"] for t in trials}) == 2, "the trials did not use both nodes"
    assert not (runs / "slurm" / job / "ray-token").exists()
    assert oct((runs / "mlflow-auth" / "login").stat().st_mode & 0o777) == "0o600"


def test_bad_use_is_one_line_and_a_failed_job(slurm, tmp_path):
    cases = [({"LMGAN_ENV": str(tmp_path)}, f"LMGAN_ENV={tmp_path} has no bin/lmgan"),
             ({"LMGAN_ENV": None, "PATH": "/usr/bin:/bin"}, "lmgan is not installed in the job's environment")]
    for extra, message in cases:
        job = sbatch(slurm, tmp_path, "bad", "--video", "demo", **extra)
        state, code = wait_job(slurm, job, timeout=60)
        text = output(tmp_path, "bad", job)
        assert (state, code) == ("FAILED", "2:0"), text
        lines = text.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("lmgan-slurm: error: ") and message in lines[0], text


def test_a_cancelled_sweep_submitted_again_continues(slurm, sweep_clip, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    args = ["--video", sweep_clip, *TINY, "--max-iters", 20, "--eval-every", 4, "--grace-iters", 20,
            "--runs-dir", runs]
    uri = f"sqlite:///{runs / 'mlflow.db'}"
    job = sbatch(slurm, runs, "again", *args)

    def evaluated():           # a trial has reported its first evaluation to MLflow
        try:
            return any("ssim" in r.data.metrics for r in MlflowClient(uri).search_runs(
                [e.experiment_id for e in MlflowClient(uri).search_experiments()],
                filter_string="tags.`lmgan.role` = 'trial' and tags.`lmgan.sweep` = 'again'"))
        except Exception:
            return False
    try:
        _wait("a trial's first evaluation", evaluated, 360)
    except AssertionError as e:     # say where the job was: pending, or its output so far
        out = Path(runs) / f"again-{job}.out"
        raise AssertionError(f"{e}; job {job} {job_state(slurm, job)}; output:\n"
                             f"{out.read_text()[-3000:] if out.is_file() else '(none yet)'}") from None
    assert job_state(slurm, job)[0] == "RUNNING", "the sweep ended before it could be cancelled"
    subprocess.run(["scancel", job], env=slurm[0], check=True)
    state, _ = wait_job(slurm, job, timeout=90)
    assert state == "CANCELLED"
    first = output(runs, "again", job)
    assert "continuing it (--resume)" not in first
    # Submitted again under the same name (MLflow on another port: the same store, a new address).
    job2 = sbatch(slurm, runs, "again", *args)
    state, code = wait_job(slurm, job2)
    text = output(runs, "again", job2)
    assert (state, code) == ("COMPLETED", "0:0"), text[-3000:]
    assert "sweep again exists in" in text and "continuing it (--resume)" in text
    c, parent, trials = check_sweep(uri, "lmgan-clip6s", "again", 2)
    for t in trials:
        steps = [m.step for m in c.get_metric_history(t.info.run_id, "ssim")]
        assert steps == [4, 8, 12, 16, 20], steps     # each evaluation once: continued, not redone


def test_resume_takes_a_tracking_uri_only_for_the_sweeps_own_store(sweep_clip, tmp_path, mlflow_store_template,
                                                                   capsys):
    """A resubmitted job's MLflow server is the same store at a new address; another store is refused."""
    from lmgan.sweep import driver as search
    from lmgan.sweep.plan import make_plan, save_state
    stores = []
    for name in ("a.db", "b.db"):
        shutil.copy(mlflow_store_template, tmp_path / name)
        stores.append(f"sqlite:///{tmp_path / name}")
    c = MlflowClient(stores[0])
    experiment = c.create_experiment("lmgan-clip6s")
    parent = c.create_run(experiment, tags={"lmgan.role": "sweep", "lmgan.sweep": "moved"}).info.run_id
    storage = str(tmp_path / "sweeps")
    args = search.build_parser().parse_args(["--video", str(sweep_clip), *TINY, "--name", "moved"])
    save_state(storage, make_plan(args, storage),
               {"tracking_uri": stores[0], "experiment_id": experiment, "parent_run_id": parent})
    rc = search.main(["--resume", "--name", "moved", "--runs-dir", str(tmp_path), "--tracking-uri", stores[1]])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith("sweep: error: --tracking-uri ") and \
        f"does not hold the sweep's MLflow run {parent}" in err[-1], err
