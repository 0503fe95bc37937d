"""The ``kubernetes`` step kind and its API client, against a fake API server over
HTTPS (trustme CA, bearer token or client certificate) reached through a real
kubeconfig or an in-cluster service-account directory."""

from __future__ import annotations

import base64
import re
import shutil
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from bot.errors import IntegrationError, UserError
from bot.runbooks.config import KubernetesCluster, RunbooksConfig
from bot.runbooks.kubernetes import (
    KubernetesClient,
    label_selector,
    load_in_cluster,
    load_kubeconfig,
    pod_state,
    rfc3339,
    rollout_status,
)
from bot.runbooks.secrets import SecretStore
from bot.runbooks.step import StepContext
from bot.runbooks.steps.kubernetes import STEP, KubernetesArgs, KubernetesStep
from tests.clock import FakeClock
from tests.runbooks.kubernetes_fake import ClusterTls, FakeKubernetes, Workload, make_cluster_tls

TOKEN = "k8s-token-0123456789"
NOW = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
RESTART_PATCH = {
    "spec": {
        "template": {
            "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2024-05-01T10:00:00Z"}}
        }
    }
}
WEB = "/apis/apps/v1/namespaces/shop/deployments/web"
BAD_NAMES = ["../x", "web; rm -rf /", "Web", "web/../../secrets", "-web", "web_1", "", "a" * 254]
BAD_NAMESPACES = ["kube_system", "../default", "Shop", "a" * 64, "shop/pods"]


@pytest.fixture(scope="session")
def cluster_tls(tmp_path_factory: pytest.TempPathFactory) -> ClusterTls:
    return make_cluster_tls(tmp_path_factory.mktemp("k8s-tls"))


@pytest.fixture
async def k8s(cluster_tls: ClusterTls) -> AsyncIterator[FakeKubernetes]:
    fake = FakeKubernetes(cluster_tls, TOKEN)
    await fake.start()
    fake.add(Workload("deployments", "shop", "web"))
    try:
        yield fake
    finally:
        await fake.stop()


def write_kubeconfig(
    directory: Path,
    server: str,
    *,
    cluster: dict[str, Any],
    user: dict[str, Any],
    namespace: str | None = "shop",
    current: str | None = "prod",
) -> Path:
    context: dict[str, Any] = {"cluster": "prod-cluster", "user": "firebell"}
    if namespace:
        context["namespace"] = namespace
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "other", "cluster": {"server": "https://10.255.255.1:6443"}},
            {"name": "prod-cluster", "cluster": {"server": server, **cluster}},
        ],
        "users": [{"name": "firebell", "user": user}],
        "contexts": [
            {"name": "staging", "context": {"cluster": "other", "user": "firebell"}},
            {"name": "prod", "context": context},
        ],
    }
    if current:
        doc["current-context"] = current
    path = directory / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def kubeconfig(tmp_path: Path, k8s: FakeKubernetes, cluster_tls: ClusterTls) -> Path:
    """certificate-authority as a path relative to the kubeconfig, and an inline token."""
    shutil.copy(cluster_tls.ca_file, tmp_path / "ca.pem")
    return write_kubeconfig(
        tmp_path, k8s.url, cluster={"certificate-authority": "ca.pem"}, user={"token": TOKEN}
    )


def step_context(config: RunbooksConfig, *, timeout: float = 60) -> StepContext:
    return StepContext(
        config=config,
        secrets=SecretStore({}),
        clock=FakeClock(NOW),
        ssl_context=ssl.create_default_context(),
        timeout=timeout,
    )


def context_for(path: Path, **cluster: Any) -> StepContext:
    return step_context(
        RunbooksConfig(kubernetes={"prod": KubernetesCluster(kubeconfig=str(path), **cluster)})
    )


def args(**values: Any) -> KubernetesArgs:
    return KubernetesArgs.model_validate({"name": "web", **values})


STEP_UNDER_TEST = KubernetesStep(poll_interval=0.01)


