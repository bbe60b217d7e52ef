"""The Kubernetes toolchain: pins, build modules, real builds with go (cached), CRDs from the pins."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from failover_drill import toolchain
from failover_drill.errors import EXIT_PLATFORM, ConfigError
from failover_drill.toolchain import gomod
from failover_drill.toolchain.build import BUILDER_REVISION, ldflags
from failover_drill.toolchain.pins import Component, load_pins

ROOT = Path(__file__).resolve().parents[1]
HAVE_GO = shutil.which("go") is not None
needs_go = pytest.mark.skipif(
    not HAVE_GO, reason="the go command is not on PATH: Kubernetes components are built from source"
)

KUBERNETES_GO_MOD = """\
module k8s.io/kubernetes

go 1.26.0

godebug default=go1.26

require (
	github.com/blang/semver/v4 v4.0.0
	k8s.io/api v0.0.0
	k8s.io/client-go v0.0.0 // indirect
)

require k8s.io/klog/v2 v2.140.0

replace (
	k8s.io/api => ./staging/src/k8s.io/api
	k8s.io/client-go => ./staging/src/k8s.io/client-go
	k8s.io/sample-cli-plugin => ./staging/src/k8s.io/sample-cli-plugin
)
"""


def test_go_mod_parse_blocks_comments_and_single_lines() -> None:
    mod = gomod.parse(KUBERNETES_GO_MOD)
    assert mod.module == "k8s.io/kubernetes"
    assert mod.go == "1.26.0"
    assert mod.godebug == ["default=go1.26"]
    assert mod.requires == {
        "github.com/blang/semver/v4": "v4.0.0",
        "k8s.io/api": "v0.0.0",
        "k8s.io/client-go": "v0.0.0",
        "k8s.io/klog/v2": "v2.140.0",
    }
    assert [r.old_path for r in mod.replaces] == ["k8s.io/api", "k8s.io/client-go", "k8s.io/sample-cli-plugin"]
    assert all(r.local for r in mod.replaces)


def test_kubernetes_staging_replaces_become_published_versions() -> None:
    text = gomod.render_build_module(
        "kube-apiserver",
        "k8s.io/kubernetes",
        "v1.36.3",
        "k8s.io/kubernetes/cmd/kube-apiserver",
        gomod.parse(KUBERNETES_GO_MOD),
    )
    assert "require k8s.io/kubernetes v1.36.3" in text
    assert "tool k8s.io/kubernetes/cmd/kube-apiserver" in text
    assert "godebug default=go1.26" in text
    assert "\tk8s.io/api => k8s.io/api v0.36.3\n" in text
    assert "\tk8s.io/client-go => k8s.io/client-go v0.36.3\n" in text
    # Not required upstream: not in the build graph, not carried.
    assert "sample-cli-plugin" not in text
    assert gomod.staging_version("v1.38.0-beta.0") == "v0.38.0-beta.0"


def test_module_replaces_are_kept_and_local_ones_at_real_versions_dropped() -> None:
    argo_like = gomod.parse(
        "module github.com/argoproj/argo-rollouts\n\ngo 1.26.1\n\n"
        "require (\n\tk8s.io/api v0.34.5\n\tgithub.com/go-check/check v1.0.0\n)\n\n"
        "replace (\n\tgithub.com/go-check/check => github.com/go-check/check v0.0.0-20180628173108-788fd7840127\n"
        "\tk8s.io/api v0.0.0 => k8s.io/api v0.34.5\n)\n"
    )
    replaces = gomod.carried_replaces(argo_like, "v1.10.1")
    assert [r.line() for r in replaces] == [
        "github.com/go-check/check => github.com/go-check/check v0.0.0-20180628173108-788fd7840127",
        "k8s.io/api v0.0.0 => k8s.io/api v0.34.5",
    ]
    etcd_like = gomod.parse(
        "module go.etcd.io/etcd/server/v3\n\ngo 1.26.0\n\nrequire go.etcd.io/etcd/api/v3 v3.6.16\n\n"
        "replace go.etcd.io/etcd/api/v3 => ../api\n\nreplace go.etcd.io/etcd => ./FORBIDDEN_DEPENDENCY\n"
    )
    assert gomod.carried_replaces(etcd_like, "v3.6.16") == []


def test_pins_name_every_component_and_crd_source() -> None:
    pins = load_pins()
    assert set(pins.components) >= {
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
        "rollouts-controller",
    }
    assert set(pins.crds) >= {"argo-rollouts", "istio", "mcs-api", "cert-manager"}
    kube = {pins.components[n].version for n in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")}
    assert len(kube) == 1, "the three Kubernetes components are one release"
    assert pins.components["etcd"].version.startswith("v3.6.")
    assert pins.components["kwok"].data_files


def test_ldflags_stamp_versions_and_leave_out_an_unknown_commit() -> None:
    c = load_pins().components["kube-apiserver"]
    flags = ldflags(c, "2026-07-22T18:07:38Z", "")
    assert f"-X k8s.io/component-base/version.gitVersion={c.version}" in flags
    assert "-X k8s.io/component-base/version.gitMajor=1" in flags
    assert f"-X k8s.io/component-base/version.gitMinor={c.version.split('.')[1]}" in flags
    assert "gitCommit" not in flags
    assert "gitCommit=abc1234" in ldflags(c, "", "abc1234")


def test_a_changed_pin_is_not_up_to_date(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FAILOVER_DRILL_CACHE", str(tmp_path))
    c = Component("etcd", "go.etcd.io/etcd/server/v3", "v3.6.16", "go.etcd.io/etcd/server/v3", ())
    exe = toolchain.binary_path(c)
    assert exe == tmp_path / "k8s" / "etcd-v3.6.16" / "bin" / "etcd"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    (exe.parent.parent / "stamp.json").write_text(json.dumps({"pin": c.fingerprint(), "builder": BUILDER_REVISION}))
    assert toolchain.up_to_date(c)
    changed = Component(c.name, c.module, c.version, c.package, ("-X other=1",))
    assert not toolchain.up_to_date(changed)


def test_no_go_on_path_is_a_platform_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FAILOVER_DRILL_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(toolchain.GoNotFound) as err:
        toolchain.ensure_built(["etcd"], progress=lambda _m: None)
    assert err.value.exit_code == EXIT_PLATFORM
    assert "go command is not on PATH" in str(err.value)


def test_cli_without_go_exits_3(tmp_path: Path) -> None:
    env = {**os.environ, "FAILOVER_DRILL_CACHE": str(tmp_path), "PATH": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "failover_drill.toolchain", "build", "etcd"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert out.returncode == EXIT_PLATFORM, out.stderr
    assert "go command is not on PATH" in out.stderr


@needs_go
def test_a_failing_build_raises_with_the_tail_of_gos_output(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FAILOVER_DRILL_CACHE", str(tmp_path))
    pins_file = tmp_path / "pins.toml"
    pins_file.write_text(
        '[components.broken]\nmodule = "go.etcd.io/etcd/server/v3"\nversion = "v3.6.16"\n'
        'package = "go.etcd.io/etcd/server/v3/no-such-command"\n'
    )
    messages: list[str] = []
    with pytest.raises(toolchain.BuildFailed) as err:
        toolchain.ensure_built(pins=load_pins(pins_file), progress=messages.append)
    assert err.value.exit_code == EXIT_PLATFORM
    text = str(err.value)
    assert "building broken v3.6.16 failed" in text
    assert "no-such-command" in text  # go's own words, from its output
    assert any("broken v3.6.16" in m for m in messages)
    assert not toolchain.binary_path(load_pins(pins_file).components["broken"]).exists()


@needs_go
@pytest.mark.timeout(3600)  # a cold build of everything takes tens of minutes
def test_built_binaries_report_their_pinned_versions() -> None:
    """Builds whatever is missing (a cold build takes tens of minutes), then asks each binary."""
    built = toolchain.ensure_built()
    for name, item in built.items():
        assert item.path.is_file(), name
        assert not item.path.is_relative_to(ROOT), "build output must stay outside the repository"
        assert toolchain.reported_version(item.component) == item.component.version, name
    # The second call finds everything up to date: nothing is rebuilt.
    assert all(b.seconds is None for b in toolchain.ensure_built().values())


@needs_go
@pytest.mark.timeout(900)  # the first run downloads the modules (Istio's is ~12 MB)
def test_crds_come_from_the_pinned_modules() -> None:
    files = toolchain.crd_files()
    kinds: set[str] = set()
    for f in files:
        assert f.is_file()
        assert not f.is_relative_to(ROOT)
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        for doc in yaml.load_all(f.read_text(), Loader=loader):
            if doc:
                assert doc["kind"] == "CustomResourceDefinition", f
                kinds.add(doc["spec"]["names"]["kind"])
    assert {"Rollout", "AnalysisTemplate", "DestinationRule", "VirtualService", "ServiceExport", "Certificate"} <= kinds


@needs_go
def test_cli_prints_crd_paths() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "failover_drill.toolchain", "crds", "mcs-api"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    paths = [Path(line) for line in out.stdout.splitlines()]
    assert [p.name for p in paths] == [
        "multicluster.x-k8s.io_serviceexports.yaml",
        "multicluster.x-k8s.io_serviceimports.yaml",
    ]
    assert all(p.is_file() for p in paths)


@needs_go
def test_up_whose_build_fails_exits_3_with_gos_words_and_leaves_nothing(tmp_path: Path) -> None:
    """`up --platform kwok` on a machine whose first build cannot fetch the pinned sources (an
    empty module cache, the module proxy off): one message, exit 3, no fleet, nothing running."""
    from tests.conftest import processes_under

    state = tmp_path / "state"
    env = {
        **os.environ,
        "FAILOVER_DRILL_CACHE": str(tmp_path / "cache"),
        "GOMODCACHE": str(tmp_path / "gomod"),
        "GOPROXY": "off",
        "FAILOVER_DRILL_STATE": str(state),
    }
    out = subprocess.run(
        [sys.executable, "-m", "failover_drill.cli", "up", "--platform", "kwok"],
        capture_output=True, text=True, env=env, timeout=120, check=False, cwd=Path(__file__).parent.parent,
    )  # fmt: skip
    assert out.returncode == EXIT_PLATFORM, out.stdout + out.stderr
    assert "cannot download" in out.stderr and "GOPROXY=off" in out.stderr and "fix:" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert not (state / "kwok" / "fleet.json").exists()
    assert processes_under(state) == []


def _use_go_proxy(monkeypatch: pytest.MonkeyPatch, url: str, modcache: Path) -> None:
    """The go command against url alone, with an empty module cache it may clean up."""
    monkeypatch.setenv("GOPROXY", url)
    monkeypatch.setenv("GOSUMDB", "off")
    monkeypatch.setenv("GOMODCACHE", str(modcache))
    monkeypatch.setenv("GOFLAGS", "-modcacherw")


def _module_proxy(module: str, version: str) -> dict[str, bytes]:
    """The three files the GOPROXY protocol serves for one tiny module."""
    import io
    import zipfile

    go_mod = f"module {module}\n\ngo 1.22\n".encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(f"{module}@{version}/go.mod", go_mod)
        z.writestr(f"{module}@{version}/hello.go", b"package tiny\n")
    base = f"/{module}/@v/{version}"
    files = {
        f"{base}.info": json.dumps({"Version": version, "Time": "2026-01-02T03:04:05Z"}).encode(),
        f"{base}.mod": go_mod,
        f"{base}.zip": buf.getvalue(),
    }
    return files


@needs_go
def test_a_module_proxy_that_refuses_at_first_is_tried_again(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The real go command against a real local GOPROXY that is not listening yet on the first
    try (connection refused, as when DNS or the proxy blinks) and is a moment later: the download
    succeeds on a later try instead of failing the whole bring-up."""
    import http.server
    import socket
    import threading

    from failover_drill.toolchain import gocmd

    module, version = "example.test/tiny", "v0.1.0"
    files = _module_proxy(module, version)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    served: list[str] = []

    class Proxy(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.append(self.path)
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.end_headers()
            self.wfile.write(body or b"not found")

        def log_message(self, *args: object) -> None:
            pass

    server: list[http.server.ThreadingHTTPServer] = []

    def listen_later() -> None:
        time.sleep(1.0)  # after the first attempt was refused, before the retry 2 s later
        server.append(http.server.ThreadingHTTPServer(("127.0.0.1", port), Proxy))
        server[0].serve_forever()

    threading.Thread(target=listen_later, daemon=True).start()
    _use_go_proxy(monkeypatch, f"http://127.0.0.1:{port}", tmp_path / "gomod")
    try:
        src = gocmd.mod_download(module, version, timeout_s=60)
    finally:
        if server:
            server[0].shutdown()
    assert (src.dir / "hello.go").read_text() == "package tiny\n"
    assert src.time == "2026-01-02T03:04:05Z"
    assert f"/{module}/@v/{version}.zip" in served


@needs_go
def test_a_module_the_proxy_does_not_have_is_not_tried_again(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A pin the proxy answers 404 for is the pin's fault: one try, and the error names it."""
    import http.server
    import threading

    from failover_drill.toolchain import gocmd

    hits: list[str] = []

    class Empty(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Empty)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _use_go_proxy(monkeypatch, f"http://127.0.0.1:{server.server_address[1]}", tmp_path / "gomod")
    try:
        with pytest.raises(gocmd.ToolchainError, match=re.escape("cannot download example.test/absent@v9.9.9")):
            gocmd.mod_download("example.test/absent", "v9.9.9", timeout_s=60)
    finally:
        server.shutdown()
    assert len([h for h in hits if h.endswith(".info")]) == 1, hits


# -- binaries from Debian packages (Prometheus) -------------------------------------------------
HAVE_APT = shutil.which("apt-get") is not None and shutil.which("dpkg-deb") is not None


def fake_apt(bin_dir: Path, download: str) -> None:
    """An apt-get on PATH whose `download` runs the given shell and whose `update` succeeds
    (dpkg-deb is the real one, linked beside it)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "apt-get"
    script.write_text(
        '#!/bin/sh\nfor a in "$@"; do last="$a"; done\n'
        'case " $* " in *" update "*) echo updated >> calls; exit 0;; esac\n'
        f"echo download >> calls\n{download}\n"
    )
    script.chmod(0o755)
    real = shutil.which("dpkg-deb")
    if real:
        (bin_dir / "dpkg-deb").symlink_to(real)
    else:
        (bin_dir / "dpkg-deb").write_text("#!/bin/sh\nexit 1\n")
        (bin_dir / "dpkg-deb").chmod(0o755)


def test_the_prometheus_pin_names_a_debian_package_and_its_sha256() -> None:
    d = load_pins().deb("prometheus")
    assert (d.package, d.binaries) == ("prometheus", ("usr/bin/prometheus",))
    assert d.version.startswith("2.") and len(d.sha256) == 64
    with pytest.raises(ConfigError, match="unknown Debian package pin 'prometheous'") as err:
        load_pins().deb("prometheous")
    assert "prometheus" in (err.value.hint or "")


def test_no_apt_is_one_clear_error_with_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FAILOVER_DRILL_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("FAILOVER_DRILL_PROMETHEUS", raising=False)
    with pytest.raises(toolchain.DebUnavailable) as err:
        toolchain.resolve_binary("prometheus")
    e = err.value
    assert e.exit_code == EXIT_PLATFORM
    assert "fetched from Debian's archive, and this machine has no apt-get and dpkg-deb" in str(e)
    assert "FAILOVER_DRILL_PROMETHEUS" in (e.hint or "")
    # The override is used as it is, and checked.
    monkeypatch.setenv("FAILOVER_DRILL_PROMETHEUS", str(tmp_path / "nothing"))
    with pytest.raises(toolchain.DebUnavailable, match=r"FAILOVER_DRILL_PROMETHEUS=.* is not an executable file"):
        toolchain.resolve_binary("prometheus")
    out = subprocess.run(
        [sys.executable, "-m", "failover_drill.toolchain", "fetch"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "FAILOVER_DRILL_CACHE": str(tmp_path), "PATH": str(tmp_path)},
    )  # fmt: skip
    assert out.returncode == EXIT_PLATFORM and "has no apt-get" in out.stderr, out.stderr


def test_a_version_the_archive_no_longer_offers_reads_private_lists_then_names_the_pin(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """apt says the version is not there: lists of the cache's own are read (the system's are not
    touched), and when they do not have it either, the error says to move the pin."""
    fake_apt(tmp_path / "bin", "echo \"E: Version '$last' for 'prometheus' was not found\" >&2; exit 100")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    monkeypatch.setenv("FAILOVER_DRILL_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("FAILOVER_DRILL_PROMETHEUS", raising=False)
    with pytest.raises(toolchain.DebUnavailable) as err:
        toolchain.ensure_fetched(["prometheus"])
    e = err.value
    version = load_pins().deb("prometheus").version
    assert f"apt-get download prometheus={version} failed" in str(e) and "was not found" in str(e)
    assert "apt-cache policy prometheus" in (e.hint or "") and "pins.toml" in (e.hint or "")
    assert (tmp_path / "cache" / "apt" / "lists").is_dir()
    assert not toolchain.deb_binary(load_pins().deb("prometheus")).exists()


def test_a_download_that_is_not_the_pinned_build_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_apt(tmp_path / "bin", 'echo junk > "prometheus_2.42.0+ds-5+deb12u1_amd64.deb"')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    monkeypatch.setenv("FAILOVER_DRILL_CACHE", str(tmp_path / "cache"))
    with pytest.raises(toolchain.DebUnavailable, match=r"has SHA256 [0-9a-f]{64}, the pin says"):
        toolchain.ensure_fetched(["prometheus"])
    d = load_pins().deb("prometheus")
    assert not toolchain.deb_binary(d).exists() and list(toolchain.deb_dir(d).iterdir()) == []


@pytest.mark.skipif(not HAVE_APT, reason="Prometheus is fetched with apt-get download and dpkg-deb")
@pytest.mark.timeout(300)
def test_prometheus_is_fetched_once_outside_the_repo_and_runs() -> None:
    """The real fetch (a 19 MB .deb from Debian's archive on first use, cached after)."""
    got = toolchain.ensure_fetched(["prometheus"])["prometheus"]
    assert got.path.is_file() and not got.path.is_relative_to(ROOT)
    out = subprocess.run([str(got.path), "--version"], capture_output=True, text=True, timeout=30, check=False)
    upstream = got.deb.version.split("+")[0]
    assert out.returncode == 0 and f"prometheus, version {upstream}" in out.stdout + out.stderr, out
    assert toolchain.ensure_fetched(["prometheus"])["prometheus"].seconds is None
