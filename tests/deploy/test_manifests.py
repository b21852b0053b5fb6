"""deploy/: the Dockerfile, compose file and Kubernetes manifests are valid (kubectl
kustomize renders them, kubernetes-validate checks the result against the API schemas,
check-jsonschema checks compose against the compose-spec schema it vendors) and name
only roles, `fieldmesh run` flags, settings and ports the code has."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from fieldmesh.cli import build_parser
from fieldmesh.roles import ROLES
from fieldmesh.run import Layout
from kernel.settings import _ENV_KEYS, PROJECT_ROOT, Settings

DEPLOY = PROJECT_ROOT / "deploy"
K8S_VERSION = "1.31.0"
ENV_VARS = set(_ENV_KEYS.values())
HEALTH_PATH = "/health"


class Inconsistent(AssertionError):
    """A manifest names something the code does not have."""


def _kustomize(path: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize` when kubectl is installed; otherwise the subset renderer below
    (neither kubectl nor kustomize is in Debian's archive, PyPI or npm: the render is still
    tested, by a renderer that refuses any kustomization field it does not implement)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return render_kustomization(path)
    out = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, check=True
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


_KUSTOMIZATION_FIELDS = {
    "apiVersion",
    "kind",
    "resources",
    "labels",
    "images",
    "namespace",
    "configMapGenerator",
    "patches",
}
_CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume"}


def render_kustomization(path: Path) -> list[dict[str, Any]]:
    """The kustomize features deploy/k8s uses, as kustomize applies them: resources
    (files and directories, depth first), labels (metadata only without
    includeSelectors), images, namespace, configMapGenerator merge, JSON 6902 patches
    with a kind/name target. Anything else is an error, not silently ignored."""
    k = yaml.safe_load((path / "kustomization.yaml").read_text())
    unknown = set(k) - _KUSTOMIZATION_FIELDS
    if unknown:
        raise Inconsistent(f"{path}: kustomization fields the renderer lacks: {sorted(unknown)}")
    docs: list[dict[str, Any]] = []
    for res in k.get("resources", []):
        target = path / res
        if target.is_dir():
            docs += render_kustomization(target)
        else:
            docs += [d for d in yaml.safe_load_all(target.read_text()) if d]
    for spec in k.get("labels", []):
        if spec.get("includeSelectors") or spec.get("includeTemplates"):
            raise Inconsistent("labels into selectors/templates: not implemented")
        for d in docs:
            d.setdefault("metadata", {}).setdefault("labels", {}).update(spec["pairs"])
    for img in k.get("images", []):
        for d in docs:
            pod = d.get("spec", {}).get("template", {}).get("spec", {})
            for c in pod.get("containers", []) + pod.get("initContainers", []):
                name, _, tag = c["image"].partition(":")
                if name == img["name"]:
                    c["image"] = f"{img.get('newName', name)}:{img.get('newTag', tag)}".rstrip(":")
    for gen in k.get("configMapGenerator", []):
        if gen.get("behavior") != "merge":
            raise Inconsistent("configMapGenerator other than merge: not implemented")
        cm = next(
            d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == gen["name"]
        )
        for literal in gen.get("literals", []):
            key, _, value = literal.partition("=")
            cm.setdefault("data", {})[key] = value
    for patch in k.get("patches", []):
        t = patch["target"]
        matches = [d for d in docs if d["kind"] == t["kind"] and d["metadata"]["name"] == t["name"]]
        if not matches:
            raise Inconsistent(f"patch target {t} matches nothing")
        for op in yaml.safe_load(patch["patch"]):
            if op["op"] not in ("replace", "add"):
                raise Inconsistent(f"patch op {op['op']}: not implemented")
            for d in matches:
                *parents, last = op["path"].strip("/").split("/")
                node: Any = d
                for part in parents:
                    node = node[int(part)] if isinstance(node, list) else node[part]
                if op["op"] == "replace" and last not in node:
                    raise Inconsistent(f"patch replaces a missing {op['path']}")
                node[last] = op["value"]
    if "namespace" in k:
        for d in docs:
            if d["kind"] not in _CLUSTER_SCOPED:
                d.setdefault("metadata", {})["namespace"] = k["namespace"]
    return docs


def _run_args(args: list[str]) -> Any:
    """The container's arguments as `fieldmesh run --role ARGS` parses them (the image's
    ENTRYPOINT); argparse exits on an unknown role or flag."""
    try:
        return build_parser().parse_args(["run", "--role", *args])
    except SystemExit:
        raise Inconsistent(f"`fieldmesh run --role {' '.join(args)}` does not parse") from None


def _layout(http_port: int, gateways: int) -> Layout:
    return Layout.from_settings(Settings(http_port=http_port), gateways)


def _role_port(layout: Layout, role: str) -> int:
    return layout.gateways[0] if role == "gateway" else int(getattr(layout, role))


def _entrypoint() -> list[str]:
    text = (DEPLOY / "Dockerfile").read_text()
    m = re.search(r"^ENTRYPOINT (\[.*\])$", text, re.M)
    assert m, "Dockerfile has no exec-form ENTRYPOINT"
    return list(yaml.safe_load(m.group(1)))


# --------------------------------------------------------------------------- Kubernetes


def check_k8s(docs: list[dict[str, Any]]) -> None:
    by_kind: dict[tuple[str, str], dict[str, Any]] = {
        (d["kind"], d["metadata"]["name"]): d for d in docs
    }
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    secret = next(d for d in docs if d["kind"] == "Secret")
    for key in [*config, *secret.get("stringData", {}), *secret.get("data", {})]:
        if key not in ENV_VARS:
            raise Inconsistent(f"ConfigMap/Secret key {key} is no setting (kernel/settings.py)")
    http_port = int(config["FIELDMESH_HTTP_PORT"])
    roles_seen: set[str] = set()
    for d in docs:
        if d["kind"] not in ("Deployment", "StatefulSet"):
            continue
        pod = d["spec"]["template"]["spec"]
        for c in pod.get("initContainers", []) + pod["containers"]:
            for e in c.get("env", []):
                if c["image"].split(":")[0].endswith("fieldmesh") and e["name"] not in ENV_VARS:
                    raise Inconsistent(f"{d['metadata']['name']}: env {e['name']} is no setting")
        for c in pod["containers"]:
            if not c["image"].split(":")[0].endswith("fieldmesh"):
                continue
            args = _run_args(c["args"])
            (role,) = args.role
            roles_seen.add(role)
            layout = _layout(http_port, args.gateways)
            ports = {p["name"]: p["containerPort"] for p in c["ports"]}
            if ports["health"] != _role_port(layout, role):
                raise Inconsistent(f"{role}: health port {ports['health']} is not the role's")
            if ports["supervisor"] != layout.supervisor:
                raise Inconsistent(f"{role}: supervisor port {ports['supervisor']} is wrong")
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                get = c[probe]["httpGet"]
                if get["path"] != HEALTH_PATH or get["port"] not in ports:
                    raise Inconsistent(f"{role}: {probe} is not a role's /health")
            if "requests" not in c["resources"] or "limits" not in c["resources"]:
                raise Inconsistent(f"{role}: no resource requests and limits")
    if roles_seen != set(ROLES):
        raise Inconsistent(f"roles deployed {sorted(roles_seen)} != roles {sorted(ROLES)}")
    hpa_targets = {
        d["spec"]["scaleTargetRef"]["name"] for d in docs if d["kind"] == "HorizontalPodAutoscaler"
    }
    for name in hpa_targets:
        kind = next(
            d["spec"]["scaleTargetRef"]["kind"]
            for d in docs
            if d["kind"] == "HorizontalPodAutoscaler"
            and d["spec"]["scaleTargetRef"]["name"] == name
        )
        if (kind, name) not in by_kind:
            raise Inconsistent(f"HPA targets {kind}/{name}, which is not in the manifests")
    if hpa_targets != {"fieldmesh-api", "fieldmesh-gateway"}:
        raise Inconsistent(f"HPAs for {sorted(hpa_targets)}, expected api and gateway")
    # gateway partitions (ordered kinds): pods 0..N-1 must always run, and a scale-down
    # (which removes the highest ordinals) must never reach them
    partitions = int(config.get("FIELDMESH_GATEWAY_PARTITIONS", "1"))
    gw_hpa = next(
        d
        for d in docs
        if d["kind"] == "HorizontalPodAutoscaler"
        and d["spec"]["scaleTargetRef"]["name"] == "fieldmesh-gateway"
    )
    if gw_hpa["spec"]["minReplicas"] < partitions:
        raise Inconsistent(f"gateway HPA minReplicas below {partitions} partitions")
    if by_kind[("StatefulSet", "fieldmesh-gateway")]["spec"]["replicas"] < partitions:
        raise Inconsistent(f"gateway StatefulSet replicas below {partitions} partitions")
    labels = [
        d["spec"]["template"]["metadata"]["labels"]
        for d in docs
        if d["kind"] in ("Deployment", "StatefulSet")
    ]
    for d in docs:
        if d["kind"] == "PodDisruptionBudget":
            sel = d["spec"]["selector"]["matchLabels"]
            if not any(sel.items() <= lab.items() for lab in labels):
                raise Inconsistent(f"PDB {d['metadata']['name']} selects no pod")


@pytest.fixture(scope="module", params=["base", "overlays/production"])
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return _kustomize(DEPLOY / "k8s" / request.param)


def test_rendered_manifests_pass_the_kubernetes_schemas(rendered: list[dict[str, Any]]) -> None:
    for doc in rendered:
        # raises ValidationError on a schema violation (strict: unknown fields too)
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    bad = copy.deepcopy(_edit(rendered, "Deployment", "fieldmesh-api"))
    bad["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["pth"] = "/x"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def test_rendered_manifests_name_only_what_the_code_has(rendered: list[dict[str, Any]]) -> None:
    check_k8s(rendered)


def _edit(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


@pytest.mark.parametrize(
    "mutation",
    [
        "unknown env var",
        "unknown role",
        "unknown flag",
        "wrong port",
        "wrong path",
        "no hpa",
        "partitions above the hpa minimum",
    ],
)
def test_the_consistency_check_catches_a_wrong_manifest(
    rendered: list[dict[str, Any]], mutation: str
) -> None:
    docs = copy.deepcopy(rendered)
    gw = _edit(docs, "StatefulSet", "fieldmesh-gateway")["spec"]["template"]["spec"]
    container = gw["containers"][0]
    if mutation == "unknown env var":
        next(d for d in docs if d["kind"] == "ConfigMap")["data"]["FIELDMESH_HTTP_PROT"] = "1"
    elif mutation == "unknown role":
        container["args"] = ["ingester"]
    elif mutation == "unknown flag":
        container["args"] = ["gateway", "--gateway-count", "2"]
    elif mutation == "wrong port":
        container["ports"][0]["containerPort"] = 8086
    elif mutation == "wrong path":
        container["livenessProbe"]["httpGet"]["path"] = "/healthz"
    elif mutation == "partitions above the hpa minimum":
        next(d for d in docs if d["kind"] == "ConfigMap")["data"][
            "FIELDMESH_GATEWAY_PARTITIONS"
        ] = "5"
    else:
        docs = [
            d
            for d in docs
            if d["metadata"]["name"] != "fieldmesh-gateway"
            or d["kind"] != "HorizontalPodAutoscaler"
        ]
    with pytest.raises(Inconsistent):
        check_k8s(docs)


# --------------------------------------------------------------------------- compose


def check_compose(doc: dict[str, Any]) -> None:
    entry = _entrypoint()
    if entry != ["fieldmesh", "run", "--role"]:
        raise Inconsistent(f"Dockerfile ENTRYPOINT {entry} is not `fieldmesh run --role`")
    roles_seen: set[str] = set()
    for name, svc in doc["services"].items():
        if not str(svc.get("image", "")).startswith("fieldmesh:"):
            continue
        env = svc.get("environment", {})
        for key in env:
            if key not in ENV_VARS:
                raise Inconsistent(f"compose {name}: env {key} is no setting")
        if "entrypoint" in svc:
            argv = svc["entrypoint"]
            try:
                build_parser().parse_args(argv[1:])
            except SystemExit:
                raise Inconsistent(f"compose {name}: `{' '.join(argv)}` does not parse") from None
            continue
        args = _run_args(svc["command"])
        (role,) = args.role
        roles_seen.add(role)
        port = _role_port(_layout(int(env["FIELDMESH_HTTP_PORT"]), args.gateways), role)
        test = " ".join(svc["healthcheck"]["test"])
        m = re.search(r"http://127\.0\.0\.1:(\d+)(/\S*?)'", test)
        if not m or int(m.group(1)) != port or m.group(2) != HEALTH_PATH:
            raise Inconsistent(f"compose {name}: health check is not {role}'s :{port}/health")
        for url_var in ("DATABASE_URL", "MQTT_URL"):
            # compose interpolation (${VAR:?message}) stands for a password here
            host = urlsplit(re.sub(r"\$\{[^}]*\}", "x", env[url_var])).hostname
            if host not in doc["services"]:
                raise Inconsistent(f"compose {name}: {url_var} host {host} is no service")
    if roles_seen != set(ROLES):
        raise Inconsistent(f"compose roles {sorted(roles_seen)} != roles {sorted(ROLES)}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return doc


def test_compose_file_passes_the_compose_spec_schema() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(DEPLOY / "compose.yaml"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_names_only_what_the_code_has(compose: dict[str, Any]) -> None:
    check_compose(compose)
    assert compose["services"]["db"]["image"].startswith("timescale/timescaledb-ha:")


@pytest.mark.parametrize("mutation", ["unknown env var", "unknown role", "wrong port"])
def test_the_compose_check_catches_a_wrong_file(compose: dict[str, Any], mutation: str) -> None:
    doc = copy.deepcopy(compose)
    gw = doc["services"]["gateway"]
    if mutation == "unknown env var":
        gw["environment"]["FIELDMESH_DB_POOL"] = "4"
    elif mutation == "unknown role":
        gw["command"] = ["ingest"]
    else:
        gw["healthcheck"]["test"][-1] = gw["healthcheck"]["test"][-1].replace("8085", "8086")
    with pytest.raises(Inconsistent):
        check_compose(doc)


def test_dockerfile_is_multi_stage_pinned_and_non_root() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    froms = re.findall(r"^FROM (\S+)", text, re.M)
    assert len(froms) >= 2
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert base and re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base.group(1))
    user = re.findall(r"^USER (\S+)$", text, re.M)
    assert user and not user[-1].startswith(("0", "root"))
    for pkg in re.findall(r"^COPY (\w+) \1$", text, re.M):
        assert (PROJECT_ROOT / pkg / "__init__.py").exists(), pkg
    assert "--constraint constraints.txt" in text and (DEPLOY / "constraints.txt").exists()
