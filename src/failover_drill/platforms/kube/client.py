"""Every Kubernetes API operation the tool makes, on the `kubernetes` Python client: server-side
apply, reads, watches, status patches, scaling, secrets, logs and exec into a pod's container
(the API server's streaming exec, as `kubectl exec` uses it). The kind and kwok platforms use this
(subprocesses stay only for what has no API: docker, kind, tc, istioctl, cilium); errors come back
as PlatformError naming the object and what the API server said."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import urllib3
import websocket
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import DynamicApiError, ResourceNotFoundError
from kubernetes.stream import stream as ws_stream
from kubernetes.stream.ws_client import ERROR_CHANNEL, STDERR_CHANNEL, STDOUT_CHANNEL

from failover_drill.errors import PlatformError
from failover_drill.platforms.polling import wait_until

FIELD_MANAGER = "failover-drill"
Obj = dict[str, Any]


def _name(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{obj.get('kind')} {ns + '/' if ns else ''}{meta.get('name')}"


def _api_message(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            return str(json.loads(body).get("message") or body)[:600]
        except ValueError:
            return body[:600]
    return str(exc)[:600]


class Kube:
    """One cluster (one kubeconfig context)."""

    def __init__(self, kubeconfig: Path, context: str | None = None, timeout_s: float = 10.0) -> None:
        self.kubeconfig = kubeconfig
        self.context = context
        self.timeout_s = timeout_s
        cfg = client.Configuration()
        config.load_kube_config(config_file=str(kubeconfig), context=context, client_configuration=cfg)
        # Our control planes answer on 127.0.0.1; a proxy from the environment must not intercept.
        cfg.proxy = None
        cfg.retries = 0
        self.api = client.ApiClient(cfg)
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.discovery = client.DiscoveryV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self._dynamic: DynamicClient | None = None

    def close(self) -> None:
        self.api.close()

    def where(self) -> str:
        return self.context or str(self.kubeconfig)

    @property
    def dynamic(self) -> DynamicClient:
        if self._dynamic is None:
            try:
                self._dynamic = DynamicClient(self.api)
            except (ApiException, urllib3.exceptions.HTTPError) as exc:
                raise PlatformError(f"{self.where()}: API discovery failed: {_api_message(exc)}") from None
        return self._dynamic

    # -- apply -----------------------------------------------------------------------------------
    def apply(self, objects: list[Obj], *, force: bool = True, namespace: str | None = None) -> None:
        """Server-side apply, in order: the API server validates each object with its real schema.
        namespace: where namespaced objects that name none go (`kubectl apply -n`)."""
        for obj in objects:
            try:
                resource = self.dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
            except ResourceNotFoundError:
                # A CRD applied a moment ago: discovery has to be read again.
                self.dynamic.resources.invalidate_cache()
                try:
                    resource = self.dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
                except ResourceNotFoundError:
                    raise PlatformError(
                        f"{self.where()}: the API server does not serve {obj['apiVersion']} {obj['kind']}",
                        hint="its CustomResourceDefinition must be applied first",
                    ) from None
            ns = (obj.get("metadata") or {}).get("namespace")
            if ns is None and namespace is not None and resource.namespaced:
                ns = namespace
            body = (
                obj
                if ns == (obj.get("metadata") or {}).get("namespace")
                else {
                    **obj,
                    "metadata": {**(obj.get("metadata") or {}), "namespace": ns},
                }
            )
            try:
                self.dynamic.server_side_apply(
                    resource,
                    body=body,
                    namespace=ns,
                    field_manager=FIELD_MANAGER,
                    force_conflicts=force,
                )
            except (DynamicApiError, ApiException) as exc:
                raise PlatformError(
                    f"{self.where()}: the API server refused {_name(obj)}: {_api_message(exc)}",
                    hint="the manifest does not fit the cluster's schema; fix it in clusters/manifests/",
                ) from None

    def create_crds(self, crds: list[Obj]) -> None:
        """CustomResourceDefinitions on a fresh cluster: created, not server-side applied. Applying
        computes managed fields over the whole OpenAPI schema, which for Argo Rollouts' and Istio's
        (megabytes) took most of a kwok `up`. One that exists already is applied as usual."""
        ext = client.ApiextensionsV1Api(self.api)
        for crd in crds:
            try:
                # The client sends a plain dict as it is; its stubs only name the model class.
                ext.create_custom_resource_definition(body=cast(Any, crd), field_manager=FIELD_MANAGER)
            except ApiException as exc:
                if exc.status != 409:
                    raise PlatformError(
                        f"{self.where()}: the API server refused {_name(crd)}: {_api_message(exc)}"
                    ) from None
                self.apply([crd])

    def wait_crds(self, names: list[str], timeout_s: float = 60.0) -> None:
        """Until every named CustomResourceDefinition is Established."""
        ext = client.ApiextensionsV1Api(self.api)
        pending = list(names)

        def not_yet() -> str | None:
            nonlocal pending
            still = []
            for name in pending:
                try:
                    crd = ext.read_custom_resource_definition(name)
                except ApiException:
                    still.append(name)
                    continue
                status: Any = crd.status
                conds = {c.type: c.status for c in (status.conditions or [])} if status else {}
                if conds.get("Established") != "True":
                    still.append(name)
            pending = still
            return ", ".join(pending) or None

        wait_until(
            not_yet,
            timeout_s,
            0.2,
            lambda waiting: PlatformError(f"{self.where()}: CRDs not established after {timeout_s:g} s: {waiting}"),
        )
        self.dynamic.resources.invalidate_cache()

    # -- reads -----------------------------------------------------------------------------------
    def _one(self, doing: str, kind: str, name: str, call: Callable[[], Any]) -> Any:
        """call() on one named object: None when it is not there (404), any other failure a
        PlatformError saying what was being done to it."""
        try:
            return call()
        except (DynamicApiError, ApiException) as exc:
            if getattr(exc, "status", None) == 404:
                return None
            raise PlatformError(f"{self.where()}: {doing} {kind} {name}: {_api_message(exc)}") from None
        except urllib3.exceptions.HTTPError as exc:
            # An API server that is down (a region or control-plane loss) is the caller's to judge.
            raise PlatformError(f"{self.where()}: {doing} {kind} {name}: {exc}") from None

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        def read() -> Any:
            resource = self.dynamic.resources.get(api_version=api_version, kind=kind)
            return self.dynamic.get(resource, name=name, namespace=namespace)

        got = self._one("reading", kind, name, read)
        out: Obj | None = None if got is None else got.to_dict()
        return out

    def list_objects(self, api_version: str, kind: str, namespace: str | None = None, **selectors: str) -> list[Obj]:
        try:
            resource = self.dynamic.resources.get(api_version=api_version, kind=kind)
            got = self.dynamic.get(resource, namespace=namespace, **selectors)
        except (DynamicApiError, ApiException) as exc:
            raise PlatformError(f"{self.where()}: listing {kind}: {_api_message(exc)}") from None
        except urllib3.exceptions.HTTPError as exc:
            raise PlatformError(f"{self.where()}: listing {kind}: {exc}") from None
        return [i.to_dict() for i in got.items]

    def pods(self, namespace: str, label_selector: str = "") -> list[Obj]:
        """Pods as plain JSON-shaped dicts (camelCase keys, as the API server writes them)."""
        try:
            got = self.core.list_namespaced_pod(
                namespace, label_selector=label_selector, _request_timeout=self.timeout_s
            )
        except ApiException as exc:
            raise PlatformError(f"{self.where()}: listing pods: {_api_message(exc)}") from None
        out: list[Obj] = self.api.sanitize_for_serialization(got)["items"]
        return out

    def nodes(self) -> list[Obj]:
        try:
            got = self.core.list_node(_request_timeout=self.timeout_s)
        except ApiException as exc:
            raise PlatformError(f"{self.where()}: listing nodes: {_api_message(exc)}") from None
        out: list[Obj] = self.api.sanitize_for_serialization(got)["items"]
        return out

    def events(self, namespace: str) -> list[Obj]:
        """The namespace's Events (what controllers recorded about their objects), as JSON dicts."""
        try:
            got = self.core.list_namespaced_event(namespace, _request_timeout=self.timeout_s)
        except ApiException as exc:
            raise PlatformError(f"{self.where()}: listing events: {_api_message(exc)}") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise PlatformError(f"{self.where()}: listing events: the API server did not answer ({exc})") from None
        out: list[Obj] = self.api.sanitize_for_serialization(got)["items"]
        return out

    def server_version(self) -> str:
        info = client.VersionApi(self.api).get_code()
        return str(info.git_version)

    def ready(self) -> bool:
        try:
            client.VersionApi(self.api).get_code(_request_timeout=2)
        except (ApiException, urllib3.exceptions.HTTPError, OSError):
            return False
        return True

    # -- watches ---------------------------------------------------------------------------------
    def watch(
        self,
        lister: Callable[..., Any],
        *,
        stop: Callable[[], bool] = lambda: False,
        timeout_s: int = 30,
        **kwargs: Any,
    ) -> Iterator[tuple[str, Any]]:
        """(event type, object) from a list-then-watch that re-lists after every expiry or error:
        ADDED for everything listed first, then what changes. Ends when stop() says so."""
        while not stop():
            try:
                listed = lister(**kwargs, _request_timeout=self.timeout_s)
                for item in listed.items:
                    yield "ADDED", item
                rv = listed.metadata.resource_version
                w = watch.Watch()
                for ev in w.stream(lister, resource_version=rv, timeout_seconds=timeout_s, **kwargs):
                    yield ev["type"], ev["object"]
                    if stop():
                        w.stop()
                        return
            except (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError):
                # The API server is gone (control-plane loss) or the watch expired: keep what we
                # had and try again, as informers do, for as long as the caller watches (no
                # retry budget to give tenacity: the watch ends only when stop() says so).
                time.sleep(1.0)

    def follow_log(self, name: str, namespace: str, container: str | None = None, idle_s: float = 3600.0) -> LogStream:
        """A pod's log as the container writes it (`kubectl logs -f`): the API server streams it
        from the node's kubelet. Opened on first iteration, so a thread can wait on it; it breaks
        after idle_s without a byte (a quiet container is no reason to give up sooner)."""
        timeout = (self.timeout_s, idle_s)  # (connect, read)

        def open_() -> Any:
            try:
                return self.core.read_namespaced_pod_log(
                    name,
                    namespace,
                    container=container,
                    follow=True,
                    _preload_content=False,
                    _request_timeout=timeout,
                )
            except ApiException as exc:
                raise PlatformError(f"{self.where()}: log of pod {namespace}/{name}: {_api_message(exc)}") from None
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise PlatformError(f"{self.where()}: log of pod {namespace}/{name}: {exc}") from None

        return LogStream(open_, f"{self.where()}: log of pod {namespace}/{name}")

    # -- exec ------------------------------------------------------------------------------------
    def exec(
        self,
        pod: str,
        namespace: str,
        command: Sequence[str],
        *,
        container: str | None = None,
        timeout_s: float = 60.0,
    ) -> ExecResult:
        """Run a command in a pod's container (`kubectl exec`, no stdin, no TTY): the API server
        opens a stream to the node's kubelet, which runs it in the container. Returns its exit code
        (from the Status the kubelet writes on the stream's error channel), stdout and stderr; a
        non-zero exit is the caller's to judge. A PlatformError naming the pod and container when
        the API server refuses the exec (no such pod or container, a pod without a node, no right
        to exec, a kubelet it cannot reach), when the command could not run to an exit, and when
        it has not finished after timeout_s (the stream is then closed)."""
        what = f"{self.where()}: exec in pod {namespace}/{pod}" + (f", container {container}" if container else "")
        argv = list(command)
        # A client of its own: kubernetes.stream swaps the client's transport for a websocket while
        # it connects, which calls made meanwhile on self.api from other threads must not meet.
        api = client.ApiClient(self.api.configuration)
        try:
            try:
                ws = ws_stream(
                    client.CoreV1Api(api).connect_get_namespaced_pod_exec,
                    pod,
                    namespace,
                    command=argv,
                    container=container,
                    stdin=False,
                    stdout=True,
                    stderr=True,
                    tty=False,
                    binary=True,  # bytes per channel, decoded once whole (a character may span frames)
                    _preload_content=False,
                )
            except ApiException as exc:
                raise PlatformError(f"{what}: {_exec_refusal(exc)}") from None
            out, err, status = bytearray(), bytearray(), b""
            deadline = time.monotonic() + timeout_s
            try:
                while ws.is_open():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise PlatformError(
                            f"{what}: `{shlex.join(argv)}` did not finish within {timeout_s:g} s (stream closed)"
                        )
                    ws.update(timeout=min(left, 1.0))
                    out += ws.read_channel(STDOUT_CHANNEL)
                    err += ws.read_channel(STDERR_CHANNEL)
                out += ws.read_channel(STDOUT_CHANNEL)
                err += ws.read_channel(STDERR_CHANNEL)
                status = ws.read_channel(ERROR_CHANNEL)
            except (websocket.WebSocketException, OSError, ValueError) as exc:
                raise PlatformError(f"{what}: the stream broke: {exc}") from None
            finally:
                with contextlib.suppress(websocket.WebSocketException, OSError):
                    ws.close()
        finally:
            api.close()
        try:
            code = exec_exit_code(status.decode("utf-8", "replace"))
        except ValueError as exc:
            raise PlatformError(f"{what}: `{shlex.join(argv)}` did not run to an exit: {exc}") from None
        return ExecResult(code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))

    # -- writes ----------------------------------------------------------------------------------
    def delete(
        self, api_version: str, kind: str, name: str, namespace: str | None = None, propagation: str = "Background"
    ) -> bool:
        """Delete one object without waiting (`kubectl delete --wait=false --cascade=background`): its
        dependents (a Job's pods) are the garbage collector's to remove. False when it was not there."""

        def delete() -> bool:
            resource = self.dynamic.resources.get(api_version=api_version, kind=kind)
            self.dynamic.delete(resource, name=name, namespace=namespace, body={"propagationPolicy": propagation})
            return True

        return self._one("deleting", kind, name, delete) is not None

    def patch_pod_status(self, name: str, namespace: str, status: Obj) -> None:
        try:
            self.core.patch_namespaced_pod_status(name, namespace, {"status": status}, _request_timeout=self.timeout_s)
        except ApiException as exc:
            if exc.status == 404:
                return  # deleted meanwhile
            raise PlatformError(f"{self.where()}: status of pod {namespace}/{name}: {_api_message(exc)}") from None

    def delete_pod(self, name: str, namespace: str, grace_s: int = 0) -> None:
        try:
            self.core.delete_namespaced_pod(
                name, namespace, grace_period_seconds=grace_s, _request_timeout=self.timeout_s
            )
        except ApiException as exc:
            if exc.status != 404:
                raise PlatformError(f"{self.where()}: deleting pod {namespace}/{name}: {_api_message(exc)}") from None

    def scale(self, kind: str, name: str, namespace: str, replicas: int) -> None:
        body = {"spec": {"replicas": replicas}}
        try:
            if kind == "Deployment":
                self.apps.patch_namespaced_deployment_scale(name, namespace, body, _request_timeout=self.timeout_s)
            elif kind == "StatefulSet":
                self.apps.patch_namespaced_stateful_set_scale(name, namespace, body, _request_timeout=self.timeout_s)
            else:
                raise PlatformError(f"cannot scale a {kind}")
        except ApiException as exc:
            raise PlatformError(f"{self.where()}: scaling {kind} {namespace}/{name}: {_api_message(exc)}") from None

    def replace_secret(self, name: str, namespace: str, string_data: dict[str, str], type_: str = "Opaque") -> None:
        """The whole secret replaced (a certificate rotation or a fault's lapsed chain), created if absent."""
        body: Any = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "type": type_,
            "stringData": string_data,
        }
        try:
            self.core.replace_namespaced_secret(name, namespace, body, _request_timeout=self.timeout_s)
        except ApiException as exc:
            if exc.status != 404:
                raise PlatformError(f"{self.where()}: secret {namespace}/{name}: {_api_message(exc)}") from None
            try:
                self.core.create_namespaced_secret(namespace, body, _request_timeout=self.timeout_s)
            except ApiException as exc2:
                raise PlatformError(f"{self.where()}: secret {namespace}/{name}: {_api_message(exc2)}") from None

    def patch(
        self, api_version: str, kind: str, name: str, namespace: str | None, body: Obj, subresource: str | None = None
    ) -> Obj:
        """A JSON merge patch (what `kubectl patch --type merge` sends), on the object or a subresource."""
        try:
            resource = self.dynamic.resources.get(api_version=api_version, kind=kind)
            if subresource:
                resource = resource.subresources[subresource]
            got = self.dynamic.patch(
                resource,
                body=body,
                name=name,
                namespace=namespace,
                content_type="application/merge-patch+json",
            )
        except (DynamicApiError, ApiException, KeyError) as exc:
            raise PlatformError(f"{self.where()}: patching {kind} {name}: {_api_message(exc)}") from None
        out: Obj = got.to_dict()
        return out

    def wait_rollout(self, name: str, namespace: str, timeout_s: float = 300.0) -> None:
        """Until the Deployment's rollout is complete, as `kubectl rollout status` judges it: the
        controller has seen the latest spec, every replica is updated and available, no old one is left."""

        def not_yet() -> str | None:
            try:
                d: Any = self.apps.read_namespaced_deployment(name, namespace, _request_timeout=self.timeout_s)
            except ApiException as exc:
                if exc.status != 404:
                    raise PlatformError(
                        f"{self.where()}: reading Deployment {namespace}/{name}: {_api_message(exc)}"
                    ) from None
                return "not found"
            want = 1 if d.spec.replicas is None else d.spec.replicas
            st = d.status
            seen = (st.observed_generation or 0) >= (d.metadata.generation or 0)
            updated, available, total = st.updated_replicas or 0, st.available_replicas or 0, st.replicas or 0
            if seen and updated >= want and available >= want and total <= updated:
                return None
            return f"{available}/{want} available, {updated} updated, {total} in all"

        wait_until(
            not_yet,
            timeout_s,
            0.5,
            lambda state: PlatformError(
                f"{self.where()}: Deployment {namespace}/{name} not rolled out after {timeout_s:g} s ({state})",
                hint=f"see its pods' events: `kubectl --context {self.where()} -n {namespace} describe pods`",
            ),
        )

    def wait_pods_ready(self, namespace: str, label_selector: str, timeout_s: float = 180.0) -> None:
        """Until at least one pod matches and every matching pod is Ready (`kubectl wait
        --for=condition=ready pod -l ...`, which also fails while nothing matches)."""

        def not_yet() -> str | None:
            try:
                listed: Any = self.core.list_namespaced_pod(
                    namespace, label_selector=label_selector, _request_timeout=self.timeout_s
                )
            except ApiException as exc:
                raise PlatformError(f"{self.where()}: listing pods {label_selector}: {_api_message(exc)}") from None
            unready = [
                p.metadata.name
                for p in listed.items
                if not any(c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))
            ]
            if listed.items and not unready:
                return None
            return ", ".join(unready) if listed.items else "no pod matches"

        wait_until(
            not_yet,
            timeout_s,
            0.5,
            lambda state: PlatformError(
                f"{self.where()}: pods {label_selector} in {namespace} not Ready after {timeout_s:g} s: {state}"
            ),
        )

    def wait_deployments(
        self, namespace: str, timeout_s: float = 120.0, progress: Callable[[str], None] | None = None
    ) -> None:
        """Until every Deployment in the namespace has all its replicas updated and available."""

        def not_yet() -> str | None:
            lagging = []
            listed: Any = self.apps.list_namespaced_deployment(namespace, _request_timeout=self.timeout_s)
            for d in listed.items:
                want = d.spec.replicas or 0
                st = d.status
                if (st.updated_replicas or 0) < want or (st.available_replicas or 0) < want:
                    lagging.append(f"{d.metadata.name} {st.available_replicas or 0}/{want}")
            if not lagging:
                return None
            if progress is not None:
                progress(f"{self.where()}: waiting for {', '.join(lagging)}")
            return ", ".join(lagging)

        wait_until(
            not_yet,
            timeout_s,
            0.5,
            lambda state: PlatformError(
                f"{self.where()}: deployments not available after {timeout_s:g} s: {state}",
                hint="see the pods' events: `kubectl --kubeconfig ... -n payments get pods`",
            ),
        )