# --- the step --------------------------------------------------------------------------------


async def test_rollout_restart_patches_like_kubectl_and_waits_for_the_rollout(
    k8s: FakeKubernetes, kubeconfig: Path
) -> None:
    outcome = await STEP_UNDER_TEST.run(args(action="rollout_restart"), context_for(kubeconfig))

    assert outcome.ok, outcome
    assert outcome.summary.startswith("deployment web restarted, 3/3 ready after ")
    [patch] = k8s.calls("PATCH")
    assert patch.path == WEB
    assert patch.content_type == "application/strategic-merge-patch+json"
    assert patch.body == RESTART_PATCH
    # One GET before the patch (kubectl refuses paused deployments), then polls until
    # the controller observed the generation and replaced every replica.
    gets = [r for r in k8s.calls("GET") if r.path == WEB]
    assert len(gets) >= 5
    assert 'rollout: deployment "web" successfully rolled out' in outcome.output
    assert "kubectl.kubernetes.io/restartedAt=2024-05-01T10:00:00Z" in outcome.output
    assert outcome.data["restarted_at"] == "2024-05-01T10:00:00Z"
    assert outcome.data["rolled_out"] is True
    assert k8s.workloads[("deployments", "shop", "web")].generation == 2


async def test_a_rollout_that_never_completes_ends_at_wait_seconds_with_the_pods(
    k8s: FakeKubernetes, kubeconfig: Path
) -> None:
    k8s.workloads[("deployments", "shop", "web")].stuck = True
    outcome = await STEP_UNDER_TEST.run(
        args(action="rollout_restart", wait_seconds=0.2), context_for(kubeconfig)
    )

    assert not outcome.ok
    assert outcome.summary.startswith("deployment web not rolled out after ")
    assert outcome.summary.endswith("1 out of 3 new replicas have been updated")
    assert "CrashLoopBackOff" in outcome.output
    assert "app: CrashLoopBackOff — back-off 2m40s restarting failed container=app" in outcome.output
    assert "app: last terminated Error (exit 1)" in outcome.output
    crash = next(line for line in outcome.output.splitlines() if line.startswith("web-79c4d1-crash"))
    assert crash.split() == ["web-79c4d1-crash", "0/1", "CrashLoopBackOff", "5", "node-2"]
    [pods] = [r for r in k8s.requests if r.path == "/api/v1/namespaces/shop/pods"]
    assert pods.query == {"labelSelector": "app=web"}
    assert outcome.data["pods"][-1] == {
        "name": "web-79c4d1-crash",
        "status": "CrashLoopBackOff",
        "ready": "0/1",
        "restarts": 5,
        "node": "node-2",
    }


async def test_rollout_restart_without_waiting(k8s: FakeKubernetes, kubeconfig: Path) -> None:
    outcome = await STEP_UNDER_TEST.run(
        args(action="rollout_restart", wait_seconds=0), context_for(kubeconfig)
    )
    assert outcome.ok
    assert outcome.summary == "deployment web restarted (rollout not awaited)"
    assert [r.method for r in k8s.requests] == ["GET", "PATCH"]


async def test_a_paused_deployment_is_not_restarted(k8s: FakeKubernetes, kubeconfig: Path) -> None:
    k8s.workloads[("deployments", "shop", "web")].paused = True
    with pytest.raises(UserError, match="can't restart paused deployment web \\(run rollout resume first\\)"):
        await STEP_UNDER_TEST.run(args(action="rollout_restart"), context_for(kubeconfig))
    assert k8s.calls("PATCH") == []


async def test_rollout_restart_of_a_statefulset(k8s: FakeKubernetes, kubeconfig: Path) -> None:
    k8s.add(Workload("statefulsets", "shop", "db", replicas=2))
    outcome = await STEP_UNDER_TEST.run(
        args(action="rollout_restart", workload_kind="statefulset", name="db"), context_for(kubeconfig)
    )
    assert outcome.ok, outcome
    [patch] = k8s.calls("PATCH")
    assert patch.path == "/apis/apps/v1/namespaces/shop/statefulsets/db"
    assert patch.body == RESTART_PATCH


