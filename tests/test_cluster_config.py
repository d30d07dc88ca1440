"""cluster.yaml (AWS) and cluster/onprem.yaml (your own machines over SSH): valid Ray autoscaler
configs that share one node script and open nothing to the internet.

Checked offline: each file validates against the JSON schema shipped inside ray and survives
ray's own prepare_config/validate_config (what `ray up` does before it talks to a provider);
`ray up cluster.yaml` itself, run with no AWS credentials, gets past all of that and stops at
AWS's credential check; then the properties that matter here: SSH from one CIDR is the only
inbound rule from outside, the dashboard is bound to loopback, Ray runs with token auth, the
workers have GPUs and know where MLflow is, the head runs MLflow on PostgreSQL with what
pyproject.toml installs, and no secret is written in the files. What the nodes run is in
cluster/node.sh, called the same way by both files; tests/test_onprem.py runs it for real.
"""

import copy
import ipaddress
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_YAML = ROOT / "cluster.yaml"
ONPREM_YAML = ROOT / "cluster" / "onprem.yaml"
NODE_SH = ROOT / "cluster" / "node.sh"
GPU_FAMILIES = ("g4dn", "g5", "g6", "g6e", "gr6", "p3", "p4d", "p4de", "p5", "p5e", "p5en", "p6")
COMMAND_KEYS = ("initialization_commands", "setup_commands", "head_setup_commands",
                "worker_setup_commands", "head_start_ray_commands", "worker_start_ray_commands")


@pytest.fixture(scope="module")
def text():
    return CLUSTER_YAML.read_text()


@pytest.fixture(scope="module")
def cfg(text):
    return yaml.safe_load(text)


@pytest.fixture(scope="module")
def onprem():
    return yaml.safe_load(ONPREM_YAML.read_text())


@pytest.fixture(scope="module")
def node_sh():
    return NODE_SH.read_text()


def _commands(cfg, key):
    return list(cfg.get(key) or [])


def _worker_types(cfg):
    return {k: v for k, v in cfg["available_node_types"].items() if k != cfg["head_node_type"]}


def _function(node_sh, name):
    """The body of one shell function of node.sh."""
    m = re.search(rf"^{name}\(\) \{{\n(.*?)^\}}", node_sh, re.S | re.M)
    assert m, f"node.sh has no function {name}"
    return m.group(1)


def _node_calls(cfg, key):
    """The node.sh subcommands (with their arguments) a command list runs."""
    calls = []
    for cmd in _commands(cfg, key):
        m = re.fullmatch(r"(?:\w+=\S+ )*bash ~/lmgan/cluster/node\.sh (\S+)(.*)", cmd.strip())
        if m:
            calls.append(m.group(1))
    return calls


def _home(remote: str) -> str:
    """A file mount's remote path as node.sh names it ($HOME/...): the AWS containers' user is ray."""
    return re.sub(r"^(~|/home/ray)/", "$HOME/", remote)


# --- validity -------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [CLUSTER_YAML, ONPREM_YAML], ids=["aws", "onprem"])
def test_valid_against_ray_schema(path):
    import jsonschema
    import ray.autoscaler
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(yaml.safe_load(path.read_text())), key=str)
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_ray_prepares_and_validates_it(cfg, onprem):
    """The offline part of `ray up`: defaults merged, then ray's own checks."""
    from ray.autoscaler._private.util import prepare_config, validate_config
    for config, provider in ((cfg, "aws"), (onprem, "local")):
        prepared = prepare_config(copy.deepcopy(config))
        validate_config(prepared)
        assert prepared["provider"]["type"] == provider
        # Every command list is the file's own, none inherited from ray's defaults (which would
        # pip-install a nightly ray wheel on AWS, and `ray stop` a head sharing a worker's machine).
        for key in ("setup_commands", "head_start_ray_commands", "worker_start_ray_commands"):
            assert prepared[key] == config[key]


