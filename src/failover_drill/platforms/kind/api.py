"""The kind platform's Kubernetes API operations, as ApiSteps done through the kube layer
(platforms/kube: the `kubernetes` client) and shown to humans as the kubectl command that would
do the same. Applies are server-side (the API server validates each object against its real
schema, and a second `up` re-applies what the first did without conflict); a command in a pod's
container goes through the API server's streaming exec (Kube.exec), as `kubectl exec` does."""

from __future__ import annotations

import copy
import json
import shlex
import urllib.request
from collections.abc import Sequence
from typing import Any

import yaml

from failover_drill.errors import PlatformError
from failover_drill.platforms.kind.commands import ApiStep, KubeFor
from failover_drill.platforms.kube.client import FIELD_MANAGER
from failover_drill.platforms.polling import poll

SERVER_SIDE_APPLY = ("apply", "--server-side", "--force-conflicts", f"--field-manager={FIELD_MANAGER}")


def kubectl(ctx: str, *args: str) -> tuple[str, ...]:
    return ("kubectl", "--context", ctx, *args)


def dump(objects: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False)


def _objects(text: str, where: str) -> list[dict[str, Any]]:
    try:
        return [o for o in yaml.safe_load_all(text) if isinstance(o, dict) and o.get("kind")]
    except yaml.YAMLError as exc:
        raise PlatformError(f"{where} is not YAML: {str(exc)[:300]}") from None


def fetch_objects(url: str, timeout_s: float = 60.0) -> list[dict[str, Any]]:
    """The objects of a published manifest (what `kubectl apply -f URL` reads)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            text = resp.read().decode("utf-8", "replace")
    except OSError as exc:
        raise PlatformError(f"could not download {url}: {exc}", hint="check the network (or a proxy)") from None
    return _objects(text, url)


def apply(ctx: str, title: str, objects: list[dict[str, Any]], attempts: int = 5) -> ApiStep:
    """Server-side apply, in order. Webhooks (MetalLB, istiod) answer a little after their pods
    are Ready: retried."""
    objs = copy.deepcopy(objects)
    secret = any(o.get("kind") == "Secret" for o in objs)

    def call(kube_for: KubeFor, _: str | None) -> str:
        kube_for(ctx).apply(objs)
        return "".join(f"{o['kind'].lower()}/{o['metadata']['name']} serverside-applied\n" for o in objs)

    return ApiStep(
        title,
        ctx,
        kubectl(ctx, *SERVER_SIDE_APPLY, "-f", "-"),
        call,
        stdin=dump(objs),
        attempts=attempts,
        secret=secret,
    )


def apply_urls(ctx: str, title: str, urls: list[str], attempts: int = 3, namespace: str | None = None) -> ApiStep:
    """A published manifest applied server-side (namespaced objects that name no namespace go to
    namespace, as `kubectl apply -n` puts them); CRDs it brings are awaited until Established, so
    the next step can create their objects."""

    def call(kube_for: KubeFor, _: str | None) -> str:
        objs = [o for u in urls for o in fetch_objects(u)]
        kube = kube_for(ctx)
        kube.apply(objs, namespace=namespace)
        crds = [o["metadata"]["name"] for o in objs if o["kind"] == "CustomResourceDefinition"]
        if crds:
            kube.wait_crds(crds)
        return f"{len(objs)} objects serverside-applied\n"

    files = [a for u in urls for a in ("-f", u)]
    ns = ("-n", namespace) if namespace else ()
    return ApiStep(title, ctx, kubectl(ctx, *SERVER_SIDE_APPLY, *ns, *files), call, attempts=attempts)


def apply_output_of(ctx: str, title: str, command: tuple[str, ...], attempts: int = 3) -> ApiStep:
    """What a command with no API prints (`istioctl create-remote-secret`), applied server-side.
    Its output holds credentials: never shown."""

    def call(kube_for: KubeFor, piped: str | None) -> str:
        objs = _objects(piped or "", f"the output of {command[0]}")
        if not objs:
            raise PlatformError(f"{command[0]} printed no object to apply")
        kube_for(ctx).apply(objs)
        return f"{len(objs)} objects serverside-applied\n"

    return ApiStep(title, ctx, kubectl(ctx, *SERVER_SIDE_APPLY, "-f", "-"), call, pipe_from=command, attempts=attempts)


def copy_secret(src_ctx: str, dst_ctx: str, namespace: str, name: str, title: str) -> ApiStep:
    """A Secret read from one cluster and applied, as it is, to another (data, type and labels;
    not the source's identity fields, so it can be repeated)."""

    def call(kube_for: KubeFor, _: str | None) -> str:
        got = kube_for(src_ctx).get("v1", "Secret", name, namespace)
        if got is None:
            raise PlatformError(f"{src_ctx} has no secret {namespace}/{name} yet")
        meta = got.get("metadata") or {}
        obj: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace, "labels": meta.get("labels") or {}},
            "type": got.get("type") or "Opaque",
            "data": got.get("data") or {},
        }
        kube_for(dst_ctx).apply([obj])
        return f"secret/{name} serverside-applied\n"

    return ApiStep(
        title,
        dst_ctx,
        kubectl(dst_ctx, *SERVER_SIDE_APPLY, "-f", "-"),
        call,
        reads=kubectl(src_ctx, "get", "secret", "-n", namespace, name, "-o", "yaml"),
        attempts=3,
    )


