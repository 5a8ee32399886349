"""The same-run baseline of the program's evaluation (benchmarks/run_all.py, figure 4): a
Pulumi program that registers the same number of resources, of the same types, with the
same inputs (an archive stands in as its path), and does nothing else - no packaging, no
hashing, no config, no policy building."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PROGRAM = '''
import json
from pathlib import Path

import pulumi

PROVIDERS = ("aws", "random", "pulumi")
for typ, name, inputs, custom in json.loads((Path(__file__).parent / "resources.json").read_text()):
    if custom:
        pulumi.CustomResource(typ, name, inputs)
    else:
        pulumi.ComponentResource(typ, name, inputs)
'''


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(getattr(value, "path", value))


def write(evaluation, folder: Path, stack: str) -> Path:
    """The baseline program for ``evaluation``'s resources, written into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Pulumi.yaml").write_text("name: baseline\nruntime: python\n")
    (folder / f"Pulumi.{stack}.yaml").write_text("config: {}\n")
    (folder / "__main__.py").write_text(PROGRAM)
    rows = []
    for n, r in enumerate(evaluation.resources):
        if r.type == "pulumi:pulumi:StackReference":
            continue
        custom = r.type.split(":")[0] in ("aws", "random")
        rows.append([r.type, f"r{n}-{r.name}", _plain(r.inputs) if custom else {}, custom])
    (folder / "resources.json").write_text(json.dumps(rows))
    return folder