@dataclass(frozen=True)
class ExecResult:
    """What a command run in a pod's container came to."""

    exit_code: int
    stdout: str
    stderr: str


# The Status a kubelet (and the API server, translating its stream) writes on an exec's error
# channel for a command that exited non-zero: reason NonZeroExitCode, the code in a cause whose
# type is ExitCode (a StatusCause's type is serialized as "reason").
_NON_ZERO_EXIT = "NonZeroExitCode"
# kwok's nodes (v0.8, the pinned version) run an exec as a local process and return os/exec's exit
# error wrapped in a message of their own; ServeExec does not see an exit in it and reports an
# InternalError whose message ends "exit status N": the code is read from there.
_WRAPPED_EXIT = re.compile(r"error executing command in container: .*exit status (-?\d+)\s*$", re.S)


def exec_exit_code(status: str) -> int:
    """The exit code an exec's error channel reports (the kubelet's Status, JSON); ValueError,
    saying why, when the command did not run to an exit (the runtime could not start it, it was
    killed by a signal, or the stream ended without a status)."""
    if not status.strip():
        raise ValueError("the stream ended without the command's exit status")
    try:
        st = json.loads(status)
    except ValueError:
        raise ValueError(f"its status is not JSON: {status[:300]!r}") from None
    if not isinstance(st, dict):
        raise ValueError(f"its status is not a Status: {status[:300]!r}")
    if st.get("status") == "Success":
        return 0
    if st.get("reason") == _NON_ZERO_EXIT:
        for cause in (st.get("details") or {}).get("causes") or []:
            kind = cause.get("reason") or cause.get("type")
            if kind == "ExitCode" and re.fullmatch(r"-?\d+", str(cause.get("message", ""))):
                return int(cause["message"])
    message = str(st.get("message") or status)
    wrapped = _WRAPPED_EXIT.search(message)
    if wrapped:
        return int(wrapped[1])
    raise ValueError(message[:600])


