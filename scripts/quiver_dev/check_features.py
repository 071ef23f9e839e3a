"""Fails when building quiver-py alone (as maturin does) would enable other features of a
shared dependency than `cargo build --workspace` does. Each such crate, and everything
built on it (all of DataFusion), would then be compiled twice. The fix is to add the
printed features to rust/quiver-workspace-hack/Cargo.toml.

    PYTHONPATH=scripts python -m quiver_dev.check_features   (scripts/test runs it)
"""

from __future__ import annotations

import re
import subprocess
import sys

from quiver_dev.paths import ROOT

# Workspace crates may differ: they are small, and quiver-source's randomuser client is
# only for the binary.
OWN = re.compile(r"^quiver(-[a-z-]+)?$")


def features(*selection: str) -> dict[tuple[str, str], set[str]]:
    done = subprocess.run(
        ["cargo", "tree", "--locked", *selection, "-f", "{p} [{f}]", "--prefix", "none"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"cargo tree {' '.join(selection)} failed:\n{done.stderr.strip()}")
    tree = done.stdout
    found: dict[tuple[str, str], set[str]] = {}
    for line in tree.splitlines():
        match = re.match(r"^(\S+) (v\S+).*? \[(.*)\]", line)
        if match:
            name, version, feats = match.groups()
            found.setdefault((name, version), set()).update(f for f in feats.split(",") if f)
    return found


def main() -> int:
    alone = features("-p", "quiver-py", "-e", "normal,build")
    workspace = features("--workspace", "-e", "normal,build,dev")
    missing = {
        package: sorted(workspace.get(package, set()) - feats)
        for package, feats in alone.items()
        if not OWN.match(package[0]) and workspace.get(package, set()) - feats
    }
    for (name, version), feats in sorted(missing.items()):
        print(f"{name} {version}: the workspace build also enables {', '.join(feats)}")
    if missing:
        print("add these to rust/quiver-workspace-hack/Cargo.toml, or maturin rebuilds them and all above them")
        return 1
    print(f"quiver-py alone builds its {len(alone)} dependencies with the workspace's features")
    return 0


if __name__ == "__main__":
    sys.exit(main())
