"""The core is pure PyTorch + pyarrow: importing it must not pull in Ray or Kafka."""
import pkgutil
import subprocess
import sys
from pathlib import Path

import s2s

ADAPTERS = {"s2s.train", "s2s.stream", "s2s.cluster"}


def core_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(s2s.__path__, prefix="s2s."):
        if not any(info.name == a or info.name.startswith(a + ".") for a in ADAPTERS):
            names.append(info.name)
    return names


def test_core_imports_neither_ray_nor_kafka():
    modules = core_modules()
    assert {"s2s.model", "s2s.search", "s2s.training", "s2s.cli"} <= set(modules)
    code = ("import sys\n" + "".join(f"import {m}\n" for m in modules) +
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'kafka'))\n"
            "assert not bad, bad\n"
            "import s2s.cli; s2s.cli.build_parser()\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'kafka'))\n"
            "assert not bad, ('cli parsers imported', bad)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=Path(s2s.__file__).parents[1], timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
