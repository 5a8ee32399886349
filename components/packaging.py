"""Deterministic Lambda artifacts: one zip per function, one runtime layer.

A function's bundle holds its entry module and the ``handlers`` modules it imports
(found by reading import statements, transitively), nothing else: editing one service's
code changes only that service's bundles. The layer holds the pinned Lambda runtime
requirements, unpacked from pure ``py3-none-any`` wheels, so it runs on python3.12/arm64
and holds no compiled code. Zips are byte-for-byte reproducible: sorted entries, a fixed
timestamp and fixed modes, no bytecode. The engine hashes a prebuilt zip by its bytes, so
an unchanged program previews with no code changes.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HANDLERS_PACKAGE = "handlers"
BUILD_DIR = ROOT / ".build"
WHEEL_DIR = ROOT / ".cache" / "wheels"
LAMBDA_REQUIREMENTS = ROOT / "requirements-lambda.txt"

_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_FILE_MODE = 0o100644 << 16   # regular file, rw-r--r--
_COMPILED = (".so", ".pyd", ".dylib", ".dll")


class PackagingError(RuntimeError):
    """A bundle or the layer cannot be built; the message says what to do."""


@dataclass(frozen=True)
class Artifact:
    path: Path
    sha256: str
    size: int
    files: tuple[str, ...]


# ---------------------------------------------------------------- function bundles

def handler_modules(entry: str, root: Path = ROOT) -> list[str]:
    """Every ``handlers`` module the entry module needs, itself and packages included."""
    seen: set[str] = set()
    todo = [entry]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = _module_path(name, root)
        if path is None:
            raise PackagingError(f"module {name} not found under {root / HANDLERS_PACKAGE}")
        seen.add(name)
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parent packages
        todo.extend(_imports_of(name, path, root))
    return sorted(seen)


def build_bundle(entry: str, label: str, root: Path = ROOT, out_dir: Path | None = None) -> Artifact:
    """Zip the modules ``entry`` needs into ``.build/bundles/{label}.zip``."""
    files = {}
    for name in handler_modules(entry, root):
        path = _module_path(name, root)
        files[str(path.relative_to(root)).replace(os.sep, "/")] = path.read_bytes()
    _save_imports_cache()
    return _write_zip(files, (out_dir or BUILD_DIR / "bundles") / f"{label}.zip")


def _module_path(name: str, root: Path) -> Path | None:
    if name != HANDLERS_PACKAGE and not name.startswith(HANDLERS_PACKAGE + "."):
        return None
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


# What each module imports depends only on its name and its bytes: parsing is most of a
# bundle's build, so it is cached by content, in memory and in ``.build/imports.json`` (an
# evaluation is a fresh process under `pulumi up`). A stale or foreign entry is harmless: a
# changed file has another digest, and the candidates are still checked on disk below.
IMPORTS_CACHE = BUILD_DIR / "imports.json"
_imports_cache: dict[str, list[list[str]]] | None = None
_imports_dirty = False


def _cached_candidates(name: str, source: bytes, path: Path) -> list[list[str]]:
    global _imports_cache, _imports_dirty
    if _imports_cache is None:
        try:
            _imports_cache = json.loads(IMPORTS_CACHE.read_text())
        except (OSError, ValueError):
            _imports_cache = {}
    key = hashlib.sha256(name.encode() + b"\0" + path.name.encode() + b"\0" + source).hexdigest()
    hit = _imports_cache.get(key)
    if hit is None:
        hit = _candidates(name, source, path)
        _imports_cache[key] = hit
        _imports_dirty = True
    return hit


def _save_imports_cache() -> None:
    global _imports_dirty
    if not _imports_dirty or _imports_cache is None:
        return
    try:
        IMPORTS_CACHE.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=IMPORTS_CACHE.parent, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w") as fh:
            json.dump(_imports_cache, fh)
        os.replace(tmp, IMPORTS_CACHE)
        _imports_dirty = False
    except OSError:
        pass        # a cache: never a reason to fail a build


def _candidates(name: str, source: bytes, path: Path) -> list[list[str]]:
    """Each import statement's module and the names it imports from it."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: list[list[str]] = []
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, ast.Import):
            found += [[a.name] for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append([module, *(a.name for a in node.names)])
    return found


def _imports_of(name: str, path: Path, root: Path) -> list[str]:
    found = []
    for module, *names in _cached_candidates(name, path.read_bytes(), path):
        found.append(module)
        # ``from handlers.shared import files`` imports a submodule by that name
        found += [f"{module}.{n}" for n in names if _module_path(f"{module}.{n}", root)]
    return [m for m in found if _module_path(m, root)]


# ---------------------------------------------------------------- the runtime layer

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)$")