def _exec_refusal(exc: ApiException) -> str:
    """What the API server said when it would not open an exec stream: the Status message in the
    body of the handshake's answer, and its HTTP status (kubernetes.stream wraps websocket's error
    in an ApiException with neither)."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, websocket.WebSocketBadStatusException):
        cause = cause.__context__
    if not isinstance(cause, websocket.WebSocketBadStatusException):
        return f"the API server did not answer: {str(exc.reason or exc)[:600]}"
    body = cause.resp_body
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    try:
        message = str(json.loads(text).get("message") or text)
    except (ValueError, AttributeError):
        message = text or str(cause.status_message or "")
    return f"the API server refused it: {message.strip()[:600]} (HTTP {cause.status_code})"


class LogStream:
    """The lines of a followed log, as they come; ends when the container's output does. close()
    (from any thread) ends it early: the socket is shut down, so a read blocked on it returns."""

    def __init__(self, open_: Callable[[], Any], what: str) -> None:
        self._open = open_
        self.what = what
        self._resp: Any = None
        self._closed = False
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[str]:
        resp = self._open()
        with self._lock:
            self._resp = resp
            closed = self._closed
        if closed:
            self._shut(resp)
            return
        pending = b""
        try:
            for chunk in resp.stream(65536, decode_content=True):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line.decode("utf-8", "replace")
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            if not self._closed:
                raise PlatformError(f"{self.what}: the stream broke: {exc}") from None
        finally:
            self._shut(resp)
        if pending and not self._closed:
            yield pending.decode("utf-8", "replace")

    @staticmethod
    def _shut(resp: Any) -> None:
        # shutdown() wakes a read blocked in another thread (urllib3 >= 2.3; it refuses once the
        # response was read to its end and its connection went back to the pool); close() drops it.
        for end in ("shutdown", "close"):
            fn = getattr(resp, end, None)
            if fn is not None:
                with contextlib.suppress(OSError, RuntimeError, ValueError, urllib3.exceptions.HTTPError):
                    fn()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            resp = self._resp
        if resp is not None:
            self._shut(resp)


def default_kubeconfig() -> Path:
    """Where kubectl, kind, istioctl and cilium keep their contexts: $KUBECONFIG (a list of files
    is merged as kubectl does) or ~/.kube/config."""
    return Path(os.environ.get("KUBECONFIG") or "~/.kube/config")


class KubeContexts:
    """One Kube per context of a kubeconfig, opened on first use: a platform with a cluster per
    region (kind writes a context `kind-<cluster>` for each) asks for them by name."""

    def __init__(self, kubeconfig: Path | None = None, timeout_s: float = 10.0) -> None:
        self.kubeconfig = kubeconfig if kubeconfig is not None else default_kubeconfig()
        self.timeout_s = timeout_s
        self._open: dict[str, Kube] = {}

    def __call__(self, context: str) -> Kube:
        kube = self._open.get(context)
        if kube is None:
            try:
                kube = Kube(self.kubeconfig, context, timeout_s=self.timeout_s)
            except (config.ConfigException, OSError) as exc:
                raise PlatformError(
                    f"no usable context {context!r} in {self.kubeconfig}: {str(exc)[:300]}",
                    hint="is the cluster up? kind writes its contexts to $KUBECONFIG or ~/.kube/config "
                    "(`kubectl config get-contexts`)",
                ) from None
            self._open[context] = kube
        return kube

    def close(self) -> None:
        for kube in self._open.values():
            kube.close()
        self._open.clear()
