"""Each peer in its own virtualenv under .peers/ (ignored), installed from PyPI, idempotently.

The virtualenv sees s2s's torch: a .pth file appends .venv's site-packages to its sys.path,
after its own site-packages, so the peer's own pins take precedence and whatever it does not
pin (torch first of all, a multi-GB download otherwise) comes from .venv. Every tool then
runs the same torch build, which makes the comparison fairer. pip sees those packages too,
so it installs only what the peer needs and .venv lacks or pins differently.

A peer that needs fixes to run on this torch and Python gets them here, at install time,
each with its reason (PeerSpec.pins, PeerSpec.patches); bench/peers.py never edits a peer at
run time. A marker file records what was installed; the same spec is not installed twice.
"""
from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PEERS_DIR = REPO / ".peers"
MARKER = "s2s-peer-install.json"


@dataclass(frozen=True)
class Patch:
    """Replace `old` by `new`, exactly `count` times, in site-packages/`path`."""
    path: str
    old: str
    new: str
    why: str
    count: int = 1


@dataclass(frozen=True)
class PeerSpec:
    name: str                       # the virtualenv is .peers/<name>-venv
    requirement: str                # e.g. "joeynmt==2.3.0"
    no_deps: bool = False           # install the requirement alone, then `deps`
    deps: tuple[str, ...] = ()      # with no_deps: the declared dependencies to install
    pins: tuple[tuple[str, str], ...] = ()   # (requirement, why), installed after
    patches: tuple[Patch, ...] = ()
    check: str = ""                 # Python run in the venv after installing: imports

    def key(self) -> dict:
        """The spec as its JSON marker holds it (tuples become lists)."""
        return json.loads(json.dumps(asdict(self)))


def venv_dir(spec: PeerSpec, root: Path = PEERS_DIR) -> Path:
    return root / f"{spec.name}-venv"


def python_of(spec: PeerSpec, root: Path = PEERS_DIR) -> Path:
    return venv_dir(spec, root) / "bin" / "python"


def host_site_packages() -> Path:
    """s2s's own site-packages (the interpreter running the harness: .venv's)."""
    return Path(sysconfig.get_paths()["purelib"])


def installed(spec: PeerSpec, root: Path = PEERS_DIR) -> bool:
    marker = venv_dir(spec, root) / MARKER
    if not marker.exists() or not python_of(spec, root).exists():
        return False
    try:
        return json.loads(marker.read_text()).get("spec") == spec.key()
    except ValueError:
        return False


def ensure(spec: PeerSpec, root: Path = PEERS_DIR, log=print) -> Path:
    """The peer's Python, installing the virtualenv first unless the same spec is there."""
    if installed(spec, root):
        return python_of(spec, root)
    venv = venv_dir(spec, root)
    log(f"installing {spec.requirement} into {venv}")
    root.mkdir(parents=True, exist_ok=True)
    if not python_of(spec, root).exists():
        # .venv's base interpreter: the peer gets a clean venv; the .pth below adds .venv's
        # packages explicitly.
        base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
        _run([str(base), "-m", "venv", str(venv)])
    site = Path(_out([str(python_of(spec, root)), "-c",
                      "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip())
    # A .pth line is appended to sys.path after the venv's own site-packages: the peer's
    # packages come first, .venv's fill in the rest.
    (site / "zz_s2s_host_packages.pth").write_text(f"{host_site_packages()}\n")
    pip = [str(python_of(spec, root)), "-m", "pip", "install", "--disable-pip-version-check",
           "--only-binary", ":all:"]
    pip_log = venv / "install.log"
    if spec.no_deps:
        _run(pip + ["--no-deps", spec.requirement], pip_log)
        if spec.deps:
            _run(pip + list(spec.deps), pip_log)
    else:
        _run(pip + [spec.requirement], pip_log)
    if spec.pins:
        _run(pip + [req for req, _ in spec.pins], pip_log)
    for patch in spec.patches:
        apply_patch(site / patch.path, patch)
    if spec.check:
        _run([str(python_of(spec, root)), "-c", spec.check], pip_log)
    (venv / MARKER).write_text(json.dumps({"spec": spec.key()}, indent=2))
    return python_of(spec, root)


def apply_patch(path: Path, patch: Patch) -> None:
    """The patch, or nothing if it is already applied; anything else is an error (a
    different version of the file: the patch must be looked at again)."""
    text = path.read_text(encoding="utf-8")
    if patch.new in text:                  # `new` names the fix, so it is never empty
        return
    found = text.count(patch.old)
    if found != patch.count:
        raise RuntimeError(f"patch for {path}: expected {patch.count} occurrence(s) of "
                           f"{patch.old!r}, found {found} ({patch.why})")
    path.write_text(text.replace(patch.old, patch.new), encoding="utf-8")


def _run(cmd: list[str], log_file: Path | None = None) -> None:
    """pip's output goes to the venv's install log; on failure its end is shown. (pip also
    lists conflicts among .venv's own packages, which it sees through the .pth: noise.)"""
    if log_file is None:
        subprocess.run(cmd, check=True)
        return
    with open(log_file, "a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode:
        tail = log_file.read_text(errors="replace").splitlines()[-20:]
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {done.returncode}); {log_file}:\n"
                           + "\n".join(tail))


def _out(cmd: list[str]) -> str:
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
