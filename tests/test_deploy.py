"""The deployment files: the Dockerfile and the Kubernetes manifests hold together with
the code they run (real commands, real probe routes, a configuration that validates)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from flask import Flask

from gateway.cli import main
from gateway.config import load_config

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
KINDS = {
    "ConfigMap",
    "Secret",
    "PersistentVolumeClaim",
    "Job",
    "Deployment",
    "Service",
    "HorizontalPodAutoscaler",
    "CronJob",
}


def _dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _manifests() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    docs = []
    for name in kustomization["resources"]:
        docs.extend(d for d in yaml.safe_load_all((DEPLOY / "k8s" / name).read_text()) if d)
    return docs


def _pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for doc in docs:
        spec = doc.get("spec", {})
        if doc["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        if doc["kind"] in ("Deployment", "Job", "CronJob"):
            out.append((doc["metadata"]["name"], spec["template"]["spec"]))
    return out


def test_the_dockerfile_is_multi_stage_pinned_and_unprivileged() -> None:
    steps = _dockerfile()
    stages = [args for word, args in steps if word == "FROM"]
    assert len(stages) == 2 and all(s.startswith("python:3.11-slim") for s in stages)
    for word, args in steps:
        if word == "COPY" and "--from" not in args:
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), f"COPY of a missing path {source}"
    installs = " ".join(args for word, args in steps if word == "RUN")
    assert "-c requirements.lock" in installs  # the pinned versions, not whatever is newest
    users = [args for word, args in steps if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    health = next(args for word, args in steps if word == "HEALTHCHECK")
    assert "/healthz" in health
    assert ("ENTRYPOINT", '["loangate"]') in steps


def test_the_manifests_are_complete_and_locked_down() -> None:
    docs = _manifests()
    assert {d["kind"] for d in docs} == KINDS
    images = set()
    for name, pod in _pod_specs(docs):
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        mounted = set()
        for container in pod["containers"]:
            images.add(container["image"])
            ctx = container["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True and not ctx["allowPrivilegeEscalation"]
            mounted |= {m["mountPath"] for m in container.get("volumeMounts", ())}
        assert "/var/lib/loangate" in mounted, f"{name}: the instance folder must be writable"
    assert len(images) == 1, images  # one release everywhere
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    hpa = next(d for d in docs if d["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_probes_point_at_real_routes(app: Flask) -> None:
    routes = {str(r) for r in app.url_map.iter_rules()}
    (_, pod) = next(p for p in _pod_specs(_manifests()) if p[0] == "loangate")
    container = pod["containers"][0]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["path"] in routes
    client = app.test_client()
    assert client.get(container["readinessProbe"]["httpGet"]["path"]).status_code == 200
    assert client.get(container["livenessProbe"]["httpGet"]["path"]).status_code == 200


def test_every_container_runs_a_real_command() -> None:
    runner = CliRunner()
    for name, pod in _pod_specs(_manifests()):
        for container in pod["containers"]:
            args = container["args"]
            result = runner.invoke(main, [*args, "--help"])
            assert result.exit_code == 0, f"{name}: loangate {shlex.join(args)}: {result.output}"


def test_the_configuration_validates_and_its_secrets_are_provided() -> None:
    docs = _manifests()
    configmap = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    secret = next(d for d in docs if d["kind"] == "Secret")["stringData"]
    environ = {**configmap, **{k: v for k, v in secret.items() if k.startswith("LOANGATE_")}}
    environ["LOANGATE_CONFIG"] = str(ROOT / "config" / "gateway.yaml")
    config, _ = load_config(environ=environ)  # raises on any key the schema refuses
    assert config["database"]["url"].startswith("postgresql+psycopg://")
    needed = {k["env"] for k in config["personal_data"]["master_keys"]}
    needed.add(config["personal_data"]["subject_hash_key"]["env"])
    (_, pod) = next(p for p in _pod_specs(docs) if p[0] == "loangate")
    provided = {e["name"] for e in pod["containers"][0]["env"]}
    assert needed <= provided, needed - provided
    (pem,) = [k["pem_file"] for k in config["auth"]["signing_keys"]]
    mounts = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert str(Path(pem).parent) in mounts
