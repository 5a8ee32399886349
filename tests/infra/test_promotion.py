"""The promotion gate (DESIGN section 3): main runs only code staging has run. Under the
mocks the StackReference's outputs come from the mocks; updates and previews both run."""

from __future__ import annotations

import pytest

from components.promotion import differences
from offline.evaluate import evaluate

UPSTREAM = "organization/listbackup/staging"
FUNCTION = "aws:lambda/function:Function"
LAYER = "aws:lambda/layerVersion:LayerVersion"


@pytest.fixture(scope="module")
def staging_runs():
    """The artifacts of this very code, as staging would export them after running it."""
    return dict(evaluate("main", overrides={"promoteFrom": ""}).outputs["artifacts"])


def changed(artifacts: dict, *keys: str) -> dict:
    return {**artifacts, **{key: "0" * 64 for key in keys}}


def test_main_names_staging_and_the_other_stages_have_no_gate(program, stack):
    references = program.of_type("pulumi:pulumi:StackReference")
    if stack == "main":
        assert [r.name for r in references] == [UPSTREAM]
        assert program.outputs["promotion"] == "pass"
    else:
        assert references == [] and "promotion" not in program.outputs


def test_the_same_digests_pass_and_every_function_is_declared(staging_runs):
    result = evaluate("main", upstream={UPSTREAM: {"artifacts": staging_runs}})
    assert result.outputs["promotion"] == "pass" and not result.warnings
    assert len(result.of_type(FUNCTION)) == len([k for k in staging_runs if k != "layer"])
    assert len(result.of_type(LAYER)) == 1


def test_an_update_with_one_differing_function_fails_naming_it_and_updates_no_function(staging_runs):
    with pytest.raises(Exception) as failed:
        evaluate("main", upstream={UPSTREAM: {"artifacts": changed(staging_runs, "jobs/worker")}})
    assert type(failed.value).__name__ == "PromotionError"   # the program's own class
    message = str(failed.value)
    assert "jobs/worker" in message and UPSTREAM in message and "1 artifact(s)" in message
    # every function's code (and the layer's) waited on the gate: none was registered
    types = {r.type for r in failed.value.declared}
    assert FUNCTION not in types and LAYER not in types
    assert "aws:dynamodb/table:Table" in types       # what holds no code is unaffected


def test_the_layer_counts(staging_runs):
    with pytest.raises(Exception, match=r"1 artifact\(s\) differ.*: layer\."):
        evaluate("main", upstream={UPSTREAM: {"artifacts": changed(staging_runs, "layer")}})


def test_every_difference_is_named_and_a_function_staging_lacks_counts(staging_runs):
    upstream = changed(staging_runs, "auth/api", "data/exporter")
    del upstream["billing/api"]
    with pytest.raises(Exception) as failed:
        evaluate("main", upstream={UPSTREAM: {"artifacts": upstream}})
    assert "3 artifact(s)" in str(failed.value)
    assert "auth/api, billing/api, data/exporter" in str(failed.value)


def test_a_preview_only_warns_with_the_same_list_and_declares_everything(staging_runs):
    result = evaluate("main", preview=True,
                      upstream={UPSTREAM: {"artifacts": changed(staging_runs, "jobs/worker")}})
    assert result.outputs["promotion"] == "warned"
    [warning] = [w for w in result.warnings if "promotion gate" in w]
    assert "jobs/worker" in warning and "preview" in warning
    assert len(result.of_type(FUNCTION)) == len([k for k in staging_runs if k != "layer"])


def test_the_override_lets_the_update_through_with_a_warning(staging_runs):
    result = evaluate("main", overrides={"allowUnpromoted": True},
                      upstream={UPSTREAM: {"artifacts": changed(staging_runs, "jobs/worker")}})
    assert result.outputs["promotion"] == "allowed"
    assert any("allowUnpromoted" in w and "jobs/worker" in w for w in result.warnings)
    assert result.of_type(FUNCTION)


@pytest.mark.parametrize("outputs", [{}, {"artifacts": {}}, {"artifacts": None}],
                         ids=["no-outputs", "empty", "null"])
def test_a_missing_output_warns_in_a_preview_and_fails_an_update(outputs):
    result = evaluate("main", preview=True, upstream={UPSTREAM: outputs})
    assert result.outputs["promotion"] == "warned"
    assert any("has no artifacts output" in w for w in result.warnings)
    with pytest.raises(Exception, match="has no artifacts output") as failed:
        evaluate("main", upstream={UPSTREAM: outputs})
    assert type(failed.value).__name__ == "PromotionError"   # the program's own class
    assert not [r for r in failed.value.declared if r.type == FUNCTION]


def test_a_missing_upstream_stack_fails_with_its_name():
    """Reading a stack that does not exist fails at the engine's read, in an update and in a
    preview alike (pulumi/pulumi#16591: a program cannot catch it); the mocks do the same."""
    for preview in (False, True):
        with pytest.raises(Exception, match=UPSTREAM):
            evaluate("main", preview=preview, upstream={})


def test_differences_helper():
    assert differences({"a/b": "1", "layer": "2"}, {"a/b": "1", "layer": "2", "old/x": "9"}) == []
    assert differences({"a/b": "1", "layer": "2"}, {"a/b": "3"}) == ["a/b", "layer"]
