"""cluster.yaml: a valid Ray autoscaler config that opens nothing to the internet.

Checked offline, without AWS: the file validates against the JSON schema shipped inside ray and
survives ray's own prepare_config/validate_config (what `ray up` does before it talks to AWS);
then the properties that matter here: SSH from one CIDR is the only inbound rule from outside,
the dashboard is bound to loopback, Ray runs with token auth, the workers have GPUs and know
where MLflow is, the head runs MLflow on PostgreSQL with what pyproject.toml installs, and no
secret is written in the file.
"""

import copy
import ipaddress
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_YAML = ROOT / "cluster.yaml"
GPU_FAMILIES = ("g4dn", "g5", "g6", "g6e", "gr6", "p3", "p4d", "p4de", "p5", "p5e", "p5en", "p6")


@pytest.fixture(scope="module")
def text():
    return CLUSTER_YAML.read_text()


@pytest.fixture(scope="module")
def cfg(text):
    return yaml.safe_load(text)


def _commands(cfg, key):
    return list(cfg.get(key) or [])


def _worker_types(cfg):
    return {k: v for k, v in cfg["available_node_types"].items() if k != cfg["head_node_type"]}


def _mlflow_server_args(cfg):
    """The `mlflow server` command line of the head, as a list of arguments."""
    for cmd in _commands(cfg, "head_start_ray_commands"):
        if "mlflow server" in cmd:
            inner = shlex.split(cmd[cmd.index("setsid"):])[-1] if "setsid" in cmd else cmd
            args = shlex.split(inner[inner.index("mlflow server"):])
            return args[:args.index(">>")] if ">>" in args else args
    pytest.fail("head_start_ray_commands do not start `mlflow server`")


def _option(args, name):
    assert name in args, f"mlflow server lacks {name}"
    return args[args.index(name) + 1]


# --- validity -------------------------------------------------------------------------------

def test_valid_against_ray_schema(cfg):
    import jsonschema
    import ray.autoscaler
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(cfg), key=str)
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_ray_prepares_and_validates_it(cfg):
    """The offline part of `ray up`: defaults merged, then ray's own checks."""
    from ray.autoscaler._private.util import prepare_config, validate_config
    prepared = prepare_config(copy.deepcopy(cfg))
    validate_config(prepared)
    assert prepared["provider"]["type"] == "aws" and prepared["provider"]["region"]
    # Every command list is the file's own, none inherited from ray's AWS defaults (which
    # would pip-install a nightly ray wheel).
    for key in ("setup_commands", "head_start_ray_commands", "worker_start_ray_commands"):
        assert prepared[key] == cfg[key]


def test_images_match_installed_ray_and_python(cfg):
    import tomllib

    import ray
    from packaging.specifiers import SpecifierSet
    requires = SpecifierSet(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"])
    docker = cfg["docker"]
    images = {"head": docker.get("head_image", docker.get("image")),
              "worker": docker.get("worker_image", docker.get("image"))}
    for role, image in images.items():
        repo, tag = image.split(":")
        assert repo in ("rayproject/ray", "rayproject/ray-ml"), image
        # `ray up` needs the same Ray on the machine that runs it and on the cluster.
        m = re.fullmatch(r"(\d+\.\d+\.\d+)-py(\d)(\d+)(-\w+)?", tag)
        assert m, f"{image}: expected a <ray version>-py<XY>[-platform] tag"
        assert m.group(1) == ray.__version__, (role, image, ray.__version__)
        assert f"{m.group(2)}.{m.group(3)}" in requires, f"{image}: Python outside requires-python {requires}"
    assert re.search(r"-(gpu|cu\d+)$", images["worker"]), "worker image must be a CUDA image"


# --- network exposure -----------------------------------------------------------------------

def test_security_group_admits_only_ssh_from_a_cidr(cfg):
    sg = cfg["provider"]["security_group"]
    assert sg.get("GroupName"), "a named group, so that a pre-created one is used"
    rules = sg["IpPermissions"]
    assert rules, "the SSH rule must be spelled out"
    for rule in rules:
        # Only SSH; a rule on any other port (8265 dashboard, 10001 client, 6379 GCS, 5000
        # MLflow, or all ports via -1) from outside the group is exactly the exposure to avoid.
        assert rule["IpProtocol"] == "tcp", rule
        assert rule["FromPort"] == rule["ToPort"] == 22, rule
        assert not rule.get("UserIdGroupPairs") and not rule.get("PrefixListIds"), rule
        ranges = [r["CidrIp"] for r in rule.get("IpRanges", [])] + \
                 [r["CidrIpv6"] for r in rule.get("Ipv6Ranges", [])]
        assert ranges, rule
        for cidr in ranges:
            net = ipaddress.ip_network(cidr, strict=True)
            assert net.prefixlen > 0, f"{cidr} opens SSH to the whole internet"
            assert cidr not in ("0.0.0.0/0", "::/0")


def _strings(node):
    if isinstance(node, dict):
        for k, v in node.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)
    elif isinstance(node, str):
        yield node


