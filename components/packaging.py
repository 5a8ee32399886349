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
    root = Path(root)
    return sorted(_closure(entry, root, _module_files(root), {}))


def build_bundle(entry: str, label: str, root: Path = ROOT, out_dir: Path | None = None) -> Artifact:
    """Zip the modules ``entry`` needs into ``.build/bundles/{label}.zip``.

    Cached by content (``.build/artifacts.json``): when the names of the ``handlers``
    modules and the bytes of every module the bundle holds are those of the last build, and
    the zip on disk is the one that build wrote, the bundle costs a directory listing and a
    hash of its sources - no import scan, no compression. Anything else rebuilds it, to the
    same bytes for the same sources."""
    root = Path(root)
    target = (out_dir or BUILD_DIR / "bundles") / f"{label}.zip"
    tree = _module_files(root)
    store = _store()
    key = str(target)
    tree_digest = _names_digest(tree)
    recorded = store["bundles"].get(key)
    if (recorded and recorded["entry"] == entry and recorded["root"] == str(root)
            and recorded["tree"] == tree_digest):
        sources = _read_sources(root, recorded["files"])
        if sources is not None and _sources_digest(sources) == recorded["content"]:
            known = _known_zip(target)
            if known is not None and known.sha256 == recorded["sha256"]:
                return known
            artifact = _write_zip(sources, target)        # gone or replaced: the same bytes again
            recorded["sha256"] = artifact.sha256
            _save_store()
            return artifact
    sources = {}
    closure = _closure(entry, root, tree, sources)
    sources = {rel: sources[rel] for rel in closure.values()}
    _save_imports_cache()
    artifact = _write_zip(sources, target)
    if _kept(target):
        store["bundles"][key] = {"entry": entry, "root": str(root), "tree": tree_digest,
                                 "files": sorted(sources), "content": _sources_digest(sources),
                                 "sha256": artifact.sha256}
        _save_store()
    return artifact


def _closure(entry: str, root: Path, tree: frozenset[str], sources: dict[str, bytes]) -> dict[str, str]:
    """Module name -> file (relative to ``root``) of everything ``entry`` needs; ``sources``
    collects the bytes read on the way."""
    seen: dict[str, str] = {}
    todo = [entry]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        rel = _module_file(name, tree)
        if rel is None:
            raise PackagingError(f"module {name} not found under {root / HANDLERS_PACKAGE}")
        seen[name] = rel
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parent packages
        source = sources.get(rel)
        if source is None:
            source = sources[rel] = (root / rel).read_bytes()
        todo.extend(_imports_of(name, rel, source, tree))
    return seen


def _module_files(root: Path) -> frozenset[str]:
    """Every ``.py`` file under ``root/handlers``, as ``handlers/...`` paths: which module
    names exist (bytecode folders are not modules)."""
    found = []
    todo = [HANDLERS_PACKAGE]
    while todo:
        rel = todo.pop()
        with os.scandir(os.path.join(root, rel)) as entries:
            for entry in entries:
                if entry.is_dir():
                    if entry.name != "__pycache__":
                        todo.append(f"{rel}/{entry.name}")
                elif entry.name.endswith(".py"):
                    found.append(f"{rel}/{entry.name}")
    return frozenset(found)


def _module_file(name: str, tree: frozenset[str]) -> str | None:
    if name != HANDLERS_PACKAGE and not name.startswith(HANDLERS_PACKAGE + "."):
        return None
    base = name.replace(".", "/")
    for candidate in (f"{base}.py", f"{base}/__init__.py"):
        if candidate in tree:
            return candidate
    return None


def _names_digest(tree: frozenset[str]) -> str:
    return hashlib.sha256("\0".join(sorted(tree)).encode()).hexdigest()