async def test_rollout_status_of_a_settled_deployment(k8s: FakeKubernetes, kubeconfig: Path) -> None:
    outcome = await STEP_UNDER_TEST.run(args(action="rollout_status"), context_for(kubeconfig))
    assert outcome.ok
    assert outcome.summary.startswith("deployment web rolled out, 3/3 ready after ")
    assert [(r.method, r.path) for r in k8s.requests] == [("GET", WEB)]


async def test_scale_patches_the_scale_subresource_and_waits(k8s: FakeKubernetes, kubeconfig: Path) -> None:
    outcome = await STEP_UNDER_TEST.run(args(action="scale", replicas=5), context_for(kubeconfig))

    assert outcome.ok, outcome
    assert outcome.summary.startswith("deployment web scaled 3 → 5, 5/5 ready after ")
    [patch] = k8s.calls("PATCH")
    assert patch.path == WEB + "/scale"
    assert patch.content_type == "application/merge-patch+json"
    assert patch.body == {"spec": {"replicas": 5}}
    assert outcome.data["previous_replicas"] == 3
    assert outcome.data["replicas"] == 5
    assert k8s.requests[0].path == WEB + "/scale"  # the current count is read first


async def test_pods_shows_state_and_reasons(k8s: FakeKubernetes, kubeconfig: Path) -> None:
    k8s.workloads[("deployments", "shop", "web")].stuck = True
    k8s.add(Workload("deployments", "shop", "api"))  # its pods must not show up
    outcome = await STEP_UNDER_TEST.run(args(action="pods"), context_for(kubeconfig))

    assert not outcome.ok
    assert outcome.summary == "deployment web: 3/4 pods ready (CrashLoopBackOff)"
    header, *rows = [line.split() for line in outcome.output.splitlines() if not line.startswith(" ")]
    assert header == ["NAME", "READY", "STATUS", "RESTARTS", "NODE"]
    assert [row[0] for row in rows] == [
        "web-5d8f7b-00000",
        "web-5d8f7b-00001",
        "web-5d8f7b-00002",
        "web-79c4d1-crash",
    ]
    assert rows[0] == ["web-5d8f7b-00000", "1/1", "Running", "0", "node-1"]
    assert outcome.data["ready_pods"] == 3
    assert k8s.requests[-1].query == {"labelSelector": "app=web"}


async def test_a_wrong_token_is_a_clear_error(
    k8s: FakeKubernetes, tmp_path: Path, cluster_tls: ClusterTls
) -> None:
    path = write_kubeconfig(
        tmp_path,
        k8s.url,
        cluster={"certificate-authority": str(cluster_tls.ca_file)},
        user={"token": "wrong-token-value"},
    )
    with pytest.raises(IntegrationError) as caught:
        await STEP_UNDER_TEST.run(args(action="rollout_restart"), context_for(path))
    message = str(caught.value)
    assert message.startswith("kubernetes cluster prod rejected firebell's credentials (401 Unauthorized)")
    assert "wrong-token-value" not in message
    assert not caught.value.retryable
    assert k8s.calls("PATCH") == []


async def test_an_untrusted_server_certificate_is_refused(k8s: FakeKubernetes, tmp_path: Path) -> None:
    other_ca = make_cluster_tls(tmp_path / "other").ca_file
    path = write_kubeconfig(
        tmp_path, k8s.url, cluster={"certificate-authority": str(other_ca)}, user={"token": TOKEN}
    )
    with pytest.raises(IntegrationError, match="CERTIFICATE_VERIFY_FAILED") as caught:
        await STEP_UNDER_TEST.run(args(action="pods"), context_for(path))
    assert not caught.value.retryable
    assert k8s.requests == []