def test_no_world_open_cidr_anywhere(cfg):
    """Not in a rule, a command or anywhere else in the config (comments aside)."""
    for s in _strings(cfg):
        assert "0.0.0.0/0" not in s and "::/0" not in s, s


def test_dashboard_bound_to_loopback_and_no_published_ports(cfg):
    head_start = " ".join(_commands(cfg, "head_start_ray_commands"))
    assert "ray start --head" in head_start
    m = re.search(r"--dashboard-host[= ](\S+)", head_start)
    assert m and m.group(1) in ("127.0.0.1", "localhost"), "dashboard/Jobs API must stay on loopback"
    assert "--ray-client-server-port" not in head_start
    docker = cfg["docker"]
    for opt in docker.get("run_options", []) + docker.get("head_run_options", []) \
            + docker.get("worker_run_options", []):
        assert not re.match(r"(-p|--publish)\b", opt), opt


def test_ray_token_auth_on_every_node(cfg):
    mounts = cfg["file_mounts"]
    token_remote = [r for r, local in mounts.items() if local == "~/.ray/auth_token"]
    assert token_remote, "the token made by `ray get-auth-token --generate` must reach every node"
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        start = next(c for c in _commands(cfg, key) if "ray start" in c)
        assert "RAY_AUTH_MODE=token" in start, key
    env = " ".join(_commands(cfg, "setup_commands"))
    assert f"RAY_AUTH_TOKEN_PATH={token_remote[0]}" in env
    assert "RAY_AUTH_MODE=token" in env          # shells of `ray exec`/`ray attach` too


# --- what runs where ------------------------------------------------------------------------