def _sources_digest(sources: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for rel in sorted(sources):
        digest.update(rel.encode() + b"\0" + hashlib.sha256(sources[rel]).digest())
    return digest.hexdigest()


def _read_sources(root: Path, files: list[str]) -> dict[str, bytes] | None:
    sources = {}
    try:
        for rel in files:
            with open(os.path.join(root, rel), "rb") as fh:
                sources[rel] = fh.read()
    except OSError:
        return None         # a module is gone: the bundle changes
    return sources


# What each module imports depends only on its name and its bytes: parsing is most of a
# bundle's build, so it is cached by content, in memory and in ``.build/imports.json`` (an
# evaluation is a fresh process under `pulumi up`). A stale or foreign entry is harmless: a
# changed file has another digest, and the candidates are still checked against the tree.
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
    if _write_json(IMPORTS_CACHE, _imports_cache):
        _imports_dirty = False


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


def _imports_of(name: str, rel: str, source: bytes, tree: frozenset[str]) -> list[str]:
    found = []
    for module, *names in _cached_candidates(name, source, Path(rel)):
        found.append(module)
        # ``from handlers.shared import files`` imports a submodule by that name
        found += [f"{module}.{n}" for n in names if _module_file(f"{module}.{n}", tree)]
    return [m for m in found if _module_file(m, tree)]


# ---------------------------------------------------------------- the artifact store

# What was built, by content (``.build/artifacts.json``; an evaluation is a fresh process
# under `pulumi up`, and this module is imported afresh for every evaluation here):
# - "bundles": per zip, the entry, the digest of the module names, the files and the digest
#   of their bytes, and the digest of the zip built from them;
# - "zips": per zip, its size, mtime and inode when it was written or last read, with its
#   digest and entries, so describing an unchanged zip costs a stat, not a read and a hash.
# A stale entry is harmless: it matches only the very file (stat) or sources (bytes) it was
# made from; concurrent evaluations may overwrite each other's entries, which costs a rebuild.
ARTIFACTS_CACHE = BUILD_DIR / "artifacts.json"
_artifacts: dict | None = None


def _store() -> dict:
    global _artifacts
    if _artifacts is None:
        try:
            _artifacts = json.loads(ARTIFACTS_CACHE.read_text())
            if not (isinstance(_artifacts, dict) and _artifacts.get("version") == 1):
                raise ValueError("another layout")
        except (OSError, ValueError):
            _artifacts = {"version": 1, "bundles": {}, "zips": {}}
    return _artifacts


def _save_store() -> None:
    store = _store()
    for section in ("bundles", "zips"):      # zips deleted since: forget them
        for path in [p for p in store[section] if not os.path.exists(p)]:
            del store[section][path]
    _write_json(ARTIFACTS_CACHE, store)


def _kept(path: Path) -> bool:
    """Whether the store remembers ``path``: only artifacts under the build folder, not the
    zips tests write elsewhere."""
    return path.parent.resolve().is_relative_to(BUILD_DIR.resolve())


def _write_json(path: Path, value: object) -> bool:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(value))      # the C encoder: json.dump streams in Python
        os.replace(tmp, path)
        return True
    except OSError:
        return False        # a cache: never a reason to fail a build


def _stamp(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _known_zip(path: Path) -> Artifact | None:
    """``path``'s recorded description, if the file on disk is still the one it describes."""
    known = _store()["zips"].get(str(path))
    if known is None:
        return None
    try:
        stamp = _stamp(path.stat())
    except OSError:
        return None
    if known["stamp"] != stamp:
        return None
    return Artifact(path, known["sha256"], known["size"], tuple(known["files"]))


def _remember_zip(artifact: Artifact, stamp: list[int]) -> bool:
    if not _kept(artifact.path):
        return False
    _store()["zips"][str(artifact.path)] = {"stamp": stamp, "sha256": artifact.sha256,
                                            "size": artifact.size, "files": list(artifact.files)}
    return True


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
        if _normalized(match.group(1)) in RUNTIME_PROVIDED:
            raise PackagingError(
                f"{requirements.name}: {match.group(1)} comes with Lambda's Python runtime; a copy "
                "in the layer would shadow the runtime's and be compiled from source on every cold "
                "start (pin it in requirements-dev.txt for local runs instead)")
        pins.append((match.group(1), match.group(2)))
    return pins


# What Lambda's Python runtime provides besides the standard library (the AWS SDK and its
# dependencies, with their bytecode): never in the layer. requests (stripe's HTTP client)
# uses the runtime's urllib3, as botocore does; Powertools uses its jmespath.
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil",
                              "six", "urllib3"})


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


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
    artifact = Artifact(target, hashlib.sha256(data).hexdigest(), len(data), tuple(sorted(files)))
    target.parent.mkdir(parents=True, exist_ok=True)
    stamp = None
    try:
        with open(target, "rb") as fh:
            if fh.read() == data:
                stamp = _stamp(os.fstat(fh.fileno()))
    except OSError:
        pass
    if stamp is None:
        # Atomic: a concurrent evaluation never sees a half-written zip.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".zip")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            stamp = _stamp(os.fstat(fh.fileno()))
        os.replace(tmp, target)
    _remember_zip(artifact, stamp)
    return artifact


def _describe(path: Path) -> Artifact:
    """A zip's digest, size and entries: recorded by stat, read and hashed when it changed."""
    known = _known_zip(path)
    if known is not None:
        return known
    with open(path, "rb") as fh:
        stamp = _stamp(os.fstat(fh.fileno()))
        data = fh.read()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = tuple(zf.namelist())
    artifact = Artifact(path, hashlib.sha256(data).hexdigest(), len(data), names)
    if _remember_zip(artifact, stamp):
        _save_store()
    return artifact
