"""Lambda bundles and the runtime layer are deterministic, minimal and compiled-free."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from components import packaging
from offline.evaluate import evaluate
from tests.conftest import ROOT, evaluated


def zip_names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        return zf.namelist()


def test_artifacts_output_names_every_function_and_the_layer_without_stage():
    for stack in ("dev", "staging", "main"):
        artifacts = evaluated(stack).outputs["artifacts"]
        assert {"layer", "core/fileIndexer", "system/api"} <= set(artifacts)
        assert all(len(d) == 64 for d in artifacts.values())
    # same code, same digests, whichever stage: what staging ran is what main gets
    assert evaluated("dev").outputs["artifacts"] == evaluated("main").outputs["artifacts"]


def test_two_evaluations_give_identical_digests():
    again = evaluate("main")
    assert again.outputs["artifacts"] == evaluated("main").outputs["artifacts"]


def test_an_evaluation_leaves_the_callers_handler_modules_as_they_were():
    """Evaluating imports the program's handlers afresh; the process that asked for it keeps
    its own modules, so a handler it imported lazily later is the one its code expects."""
    import sys

    import handlers.shared.http as http_before

    mine = {m for m in sys.modules if m.split(".")[0] in ("components", "handlers")}
    evaluate("dev")
    assert sys.modules["handlers.shared.http"] is http_before
    assert {m for m in sys.modules if m.split(".")[0] in ("components", "handlers")} == mine


def test_every_function_deploys_the_bundle_whose_digest_is_exported():
    program = evaluated("dev")
    for function in program.of_type("aws:lambda/function:Function"):
        service, _, fn = function.name.partition("-")
        path = Path(function.inputs["code"].path)
        assert packaging._describe(path).sha256 == program.outputs["artifacts"][f"{service}/{fn}"]


def test_a_bundle_holds_only_the_modules_its_function_imports():
    system = packaging.build_bundle("handlers.system.api", "t-system", out_dir=ROOT / ".build" / "test")
    indexer = packaging.build_bundle("handlers.core.file_indexer", "t-indexer", out_dir=ROOT / ".build" / "test")
    assert "handlers/system/api.py" in system.files and "handlers/system/routes.py" in system.files
    assert "handlers/shared/http.py" in system.files
    assert not any(f.startswith("handlers/core/") for f in system.files)
    assert "handlers/routes.py" not in system.files, "a bundle never carries other services' routes"
    assert "handlers/core/file_indexer.py" in indexer.files and "handlers/shared/files.py" in indexer.files
    assert not any(f.startswith("handlers/system/") for f in indexer.files)
    for artifact in (system, indexer):
        assert all(f.endswith(".py") for f in artifact.files)
        assert "handlers/__init__.py" in artifact.files


def test_rebuilding_gives_the_same_bytes_with_fixed_timestamps_and_modes(tmp_path):
    a = packaging.build_bundle("handlers.system.api", "x", out_dir=tmp_path / "a")
    # stray bytecode next to the sources must not change anything
    (ROOT / "handlers" / "system" / "__pycache__").mkdir(exist_ok=True)
    b = packaging.build_bundle("handlers.system.api", "x", out_dir=tmp_path / "b")
    assert a.path.read_bytes() == b.path.read_bytes()
    with zipfile.ZipFile(a.path) as zf:
        for info in zf.infolist():
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert info.external_attr >> 16 == 0o100644
            assert "__pycache__" not in info.filename


def _copy_program(dest: Path) -> Path:
    for name in ("__main__.py", "Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.main.yaml",
                 "Pulumi.staging.yaml", "requirements.txt", "requirements-lambda.txt"):
        shutil.copy(ROOT / name, dest / name)
    for package in ("components", "handlers"):
        shutil.copytree(ROOT / package, dest / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    # the copy shares the wheel cache; bundles are written under the copy
    (dest / ".cache").mkdir()
    (dest / ".cache" / "wheels").symlink_to(ROOT / ".cache" / "wheels")
    return dest


def _changed(before: dict, after: dict) -> set[str]:
    return {k for k in before if before[k] != after.get(k)}


def bundles_containing(program, path: str) -> set[str]:
    found = set()
    for function in program.of_type("aws:lambda/function:Function"):
        service, _, fn = function.name.partition("-")
        if path in zip_names(Path(function.inputs["code"].path)):
            found.add(f"{service}/{fn}")
    return found


@pytest.mark.parametrize("edited, must_include, must_exclude", [
    ("handlers/system/api.py", {"system/api"}, {"core/fileIndexer", "auth/api"}),
    ("handlers/system/routes.py", {"system/api"}, {"auth/api", "account/api"}),
    ("handlers/auth/routes.py", {"auth/api"}, {"system/api", "account/api"}),
    ("handlers/core/file_indexer.py", {"core/fileIndexer"}, {"system/api"}),
    ("handlers/shared/files.py", {"core/fileIndexer"}, {"system/api", "auth/api"}),
    ("handlers/shared/log.py", {"core/fileIndexer", "system/api", "api/authorizer"}, set()),
])
def test_editing_a_module_changes_exactly_the_bundles_that_carry_it(tmp_path, edited, must_include,
                                                                     must_exclude):
    program = evaluated("dev")
    base = program.outputs["artifacts"]
    expected = bundles_containing(program, edited)
    assert must_include <= expected and not (must_exclude & expected)
    copy = _copy_program(tmp_path)
    with open(copy / edited, "a") as fh:
        fh.write("\n# an edit\n")
    after = evaluate("dev", copy).outputs["artifacts"]
    assert _changed(base, after) == expected
    assert after["layer"] == base["layer"]


def test_layer_is_pure_python_under_python_dir():
    layer = packaging.build_layer()
    assert layer.files and all(f.startswith("python/") for f in layer.files)
    assert not [f for f in layer.files if f.endswith((".so", ".pyd", ".dylib", ".dll"))]
    assert not [f for f in layer.files if "__pycache__" in f or f.endswith(".pyc")]
    assert not [f for f in layer.files if f.endswith(".dist-info/RECORD")]
    for package in ("aws_lambda_powertools", "jwt", "stripe", "fastjsonschema", "requests"):
        assert any(f.startswith(f"python/{package}/") for f in layer.files), package
    with zipfile.ZipFile(layer.path) as zf:
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_layer_leaves_what_the_lambda_runtime_provides_to_the_runtime():
    """A copy of boto3's dependencies in the layer would shadow the runtime's (which has its
    bytecode) and be compiled from source on every cold start."""
    layer = packaging.build_layer()
    tops = {f.split("/")[1] for f in layer.files}
    for module in ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six.py", "urllib3"):
        assert module not in tops, module
    # requests (stripe's HTTP client) and Powertools use the runtime's urllib3 and jmespath:
    # their pins stay within what those packages accept
    pinned = dict(packaging.read_pins())
    assert "requests" in pinned and "aws-lambda-powertools" in pinned


@pytest.mark.parametrize("pin", ["urllib3==2.8.0", "jmespath==1.1.0", "boto3==1.44.8", "python_dateutil==2.9.0"])
def test_a_pin_of_a_runtime_provided_package_is_refused(tmp_path, pin):
    requirements = tmp_path / "requirements-lambda.txt"
    requirements.write_text(f"requests==2.34.2\n{pin}\n")
    with pytest.raises(packaging.PackagingError, match="comes with Lambda's Python runtime"):
        packaging.read_pins(requirements)


def test_layer_rebuilds_to_the_same_bytes(tmp_path):
    a = packaging.build_layer(out_dir=tmp_path / "a")
    b = packaging.build_layer(out_dir=tmp_path / "b")
    assert a.sha256 == b.sha256 == packaging.build_layer().sha256


def test_layer_builder_fails_loudly_on_a_pin_without_a_pure_wheel(tmp_path):
    requirements = tmp_path / "requirements-lambda.txt"
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    # a compiled wheel is no substitute for a pure one
    (wheels / "fastpkg-1.0-cp312-cp312-manylinux_2_17_aarch64.whl").write_bytes(b"")
    requirements.write_text("fastpkg==1.0\n")
    with pytest.raises(packaging.PackagingError, match=r"fastpkg==1\.0.*make wheels"):
        packaging.build_layer(requirements, wheels, out_dir=tmp_path)
    requirements.write_text("fastpkg>=1.0\n")
    with pytest.raises(packaging.PackagingError, match="not an exact pin"):
        packaging.build_layer(requirements, wheels, out_dir=tmp_path)


def test_layer_builder_refuses_compiled_code_inside_a_wheel(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / "sneaky-1.0-py3-none-any.whl", "w") as zf:
        zf.writestr("sneaky/__init__.py", "")
        zf.writestr("sneaky/_speedups.cpython-312-aarch64-linux-gnu.so", b"\x7fELF")
    requirements = tmp_path / "req.txt"
    requirements.write_text("sneaky==1.0\n")
    with pytest.raises(packaging.PackagingError, match="compiled code"):
        packaging.build_layer(requirements, wheels, out_dir=tmp_path)