def test_workers_are_gpu_nodes(cfg):
    workers = _worker_types(cfg)
    assert len(workers) >= 2
    assert sum(w.get("min_workers", 0) for w in workers.values()) <= cfg["max_workers"]
    for name, node in workers.items():
        assert node["resources"].get("GPU", 0) >= 1, f"{name} requests no GPU"
        assert node["resources"].get("CPU", 0) >= 1, name
        assert isinstance(node["min_workers"], int) and isinstance(node["max_workers"], int), name
        assert 0 <= node["min_workers"] <= node["max_workers"] <= cfg["max_workers"], name
        family = node["node_config"]["InstanceType"].split(".")[0]
        assert family in GPU_FAMILIES, f"{name}: {family} is not a GPU instance family"
    head = cfg["available_node_types"][cfg["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0
    assert head["node_config"]["InstanceType"].split(".")[0] not in GPU_FAMILIES


def test_every_node_type_sets_its_ami(cfg):
    """Ray's fallback AMI is an old Ubuntu 18.04 DLAMI whose driver predates torch 2.11."""
    for name, node in cfg["available_node_types"].items():
        assert node["node_config"].get("ImageId", "").startswith("ami-"), name


def test_project_copied_and_installed_from_pyproject(cfg):
    mounts = cfg["file_mounts"]
    remote = next(r for r, local in mounts.items() if local in (".", "./"))
    assert f"pip install -q -e {remote}" in _commands(cfg, "setup_commands")
    assert "/.venv" in cfg["rsync_exclude"] and "/.git" in cfg["rsync_exclude"]
    for local in mounts.values():  # everything copied lives on the user's machine, not in the repo
        assert local in (".", "./") or local.startswith("~/"), local


def test_head_runs_mlflow_on_postgresql(cfg):
    head_setup = " ".join(_commands(cfg, "head_setup_commands"))
    assert "install" in head_setup and "postgresql" in head_setup
    assert "service postgresql start" in " ".join(_commands(cfg, "head_start_ray_commands"))
    args = _mlflow_server_args(cfg)
    assert re.match(r"postgresql(\+\w+)?://", _option(args, "--backend-store-uri"))
    assert "--serve-artifacts" in args
    assert _option(args, "--artifacts-destination")
    assert _option(args, "--app-name") == "basic-auth"
    assert _option(args, "--port") == "5000"


def test_pyproject_has_what_the_head_runs(cfg):
    """`mlflow server --app-name basic-auth` needs mlflow's [auth] extra (Flask-WTF) and a
    postgresql:// store needs psycopg2; the nodes get both only through pyproject.toml, from
    its dependencies or the extras the setup command installs."""
    import tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip = next(c for c in _commands(cfg, "setup_commands") if c.startswith("pip install"))
    m = re.search(r"-e \S+?(?:\[([^\]]*)\])?['\"]?(?:\s|$)", pip)
    extras = [x.strip() for x in (m.group(1) or "").split(",") if x.strip()]
    optional = project.get("optional-dependencies", {})
    installed = list(project.get("dependencies", [])) + [d for x in extras for d in optional.get(x, [])]

    def find(reqs, name):
        for req in reqs:
            r = re.match(r"\s*([A-Za-z0-9_.-]+)\s*(?:\[([^\]]*)\])?", req)
            if r.group(1).lower().replace("_", "-") == name:
                return {e.strip() for e in (r.group(2) or "").split(",") if e.strip()}
        return None

    if find(installed, "mlflow") is None:
        elsewhere = [x for x, reqs in optional.items() if find(reqs, "mlflow") is not None]
        assert not elsewhere, f"mlflow is in the extra(s) {elsewhere}: install them in setup_commands"
        pytest.skip("pyproject.toml does not declare mlflow yet")
    assert "auth" in find(installed, "mlflow"), "the basic-auth app needs mlflow[auth]"
    # The store URIs name their SQLAlchemy driver; that driver must be installed.
    drivers = {"psycopg": ("psycopg",), "psycopg2": ("psycopg2", "psycopg2-binary")}
    uris = [_option(_mlflow_server_args(cfg), "--backend-store-uri")]
    uris += re.findall(r"database_uri = (\S+)", " ".join(_commands(cfg, "head_setup_commands")))
    for uri in uris:
        scheme = uri.split("://")[0]
        assert "+" in scheme, f"{uri}: name the driver (postgresql+psycopg://); SQLAlchemy's default changed in 2.1"
        driver = scheme.split("+")[1]
        assert any(find(installed, pkg) is not None for pkg in drivers[driver]), \
            f"{uri}: pyproject.toml does not install {driver}"


def test_workers_know_the_tracking_uri(cfg):
    start = next(c for c in _commands(cfg, "worker_start_ray_commands") if "ray start" in c)
    m = re.search(r"LMGAN_TRACKING_URI=(\S+?);", start)
    assert m and m.group(1) == "http://$RAY_HEAD_IP:5000"
    assert start.index("LMGAN_TRACKING_URI") < start.index("ray start"), \
        "exported before `ray start`, so the trial processes inherit it"


def test_shell_syntax_of_every_command(cfg):
    import subprocess
    keys = ("initialization_commands", "setup_commands", "head_setup_commands",
            "worker_setup_commands", "head_start_ray_commands", "worker_start_ray_commands")
    for key in keys:
        for cmd in _commands(cfg, key):
            r = subprocess.run(["bash", "-n", "-c", cmd], capture_output=True, text=True)
            assert r.returncode == 0, f"{key}: {cmd}\n{r.stderr}"


# --- secrets --------------------------------------------------------------------------------

def test_no_literal_secret(text):
    # Credentials inside a URI (scheme://user:password@host).
    assert not re.search(r"://[^/\s:@]+:[^/\s@]+@", text)
    # NAME=value where NAME says password/secret/token: the value must be a variable reference
    # (except *_PATH, which names a file).
    for m in re.finditer(r"\b([A-Za-z_]*(?:PASSWORD|PASSWD|SECRET|TOKEN)[A-Za-z_]*)=(\S+)",
                         text, re.IGNORECASE):
        name, value = m.groups()
        if name.upper().endswith("_PATH"):
            continue
        assert value.lstrip("\"'").startswith("$"), f"literal value for {name}"
    # YAML keys such as `password: ...`.
    assert not re.search(r"(?im)^\s*[\w-]*(password|passwd|secret)[\w-]*\s*:\s*\S", text)