async def test_a_missing_workload_is_a_user_error(k8s: FakeKubernetes, kubeconfig: Path) -> None:
    with pytest.raises(UserError, match="no deployment nope in namespace shop on kubernetes cluster prod"):
        await STEP_UNDER_TEST.run(args(action="rollout_restart", name="nope"), context_for(kubeconfig))
    assert k8s.calls("PATCH") == []


@pytest.mark.parametrize("name", BAD_NAMES)
async def test_bad_names_are_refused_before_any_request(
    k8s: FakeKubernetes, kubeconfig: Path, name: str
) -> None:
    with pytest.raises(ValidationError, match="not a valid Kubernetes name"):
        args(action="rollout_restart", name=name)
    connection = load_kubeconfig(kubeconfig)
    async with KubernetesClient(connection) as client:
        with pytest.raises(UserError, match="not a valid Kubernetes name"):
            await client.rollout_restart("deployment", "shop", name, now=NOW)
        with pytest.raises(UserError, match="not a valid Kubernetes name"):
            await client.scale("deployment", "shop", name, 2)
        with pytest.raises(UserError, match="not a valid Kubernetes name"):
            await client.pods("deployment", "shop", name)
    assert k8s.requests == []


@pytest.mark.parametrize("namespace", BAD_NAMESPACES)
async def test_bad_namespaces_are_refused_before_any_request(
    k8s: FakeKubernetes, kubeconfig: Path, namespace: str
) -> None:
    with pytest.raises(ValidationError, match="not a valid namespace"):
        args(action="pods", namespace=namespace)
    async with KubernetesClient(load_kubeconfig(kubeconfig)) as client:
        with pytest.raises(UserError, match="not a valid namespace"):
            await client.get_workload("deployment", namespace, "web")
    # A bad namespace in the kubeconfig context is caught as well.
    path = write_kubeconfig(
        kubeconfig.parent,
        k8s.url,
        cluster={"certificate-authority": "ca.pem"},
        user={"token": TOKEN},
        namespace=namespace,
    )
    with pytest.raises(UserError, match="not a valid namespace"):
        await STEP_UNDER_TEST.run(args(action="pods"), context_for(path))
    assert k8s.requests == []


async def test_namespace_precedence(k8s: FakeKubernetes, kubeconfig: Path) -> None:
    k8s.add(Workload("deployments", "ops", "web"))
    k8s.add(Workload("deployments", "default", "web"))
    await STEP_UNDER_TEST.run(args(action="rollout_status", namespace="ops"), context_for(kubeconfig))
    assert k8s.requests[-1].path == "/apis/apps/v1/namespaces/ops/deployments/web"
    await STEP_UNDER_TEST.run(args(action="rollout_status"), context_for(kubeconfig, namespace="default"))
    assert k8s.requests[-1].path == "/apis/apps/v1/namespaces/default/deployments/web"
    await STEP_UNDER_TEST.run(args(action="rollout_status"), context_for(kubeconfig))
    assert k8s.requests[-1].path == WEB  # the kubeconfig context's namespace


# --- kubeconfig and in-cluster ---------------------------------------------------------------


async def test_kubeconfig_with_inline_ca_data_and_token_file(
    k8s: FakeKubernetes, tmp_path: Path, cluster_tls: ClusterTls
) -> None:
    (tmp_path / "token").write_text(TOKEN + "\n")
    ca_data = base64.b64encode(cluster_tls.ca_file.read_bytes()).decode()
    path = write_kubeconfig(
        tmp_path, k8s.url, cluster={"certificate-authority-data": ca_data}, user={"tokenFile": "token"}
    )
    outcome = await STEP_UNDER_TEST.run(args(action="rollout_status"), context_for(path))
    assert outcome.ok


