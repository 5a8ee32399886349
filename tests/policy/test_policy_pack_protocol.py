"""The pack as the Pulumi CLI runs it: started the way the CLI's analyzer shim starts a
Python policy pack (``python -u -m pulumi.policy <engine> .`` in policy/, with the pack's
virtualenv), it serves pulumi-policy's gRPC analyzer. Its answers to ``Analyze`` (each
resource's inputs) and ``AnalyzeStack`` (every resource's outputs) over the examples are
the runner's, so the runner the other tests use is faithful to the real thing."""

from __future__ import annotations

import subprocess

import grpc
import pytest
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from tests.policy.pack_support import (EXAMPLE_VIOLATIONS, EXAMPLES, POLICY_PYTHON, ROOT,
                                       evaluate_with_dependencies, run_pack)

MANDATORY = analyzer_pb2.EnforcementLevel.Value("MANDATORY")


@pytest.fixture(scope="module")
def analyzer():
    if not POLICY_PYTHON.exists():
        raise RuntimeError(f"{POLICY_PYTHON} is missing: run `make setup`")
    # The engine address is only handed on; nothing here dials it.
    server = subprocess.Popen([str(POLICY_PYTHON), "-u", "-m", "pulumi.policy", "127.0.0.1:1", "."],
                              cwd=ROOT / "policy", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        port = server.stdout.readline().strip()
        assert port.isdigit(), server.stderr.read() if server.poll() is not None else port
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        server.terminate()
        server.wait(timeout=30)


def struct(values: dict) -> struct_pb2.Struct:
    return json_format.ParseDict(values, struct_pb2.Struct())


def options(entry: dict) -> analyzer_pb2.AnalyzerResourceOptions:
    return analyzer_pb2.AnalyzerResourceOptions(protect=entry["protect"], parent=entry["parent"])


def test_the_cli_finds_a_mandatory_pack_of_resource_and_stack_policies(analyzer):
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == "listbackup"
    assert {p.enforcementLevel for p in info.policies} == {MANDATORY}
    names = {p.name for p in info.policies}
    assert names == {p["name"] for p in run_pack([])["pack"]["policies"]}
    recovery = next(p for p in info.policies if p.name == "dynamodb-pitr-in-main")
    assert json_format.MessageToDict(recovery.configSchema.properties)["stages"]["default"] == ["main"]


def test_the_served_pack_reports_what_the_runner_reports(analyzer):
    entries = evaluate_with_dependencies("main", EXAMPLES)
    served = set()
    for entry in entries:
        response = analyzer.Analyze(analyzer_pb2.AnalyzeRequest(
            urn=entry["urn"], type=entry["type"], name=entry["name"],
            properties=struct(entry["inputs"]), options=options(entry)))
        served |= {(d.policyName, d.urn or entry["urn"]) for d in response.diagnostics}
    response = analyzer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=[
        analyzer_pb2.AnalyzerResource(
            urn=e["urn"], type=e["type"], name=e["name"], properties=struct(e["outputs"]),
            options=options(e), parent=e["parent"], dependencies=e["dependencies"],
            propertyDependencies={k: analyzer_pb2.AnalyzerPropertyDependencies(urns=v)
                                  for k, v in e["propertyDependencies"].items()})
        for e in entries]))
    assert all(d.enforcementLevel == MANDATORY for d in response.diagnostics)
    served |= {(d.policyName, d.urn) for d in response.diagnostics}

    ran = {(v["policy"], v["urn"]) for v in run_pack(entries)["violations"]}
    assert served == ran
    assert len(ran) == sum(len(names) for names in EXAMPLE_VIOLATIONS.values())
