"""python -m failover_drill.toolchain build [components...] | fetch [packages...] | crds [sources...] | paths | versions"""

from __future__ import annotations

import argparse
import sys

from failover_drill import obs
from failover_drill.errors import DrillError
from failover_drill.toolchain.build import _fmt_elapsed, binary_path, ensure_built, reported_version
from failover_drill.toolchain.debs import ensure_fetched
from failover_drill.toolchain.pins import load_pins
from failover_drill.toolchain.sources import crd_files


def _fetch_progress(message: str) -> None:
    sys.stderr.write(f"[fetch] {message}\n")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m failover_drill.toolchain",
        description="Build the pinned Kubernetes components with go; fetch the pinned Debian binaries; "
        "list the pinned upstream CRDs.",
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the components whose pin changed (default: all)")
    b.add_argument("components", nargs="*")
    b.add_argument("--force", action="store_true", help="rebuild even when up to date")
    f = sub.add_parser("fetch", help="fetch the pinned Debian packages' binaries (default: all; Prometheus)")
    f.add_argument("packages", nargs="*")
    f.add_argument("--force", action="store_true", help="fetch again even when cached")
    c = sub.add_parser("crds", help="print the paths of the pinned upstream CRD files")
    c.add_argument("sources", nargs="*")
    p = sub.add_parser("paths", help="print each built component's binary (building what is missing)")
    p.add_argument("components", nargs="*")
    v = sub.add_parser("versions", help="print pinned and reported version of each built component")
    v.add_argument("components", nargs="*")
    args = parser.parse_args(argv)
    obs.configure("warning")
    try:
        if args.cmd == "build":
            built = ensure_built(args.components, force=args.force)
            for name, item in built.items():
                took = "up to date" if item.seconds is None else f"built in {_fmt_elapsed(item.seconds)}"
                print(f"{name} {item.component.version}: {item.path} ({took})")
        elif args.cmd == "fetch":
            fetched = ensure_fetched(args.packages, force=args.force, progress=_fetch_progress)
            for name, got in fetched.items():
                took = "cached" if got.seconds is None else f"fetched in {_fmt_elapsed(got.seconds)}"
                print(f"{name} {got.deb.version}: {got.path} ({took})")
        elif args.cmd == "crds":
            for path in crd_files(args.sources):
                print(path)
        elif args.cmd == "paths":
            for name, item in ensure_built(args.components).items():
                print(f"{name}\t{item.path}")
        else:
            pins = load_pins()
            for name in args.components or pins.components:
                comp = pins.component(name)
                exe = binary_path(comp)
                reported = reported_version(comp, exe) if exe.exists() else "not built"
                print(f"{name}\tpinned {comp.version}\treports {reported}")
    except DrillError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