async def test_kubeconfig_with_inline_client_certificate(
    k8s: FakeKubernetes, tmp_path: Path, cluster_tls: ClusterTls
) -> None:
    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    path = write_kubeconfig(
        tmp_path,
        k8s.url,
        cluster={"certificate-authority-data": b64(cluster_tls.ca_file)},
        user={
            "client-certificate-data": b64(cluster_tls.client_cert_file),
            "client-key-data": b64(cluster_tls.client_key_file),
        },
    )
    outcome = await STEP_UNDER_TEST.run(args(action="rollout_status"), context_for(path))
    assert outcome.ok


async def test_kubeconfig_with_client_certificate_files(
    k8s: FakeKubernetes, tmp_path: Path, cluster_tls: ClusterTls
) -> None:
    path = write_kubeconfig(
        tmp_path,
        k8s.url,
        cluster={"certificate-authority": str(cluster_tls.ca_file)},
        user={
            "client-certificate": str(cluster_tls.client_cert_file),
            "client-key": str(cluster_tls.client_key_file),
        },
    )
    outcome = await STEP_UNDER_TEST.run(args(action="rollout_status"), context_for(path))
    assert outcome.ok


async def test_kubeconfig_context_is_chosen_by_name(
    k8s: FakeKubernetes, tmp_path: Path, cluster_tls: ClusterTls
) -> None:
    path = write_kubeconfig(
        tmp_path,
        k8s.url,
        cluster={"certificate-authority": str(cluster_tls.ca_file)},
        user={"token": TOKEN},
        current=None,
    )
    with pytest.raises(UserError, match="has no current-context: set `context`"):
        load_kubeconfig(path)
    assert load_kubeconfig(path, "prod").server == k8s.url
    assert load_kubeconfig(path, "staging").server == "https://10.255.255.1:6443"
    with pytest.raises(UserError, match="has no context named 'nope'"):
        load_kubeconfig(path, "nope")


def test_insecure_skip_tls_verify_is_refused(tmp_path: Path) -> None:
    path = write_kubeconfig(
        tmp_path, "https://127.0.0.1:6443", cluster={"insecure-skip-tls-verify": True}, user={"token": TOKEN}
    )
    with pytest.raises(UserError, match="sets insecure-skip-tls-verify; firebell always verifies"):
        load_kubeconfig(path)


@pytest.mark.parametrize(
    ("user", "message"),
    [
        ({"exec": {"command": "aws", "args": ["eks", "get-token"]}}, "uses exec credential plugins"),
        ({"auth-provider": {"name": "gcp"}}, "uses auth providers"),
        ({"username": "admin", "password": "pw"}, "uses basic authentication"),
        ({"client-certificate": "/x/cert.pem"}, "a client certificate needs its key"),
    ],
)
def test_unsupported_credentials_are_refused(tmp_path: Path, user: dict[str, Any], message: str) -> None:
    path = write_kubeconfig(tmp_path, "https://127.0.0.1:6443", cluster={}, user=user)
    with pytest.raises(UserError, match=message):
        load_kubeconfig(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "does not exist"), ("{not yaml", "is not valid YAML"), ("- a list", "is not a kubeconfig")],
)
def test_unreadable_kubeconfigs(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "kubeconfig"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match=message):
        load_kubeconfig(path)


def test_plain_http_only_to_loopback(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path, "http://10.0.0.1:8080", cluster={}, user={})
    with pytest.raises(UserError, match="must be an https:// URL"):
        load_kubeconfig(path)
    path = write_kubeconfig(tmp_path, "http://127.0.0.1:8001", cluster={}, user={})
    assert load_kubeconfig(path).server == "http://127.0.0.1:8001"


def service_account(directory: Path, cluster_tls: ClusterTls, namespace: str = "shop") -> Path:
    directory.mkdir()
    (directory / "token").write_text(TOKEN)
    shutil.copy(cluster_tls.ca_file, directory / "ca.crt")
    (directory / "namespace").write_text(namespace)
    return directory


