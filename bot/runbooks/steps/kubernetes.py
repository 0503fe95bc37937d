"""Step kind ``kubernetes``: restart, scale and look at a deployment, statefulset or daemonset.

Actions: ``rollout_restart`` (destructive; as ``kubectl rollout restart``, then
waits for the rollout), ``rollout_status`` (waits as ``kubectl rollout status``),
``scale`` (destructive; then waits for the new replica count) and ``pods`` (the
workload's pods and why any is not ready). A rollout that fails or does not
finish in time ends the step with ``ok=False`` and the pods' state in the
output. The cluster comes from ``[runbooks.kubernetes.<name>]``; the API lives
in ``bot.runbooks.kubernetes``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from bot.errors import IntegrationError, UserError
from bot.runbooks.config import KubernetesCluster, RunbooksConfig
from bot.runbooks.kubernetes import (
    RESTARTED_AT,
    SERVICE_ACCOUNT_DIR,
    KubernetesClient,
    RolloutWait,
    WorkloadKind,
    cluster_connection,
    format_pods,
    rfc3339,
    validate_name,
    validate_namespace,
)
from bot.runbooks.step import StepArgs, StepContext, StepOutcome, named_target, wait_budget

Action = Literal["rollout_restart", "rollout_status", "scale", "pods"]


class KubernetesArgs(StepArgs):
    cluster: str | None = None
    """A name under ``[runbooks.kubernetes]``; without it ``default``, or the only one configured."""
    namespace: str | None = None
    """Default: the cluster's configured namespace, else its kubeconfig context's, else ``default``."""
    action: Action
    workload_kind: WorkloadKind = "deployment"
    name: str
    replicas: int | None = Field(default=None, ge=0, le=10_000)
    """``scale``: the new number of replicas."""
    wait_seconds: float = Field(default=300, ge=0, le=3600)
    """How long to wait for the rollout (``rollout_restart``, ``rollout_status``, ``scale``);
    0: do not wait."""

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                validate_namespace(value)
            except UserError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        try:
            return validate_name(value)
        except UserError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _shape(self) -> KubernetesArgs:
        if self.action == "scale":
            if self.replicas is None:
                raise ValueError("scale needs replicas")
            if self.workload_kind == "daemonset":
                raise ValueError("a daemonset runs one pod per matching node: it cannot be scaled")
        elif self.replicas is not None:
            raise ValueError("replicas goes only with action scale")
        return self


def resolve_cluster(config: RunbooksConfig, name: str | None) -> tuple[str, KubernetesCluster]:
    return named_target(config.kubernetes, name, kind="kubernetes", table="kubernetes", what="cluster")


def _settings_environ(context: StepContext) -> Mapping[str, str]:
    return context.settings.environ if context.settings is not None else {}


class KubernetesStep:
    kind: ClassVar[str] = "kubernetes"
    args_model: ClassVar[type[StepArgs]] = KubernetesArgs

    def __init__(
        self,
        *,
        environ: Mapping[str, str] | None = None,
        service_account_dir: str | Path = SERVICE_ACCOUNT_DIR,
        poll_interval: float = 2.0,
    ) -> None:
        """``environ`` gives ``KUBERNETES_SERVICE_HOST``/``_PORT`` (in-cluster) and
        ``KUBECONFIG``; without it, the environment firebell's settings were read from."""
        self._environ = environ
        self._sa_dir = service_account_dir
        self._poll = poll_interval

    def describe(self, args: KubernetesArgs) -> str:
        target = f"{args.workload_kind} {args.name}"
        where = f"in namespace {args.namespace or '(default)'} on cluster {args.cluster or '(default)'}"
        wait = f", then wait up to {args.wait_seconds:g} s for the rollout" if args.wait_seconds else ""
        if args.action == "rollout_restart":
            return f"rollout restart {target} {where}{wait}"
        if args.action == "scale":
            return f"scale {target} to {args.replicas} replicas {where}{wait}"
        if args.action == "rollout_status":
            limit = f"wait up to {args.wait_seconds:g} s for" if args.wait_seconds else "check"
            return f"{limit} the rollout of {target} {where}"
        return f"show the pods of {target} {where}"

    def destructive(self, args: KubernetesArgs) -> bool:
        return args.action in ("rollout_restart", "scale")

    async def run(self, args: KubernetesArgs, context: StepContext) -> StepOutcome:
        cluster_name, cluster = resolve_cluster(context.config, args.cluster)
        # Reading the kubeconfig, token and certificates is file I/O: keep it off the loop.
        connection = await asyncio.to_thread(
            cluster_connection,
            cluster_name,
            cluster,
            environ=self._environ if self._environ is not None else _settings_environ(context),
            service_account_dir=self._sa_dir,
            fallback_ssl=context.ssl_context,
        )
        configured = cluster.namespace if "namespace" in cluster.model_fields_set else None
        namespace = validate_namespace(args.namespace or configured or connection.namespace or "default")
        kind, name = args.workload_kind, args.name
        request_timeout = max(1.0, min(30.0, context.timeout / 3))
        budget = wait_budget(args.wait_seconds, context.timeout)
        async with KubernetesClient(connection, timeout=request_timeout, poll_interval=self._poll) as client:
            if args.action == "pods":
                return await self._pods(client, kind, namespace, name)
            if args.action == "rollout_status":
                waited = await client.wait_for_rollout(kind, namespace, name, wait_seconds=budget)
                return await self._rollout(client, waited, kind, namespace, name, done="rolled out")

            if args.action == "rollout_restart":
                moment = context.clock.now()
                await client.rollout_restart(kind, namespace, name, now=moment)
                stamp = rfc3339(moment)
                facts: dict[str, Any] = {"restarted_at": stamp}
                header = f"{kind} {name} restarted ({RESTARTED_AT}={stamp})"
                verb = "restarted"
            else:
                assert args.replicas is not None  # the model requires it for scale
                previous = await client.get_scale(kind, namespace, name)
                now = await client.scale(kind, namespace, name, args.replicas)
                facts = {"previous_replicas": previous, "replicas": now}
                header = f"{kind} {name} scaled from {previous} to {now} replicas"
                verb = f"scaled {previous} → {now}"
            if not args.wait_seconds:
                return StepOutcome(
                    ok=True,
                    summary=f"{kind} {name} {verb} (rollout not awaited)",
                    output=header,
                    data={**self._identity(kind, namespace, name), **facts},
                )
            waited = await client.wait_for_rollout(kind, namespace, name, wait_seconds=budget)
            return await self._rollout(
                client, waited, kind, namespace, name, done=verb, header=header, facts=facts
            )

    @staticmethod
    def _identity(kind: str, namespace: str, name: str) -> dict[str, Any]:
        return {"kind": kind, "namespace": namespace, "name": name}

    async def _rollout(
        self,
        client: KubernetesClient,
        waited: RolloutWait,
        kind: str,
        namespace: str,
        name: str,
        *,
        done: str,
        header: str = "",
        facts: Mapping[str, Any] | None = None,
    ) -> StepOutcome:
        status = waited.status
        data = {
            **self._identity(kind, namespace, name),
            **(facts or {}),
            "rolled_out": waited.done,
            "desired": status.desired,
            "updated": status.updated,
            "ready": status.ready,
            "available": status.available,
            "seconds": round(waited.elapsed, 1),
        }
        lines = [header] if header else []
        lines += [f"rollout: {status.message}", f"replicas: {status.counts()}"]
        if waited.done:
            return StepOutcome(
                ok=True,
                summary=(
                    f"{kind} {name} {done}, {status.ready}/{status.desired} ready "
                    f"after {waited.elapsed:.1f} s"
                ),
                output="\n".join(lines),
                data=data,
            )
        try:
            pods = await client.pods(kind, namespace, name, workload=waited.workload)
            table = format_pods(pods)
            data["pods"] = [pod.facts() for pod in pods]
        except (UserError, IntegrationError) as exc:
            # The stalled rollout is the news; pods we could not list must not hide it.
            table = f"(could not list the pods: {exc})"
        lines += ["", "pods:", table]
        if waited.reason == "failed":
            summary = f"{kind} {name} rollout failed: {status.message}"
        else:
            summary = f"{kind} {name} not rolled out after {waited.elapsed:.1f} s: {status.message}"
        return StepOutcome(ok=False, summary=summary, output="\n".join(lines), data=data)

    async def _pods(self, client: KubernetesClient, kind: str, namespace: str, name: str) -> StepOutcome:
        pods = await client.pods(kind, namespace, name)
        ready = sum(pod.is_ready for pod in pods)
        troubled = sorted({pod.status for pod in pods if not pod.is_ready})
        summary = f"{kind} {name}: {ready}/{len(pods)} pods ready"
        if troubled:
            summary += f" ({', '.join(troubled)})"
        return StepOutcome(
            ok=ready == len(pods),
            summary=summary,
            output=format_pods(pods),
            data={
                **self._identity(kind, namespace, name),
                "pods": [pod.facts() for pod in pods],
                "ready_pods": ready,
                "total_pods": len(pods),
            },
        )


STEP = KubernetesStep()