def replace_secret(ctx: str, title: str, secret: dict[str, Any]) -> ApiStep:
    """The whole Secret replaced (no key of the old one left behind), created if absent."""
    meta = secret["metadata"]

    def call(kube_for: KubeFor, _: str | None) -> str:
        kube_for(ctx).replace_secret(meta["name"], meta["namespace"], dict(secret["stringData"]), secret["type"])
        return f"secret/{meta['name']} replaced\n"

    return ApiStep(title, ctx, kubectl(ctx, "replace", "-f", "-"), call, stdin=dump([secret]), secret=True, attempts=3)


def scale(ctx: str, title: str, namespace: str, deployment: str, replicas: int) -> ApiStep:
    """A Deployment's scale subresource set to `replicas`."""

    def call(kube_for: KubeFor, _: str | None) -> str:
        kube_for(ctx).scale("Deployment", deployment, namespace, replicas)
        return f"deployment.apps/{deployment} scaled\n"

    argv = kubectl(ctx, "-n", namespace, "scale", f"deployment/{deployment}", f"--replicas={replicas}")
    return ApiStep(title, ctx, argv, call, attempts=3)


def get_object(ctx: str, title: str, api_version: str, kind: str, namespace: str, name: str) -> ApiStep:
    """One object as JSON (`kubectl get -o json`), or nothing when it does not exist."""

    def call(kube_for: KubeFor, _: str | None) -> str:
        got = kube_for(ctx).get(api_version, kind, name, namespace)
        return "" if got is None else json.dumps(got)

    argv = kubectl(ctx, "-n", namespace, "get", f"{kind.lower()}/{name}", "-o", "json", "--ignore-not-found")
    return ApiStep(title, ctx, argv, call, attempts=2, secret=kind == "Secret")


def delete(
    ctx: str, title: str, api_version: str, kind: str, namespace: str, name: str, ok_to_fail: bool = True
) -> ApiStep:
    """One object deleted without waiting, its dependents left to the garbage collector (a Job's
    pods); nothing to do when it is already gone."""

    def call(kube_for: KubeFor, _: str | None) -> str:
        gone = kube_for(ctx).delete(api_version, kind, name, namespace, propagation="Background")
        return f"{kind.lower()}/{name} deleted\n" if gone else ""

    argv = kubectl(
        ctx, "-n", namespace, "delete", kind.lower(), name, "--ignore-not-found", "--wait=false", "--cascade=background"
    )
    return ApiStep(title, ctx, argv, call, timeout_s=60, ok_to_fail=ok_to_fail, attempts=2)


def list_pods(ctx: str, title: str, namespace: str, selector: str, ok_to_fail: bool = False) -> ApiStep:
    """The names of the pods matching a label selector, one `pod/<name>` a line (`-o name`)."""

    def call(kube_for: KubeFor, _: str | None) -> str:
        pods = kube_for(ctx).list_objects("v1", "Pod", namespace, label_selector=selector)
        return "".join(f"pod/{p['metadata']['name']}\n" for p in pods)

    argv = kubectl(ctx, "-n", namespace, "get", "pods", "-l", selector, "-o", "name")
    return ApiStep(title, ctx, argv, call, ok_to_fail=ok_to_fail, attempts=2)