async def test_in_cluster(k8s: FakeKubernetes, tmp_path: Path, cluster_tls: ClusterTls) -> None:
    sa_dir = service_account(tmp_path / "sa", cluster_tls)
    environ = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(k8s.port)}
    step = KubernetesStep(environ=environ, service_account_dir=sa_dir, poll_interval=0.01)
    ctx = step_context(RunbooksConfig(kubernetes={"here": KubernetesCluster(in_cluster=True)}))

    outcome = await step.run(args(action="rollout_restart"), ctx)

    assert outcome.ok, outcome
    assert k8s.calls("PATCH")[0].path == WEB  # namespace from the service account


def test_in_cluster_configuration_errors(tmp_path: Path, cluster_tls: ClusterTls) -> None:
    with pytest.raises(UserError, match="needs both KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT"):
        load_in_cluster({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, tmp_path)
    with pytest.raises(UserError, match=r"service account token .* does not exist"):
        load_in_cluster({}, tmp_path / "nowhere")
    sa_dir = service_account(tmp_path / "sa", cluster_tls)
    connection = load_in_cluster({}, sa_dir)
    assert connection.server == "https://kubernetes.default.svc:443"
    assert connection.namespace == "shop"
    ipv6 = load_in_cluster({"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}, sa_dir)
    assert ipv6.server == "https://[fd00::1]:443"


async def test_cluster_resolution(kubeconfig: Path) -> None:
    two = RunbooksConfig(
        kubernetes={
            "a": KubernetesCluster(kubeconfig=str(kubeconfig)),
            "b": KubernetesCluster(in_cluster=True),
        }
    )
    with pytest.raises(UserError, match=re.escape("needs `cluster`: one of [runbooks.kubernetes] (a, b)")):
        await STEP_UNDER_TEST.run(args(action="pods"), step_context(two))
    with pytest.raises(UserError, match="no kubernetes cluster 'c'"):
        await STEP_UNDER_TEST.run(args(action="pods", cluster="c"), step_context(two))


# --- arguments -------------------------------------------------------------------------------


def test_args_shape_and_destructiveness() -> None:
    assert STEP.kind == "kubernetes"
    assert STEP.destructive(args(action="rollout_restart"))
    assert STEP.destructive(args(action="scale", replicas=2))
    assert not STEP.destructive(args(action="rollout_status"))
    assert not STEP.destructive(args(action="pods"))
    with pytest.raises(ValidationError, match="scale needs replicas"):
        args(action="scale")
    with pytest.raises(ValidationError, match="replicas goes only with action scale"):
        args(action="pods", replicas=2)
    with pytest.raises(ValidationError, match="cannot be scaled"):
        args(action="scale", replicas=2, workload_kind="daemonset")
    with pytest.raises(ValidationError):
        args(action="scale", replicas=-1)
    with pytest.raises(ValidationError):
        args(action="delete")
    describe = STEP.describe(args(action="scale", replicas=4, namespace="shop", cluster="prod"))
    assert describe == (
        "scale deployment web to 4 replicas in namespace shop on cluster prod, "
        "then wait up to 300 s for the rollout"
    )


# --- pure decisions --------------------------------------------------------------------------


def deployment(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "generation": status.pop("generation", 2)},
        "spec": {"replicas": 3},
        "status": {
            "observedGeneration": 2,
            "replicas": 3,
            "updatedReplicas": 3,
            "availableReplicas": 3,
            **status,
        },
    }


@pytest.mark.parametrize(
    ("obj", "done", "message"),
    [
        (deployment(), True, 'deployment "web" successfully rolled out'),
        (deployment(generation=3), False, "waiting for deployment spec update to be observed"),
        (deployment(updatedReplicas=1), False, "1 out of 3 new replicas have been updated"),
        (deployment(replicas=4), False, "1 old replicas are pending termination"),
        (deployment(availableReplicas=2), False, "2 of 3 updated replicas are available"),
    ],
)
def test_deployment_rollout_status(obj: dict[str, Any], done: bool, message: str) -> None:
    status = rollout_status("deployment", obj)
    assert (status.done, status.message, status.failed) == (done, message, False)


def test_a_passed_progress_deadline_fails_the_rollout() -> None:
    obj = deployment(
        updatedReplicas=1,
        conditions=[{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}],
    )
    status = rollout_status("deployment", obj)
    assert status.failed and not status.done
    assert status.message == 'deployment "web" exceeded its progress deadline'


def test_statefulset_rollout_status() -> None:
    obj: dict[str, Any] = {
        "metadata": {"name": "db", "generation": 4},
        "spec": {"replicas": 3, "updateStrategy": {"type": "RollingUpdate"}},
        "status": {
            "observedGeneration": 4,
            "readyReplicas": 3,
            "updatedReplicas": 1,
            "currentReplicas": 2,
            "currentRevision": "db-1",
            "updateRevision": "db-2",
        },
    }
    assert rollout_status("statefulset", obj).message == (
        "waiting for statefulset rolling update to complete 1 pods at revision db-2"
    )
    obj["status"]["readyReplicas"] = 2
    assert rollout_status("statefulset", obj).message == "waiting for 1 pods to be ready"
    obj["status"].update(readyReplicas=3, currentRevision="db-2", currentReplicas=3)
    assert rollout_status("statefulset", obj).done
    obj["spec"]["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}
    obj["status"]["updatedReplicas"] = 0
    assert not rollout_status("statefulset", obj).done
    obj["spec"]["updateStrategy"] = {"type": "OnDelete"}
    assert rollout_status("statefulset", obj).failed


def test_daemonset_rollout_status() -> None:
    obj: dict[str, Any] = {
        "metadata": {"name": "agent", "generation": 2},
        "spec": {"updateStrategy": {"type": "RollingUpdate"}},
        "status": {
            "observedGeneration": 2,
            "desiredNumberScheduled": 4,
            "updatedNumberScheduled": 3,
            "numberAvailable": 4,
        },
    }
    assert rollout_status("daemonset", obj).message == "3 out of 4 new pods have been updated"
    obj["status"]["updatedNumberScheduled"] = 4
    assert rollout_status("daemonset", obj).done


def test_label_selector() -> None:
    selector = {
        "matchLabels": {"app": "web", "tier": "front"},
        "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["prod", "canary"]},
            {"key": "legacy", "operator": "DoesNotExist"},
            {"key": "zone", "operator": "NotIn", "values": ["b"]},
            {"key": "owner", "operator": "Exists"},
        ],
    }
    assert label_selector(selector) == "app=web,tier=front,env in (prod,canary),!legacy,zone notin (b),owner"


def test_pod_state_follows_kubectl() -> None:
    init = pod_state(
        {
            "metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": "migrate"}], "containers": [{"name": "app"}]},
            "status": {
                "phase": "Pending",
                "initContainerStatuses": [
                    {
                        "name": "migrate",
                        "restartCount": 2,
                        "state": {"terminated": {"exitCode": 1, "reason": "Error"}},
                    }
                ],
                "containerStatuses": [{"name": "app", "state": {"waiting": {"reason": "PodInitializing"}}}],
            },
        }
    )
    assert (init.status, init.restarts, init.reasons) == ("Init:Error", 2, ("init migrate: Error (exit 1)",))
    oom = pod_state(
        {
            "metadata": {"name": "q", "deletionTimestamp": "2024-05-01T10:00:00Z"},
            "spec": {"containers": [{"name": "app"}]},
            "status": {
                "phase": "Running",
                "containerStatuses": [
                    {"name": "app", "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}
                ],
            },
        }
    )
    assert oom.status == "Terminating"
    assert oom.reasons == ("app: OOMKilled (exit 137)",)
    assert not oom.is_ready


def test_rfc3339() -> None:
    assert rfc3339(datetime(2024, 5, 1, 12, 0, 0, 999, tzinfo=UTC)) == "2024-05-01T12:00:00Z"
    with pytest.raises(ValueError):
        rfc3339(datetime(2024, 5, 1))