def test_ray_up_reaches_aws_credential_check(tmp_path):
    """`ray up cluster.yaml` from the project's venv, with no AWS credentials: past Ray's config
    checks and the AWS launcher's imports (boto3 from the [aws] extra), stopped by botocore's
    NoCredentialsError. The instance metadata service is switched off, so nothing leaves this
    machine."""
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("0" * 64)
    (home / ".lmgan" / "cluster").mkdir(parents=True)
    (home / ".lmgan" / "cluster" / "cluster.env").write_text("MLFLOW_TRACKING_USERNAME=admin\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(HOME=str(home), RAY_TMPDIR=str(tmp_path / "tmp"), AWS_EC2_METADATA_DISABLED="true",
               AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    r = subprocess.run([str(Path(sys.executable).parent / "ray"), "up", "-y", "--no-config-cache",
                        str(CLUSTER_YAML)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "Checking AWS environment settings" in out, out[-3000:]
    assert "NoCredentialsError: Unable to locate credentials" in out, out[-3000:]
    assert "requires" not in out or "Boto3" not in out, "the AWS launcher's boto3 is missing"


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


# --- one node script for both ----------------------------------------------------------------

def test_both_files_run_the_same_node_script(cfg, onprem):
    expected = {"setup_commands": ["setup"], "head_setup_commands": ["head-setup"],
                "head_start_ray_commands": ["start-head"], "worker_start_ray_commands": ["start-worker"]}
    for config in (cfg, onprem):
        for key, calls in expected.items():
            assert _node_calls(config, key) == calls, (config["cluster_name"], key, config.get(key))
        # nothing else starts Ray or a server outside the script
        for key in COMMAND_KEYS:
            for cmd in _commands(config, key):
                assert "ray start" not in cmd and "mlflow server" not in cmd, cmd
    for name in ("setup", "head_setup", "start_head", "start_worker", "start_mlflow"):
        _function(NODE_SH.read_text(), name)


def test_placeholders_are_marked(onprem):
    """Every value a user must fill in says REPLACE, or is a documentation address (RFC 5737)."""
    assert "REPLACE" in onprem["auth"]["ssh_user"]
    for ip in [onprem["provider"]["head_ip"], *onprem["provider"]["worker_ips"]]:
        assert ipaddress.ip_address(ip) in ipaddress.ip_network("192.0.2.0/24"), ip


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


def test_no_world_open_cidr_anywhere(cfg, onprem, node_sh):
    """Not in a rule, a command or anywhere else in the configs (comments aside)."""
    for s in [*_strings(cfg), *_strings(onprem), node_sh]:
        assert "0.0.0.0/0" not in s and "::/0" not in s, s


def test_dashboard_bound_to_loopback_and_no_published_ports(cfg, node_sh):
    head_start = _function(node_sh, "start_head")
    assert "ray start --head" in head_start
    m = re.search(r"--dashboard-host[= ](\S+)", head_start)
    assert m and m.group(1) in ("127.0.0.1", "localhost"), "dashboard/Jobs API must stay on loopback"
    assert "--ray-client-server-port" not in head_start
    docker = cfg["docker"]
    for opt in docker.get("run_options", []) + docker.get("head_run_options", []) \
            + docker.get("worker_run_options", []):
        assert not re.match(r"(-p|--publish)\b", opt), opt


def test_postgres_listens_on_no_port(node_sh):
    start = _function(node_sh, "start_postgres")
    assert "listen_addresses=''" in start, "PostgreSQL: a Unix socket only"
    assert "--auth-host=reject" in _function(node_sh, "head_setup")


def test_ray_token_auth_on_every_node(cfg, onprem, node_sh):
    token_path = re.search(r"^TOKEN=(\S+)", node_sh, re.M).group(1)
    for config in (cfg, onprem):
        mounts = config["file_mounts"]
        token_remote = [r for r, local in mounts.items() if local == "~/.ray/auth_token"]
        assert token_remote, "the token made by `ray get-auth-token --generate` must reach every node"
        assert _home(token_remote[0]) == token_path, (token_remote, token_path)
    env = _function(node_sh, "setup")
    # written to env.sh, which ~/.bashrc sources: `ray start`, `ray exec` and `ray attach` shells
    assert "export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH=$TOKEN" in env


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


def test_project_copied_and_installed_from_pyproject(cfg, onprem, node_sh):
    project = re.search(r"^PROJECT=(\S+)", node_sh, re.M).group(1)
    secrets = re.search(r"^SECRETS=(\S+)", node_sh, re.M).group(1)
    assert 'pip install -q -e "$PROJECT"' in _function(node_sh, "setup")
    for config in (cfg, onprem):
        mounts = config["file_mounts"]
        remote = next(r for r, local in mounts.items() if local in (".", "./"))
        assert _home(remote) == project, (remote, project)
        creds = next(r for r, local in mounts.items() if local == "~/.lmgan/cluster")
        assert secrets.startswith(_home(creds) + "/"), (creds, secrets)
        assert "/.venv" in config["rsync_exclude"] and "/.git" in config["rsync_exclude"]
        for local in mounts.values():  # everything copied lives on the user's machine, not in the repo
            assert local in (".", "./") or local.startswith("~/"), local


def test_head_runs_mlflow_on_postgresql(node_sh):
    head_setup = _function(node_sh, "head_setup")
    assert "apt-get install" in head_setup and "postgresql" in head_setup and "initdb" in head_setup
    mlflow = _function(node_sh, "start_mlflow")
    assert "mlflow server --app-name basic-auth" in mlflow
    assert re.search(r'--backend-store-uri "postgresql\+psycopg://', mlflow)
    assert "--serve-artifacts --artifacts-destination" in mlflow
    assert re.search(r"^MLFLOW_PORT=5000$", node_sh, re.M)
    assert "start_mlflow" in _function(node_sh, "start_head")


def test_pyproject_has_what_the_head_runs(cfg, node_sh):
    """`mlflow server --app-name basic-auth` needs mlflow's [auth] extra (Flask-WTF), a
    postgresql+psycopg:// store needs psycopg, and the AWS autoscaler on the head needs boto3:
    the nodes get all of them only through pyproject.toml."""
    import tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def find(reqs, name):
        for req in reqs:
            r = re.match(r"\s*([A-Za-z0-9_.-]+)\s*(?:\[([^\]]*)\])?", req)
            if r.group(1).lower().replace("_", "-") == name:
                return {e.strip() for e in (r.group(2) or "").split(",") if e.strip()}
        return None

    installed = list(project["dependencies"])
    assert "auth" in find(installed, "mlflow"), "the basic-auth app needs mlflow[auth]"
    uris = re.findall(r"(postgresql\+\w+)://", node_sh)
    assert uris
    for scheme in uris:
        assert scheme.split("+")[1] == "psycopg" and find(installed, "psycopg") is not None, scheme
    assert find(project["optional-dependencies"]["aws"], "boto3") is not None
    assert any(re.search(r'pip install -q -e "[^"]+\[aws\]"', c) for c in _commands(cfg, "head_setup_commands")), \
        "the AWS head runs the autoscaler: it needs the [aws] extra"


def test_workers_know_the_tracking_uri(node_sh):
    start = _function(node_sh, "start_worker")
    m = re.search(r"export LMGAN_TRACKING_URI=(\S+)", start)
    assert m and m.group(1) == "http://$RAY_HEAD_IP:$MLFLOW_PORT"
    assert start.index("LMGAN_TRACKING_URI") < start.index("ray start --address"), \
        "exported before `ray start`, so the trial processes inherit it"


def test_a_worker_on_the_heads_machine_leaves_its_ray_running(node_sh):
    """`ray stop` ends every Ray process of the user on the machine, the head's included."""
    start = _function(node_sh, "start_worker")
    assert re.search(r'is_local "\$RAY_HEAD_IP" \|\| ray stop', start)
    r = subprocess.run(["bash", "-c", f'eval "$(sed -n "/^is_local()/,/^}}/p" {NODE_SH})"; '
                       "is_local 127.0.0.2 && ! is_local 192.0.2.1 && echo ok"], capture_output=True, text=True)
    assert r.stdout.strip() == "ok", r.stderr


def test_shell_syntax_of_every_command(cfg, onprem):
    for config in (cfg, onprem):
        for key in COMMAND_KEYS:
            for cmd in _commands(config, key):
                r = subprocess.run(["bash", "-n", "-c", cmd], capture_output=True, text=True)
                assert r.returncode == 0, f"{key}: {cmd}\n{r.stderr}"
    r = subprocess.run(["bash", "-n", str(NODE_SH)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


# --- secrets --------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [CLUSTER_YAML, ONPREM_YAML, NODE_SH], ids=["aws", "onprem", "node.sh"])
def test_no_literal_secret(path):
    text = path.read_text()
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