def read_pins(requirements: Path = LAMBDA_REQUIREMENTS) -> list[tuple[str, str]]:
    pins = []
    for raw in requirements.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _PIN.match(line)
        if not match:
            raise PackagingError(f"{requirements.name}: {line!r} is not an exact pin (name==version)")
        pins.append((match.group(1), match.group(2)))
    return pins


def find_wheel(name: str, version: str, wheel_dir: Path = WHEEL_DIR) -> Path:
    norm = re.sub(r"[-_.]+", "_", name).lower()
    if wheel_dir.is_dir():
        for wheel in sorted(wheel_dir.glob("*.whl")):
            parts = wheel.name[:-4].split("-")
            if len(parts) < 5 or re.sub(r"[-_.]+", "_", parts[0]).lower() != norm:
                continue
            if parts[1] != version:
                continue
            py, abi, plat = parts[-3:]
            if abi == "none" and plat == "any" and "py3" in py.split("."):
                return wheel
    raise PackagingError(
        f"no pure-Python (py3-none-any) wheel for {name}=={version} in {wheel_dir}; "
        "run `make wheels` (the layer holds no compiled code, so a pin without such a "
        "wheel cannot go into it)")


def build_layer(requirements: Path = LAMBDA_REQUIREMENTS, wheel_dir: Path = WHEEL_DIR,
                out_dir: Path | None = None) -> Artifact:
    """The runtime layer zip (``python/...``), rebuilt only when the pins or wheels change."""
    out_dir = out_dir or BUILD_DIR
    wheels = [find_wheel(n, v, wheel_dir) for n, v in read_pins(requirements)]
    inputs = hashlib.sha256()
    for wheel in wheels:
        inputs.update(wheel.name.encode() + b"\0" + hashlib.sha256(wheel.read_bytes()).digest())
    target = out_dir / f"layer-{inputs.hexdigest()[:16]}.zip"
    if target.is_file():
        return _describe(target)
    files: dict[str, bytes] = {}
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as zf:
            for info in zf.infolist():
                name = info.filename
                if info.is_dir() or "__pycache__/" in name or name.endswith((".pyc", ".pyo")):
                    continue
                if name.endswith(_COMPILED):
                    raise PackagingError(f"{wheel.name} holds compiled code ({name}); "
                                         "the layer must be pure Python")
                if name.endswith(".dist-info/RECORD"):
                    continue  # install bookkeeping; hashes of files we repack
                files[f"python/{name}"] = zf.read(info)
    return _write_zip(files, target)


# ---------------------------------------------------------------- zip writing

def _write_zip(files: dict[str, bytes], target: Path) -> Artifact:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.external_attr = _FILE_MODE
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, whatever machine builds it
            zf.writestr(info, files[name], compresslevel=9)
    data = buffer.getvalue()
    target.parent.mkdir(parents=True, exist_ok=True)
    if not (target.is_file() and target.read_bytes() == data):
        # Atomic: a concurrent evaluation never sees a half-written zip.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".zip")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    return Artifact(target, hashlib.sha256(data).hexdigest(), len(data), tuple(sorted(files)))


def _describe(path: Path) -> Artifact:
    data = path.read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = tuple(zf.namelist())
    return Artifact(path, hashlib.sha256(data).hexdigest(), len(data), names)