def wait_rollout(ctx: str, title: str, namespace: str, deployment: str, timeout_s: float = 300.0) -> ApiStep:
    def call(kube_for: KubeFor, _: str | None) -> str:
        kube_for(ctx).wait_rollout(deployment, namespace, timeout_s)
        return f'deployment "{deployment}" successfully rolled out\n'

    argv = kubectl(ctx, "-n", namespace, "rollout", "status", f"deployment/{deployment}", f"--timeout={timeout_s:g}s")
    return ApiStep(title, ctx, argv, call, timeout_s=timeout_s + 30)


def wait_pods_ready(ctx: str, title: str, namespace: str, selector: str, timeout_s: float = 180.0) -> ApiStep:
    def call(kube_for: KubeFor, _: str | None) -> str:
        kube_for(ctx).wait_pods_ready(namespace, selector, timeout_s)
        return "condition met\n"

    argv = kubectl(
        ctx, "wait", "-n", namespace, "--for=condition=ready", "pod", "-l", selector, f"--timeout={timeout_s:g}s"
    )
    return ApiStep(title, ctx, argv, call, timeout_s=timeout_s + 20, attempts=2)


def wait_nodes_ready(ctx: str, title: str, count: int, timeout_s: float = 300.0) -> ApiStep:
    """Until `count` nodes are registered and every one is Ready (`kubectl wait --for=condition=Ready
    node --all`): with kind's default CNI disabled, nodes turn Ready only once Cilium runs on them."""

    def call(kube_for: KubeFor, _: str | None) -> str:
        kube = kube_for(ctx)

        def not_yet() -> str | None:
            nodes = kube.nodes()
            unready = [
                n["metadata"]["name"]
                for n in nodes
                if not any(
                    c.get("type") == "Ready" and c.get("status") == "True"
                    for c in (n.get("status") or {}).get("conditions") or []
                )
            ]
            if len(nodes) >= count and not unready:
                return None
            return f"not Ready: {', '.join(unready)}" if unready else f"{len(nodes)} of {count} nodes registered"

        state = poll(not_yet, timeout_s, 2.0)
        if state is not None:
            raise PlatformError(
                f"{ctx}: nodes not Ready after {timeout_s:g} s ({state})",
                hint=f"look at `cilium status --context {ctx}` and `kubectl --context {ctx} describe nodes`",
            )
        return f"{count} nodes condition met\n"

    argv = kubectl(ctx, "wait", "--for=condition=Ready", "node", "--all", f"--timeout={timeout_s:g}s")
    return ApiStep(title, ctx, argv, call, timeout_s=timeout_s + 20, attempts=2)


def exec_in(
    ctx: str,
    title: str,
    namespace: str,
    pod: str,
    command: Sequence[str],
    *,
    container: str | None = None,
    timeout_s: float = 30.0,
    ok_to_fail: bool = False,
    secret: bool = False,
) -> ApiStep:
    """A command run in a pod's container through the API server (Kube.exec), shown as the
    `kubectl exec` that does the same; returns its stdout. `pod` as listed (`pod/<name>` or the
    bare name). A command that exits non-zero fails the step with its code and stderr."""
    name = pod.removeprefix("pod/")
    argv_cmd = tuple(command)

    def call(kube_for: KubeFor, _: str | None) -> str:
        done = kube_for(ctx).exec(name, namespace, argv_cmd, container=container, timeout_s=timeout_s)
        if done.exit_code != 0:
            said = done.stderr.strip() or done.stdout.strip() or "no output"
            raise PlatformError(
                f"{ctx}: `{shlex.join(argv_cmd)}` in pod {namespace}/{name} exited with code {done.exit_code}: "
                f"{said[-600:]}"
            )
        return done.stdout

    in_container = ("-c", container) if container else ()
    argv = kubectl(ctx, "-n", namespace, "exec", pod, *in_container, "--", *argv_cmd)
    return ApiStep(title, ctx, argv, call, timeout_s=timeout_s, ok_to_fail=ok_to_fail, secret=secret)
