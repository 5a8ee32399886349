"""docs/runbook.md names things an operator types into a terminal at a bad moment: each
name, URN, config key and stack output it gives must be what the program really creates,
so the runbook cannot drift from the code."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.conftest import ROOT, STACKS, evaluated

RUNBOOK = ROOT / "docs" / "runbook.md"
KINDS = ("job", "data", "index")
# Names the program gives: listbackup-..., /listbackup/<stage>/..., /aws/lambda/listbackup-...
NAME = re.compile(r"(?<![\w>@.:/-])(?:/aws/(?:lambda|apigateway)/)?/?listbackup[-/][\w<>$*./-]*")
URN = re.compile(r"urn:pulumi:(\w+)::listbackup::[^\s'\"`]+")


@pytest.fixture(scope="module")
def text() -> str:
    return RUNBOOK.read_text()


@pytest.fixture(scope="module")
def programs():
    return {stack: evaluated(stack) for stack in STACKS}


def physical_names(program) -> set[str]:
    names = set()
    for resource in program.resources:
        for value in resource.inputs.values():
            if isinstance(value, str) and (value.startswith(("listbackup", "/listbackup", "/aws/"))):
                names.add(value)
    return names


def real_urn(urn: str) -> str:
    # The engine leaves the root stack's type out of its children's URNs; the mocks keep it.
    return urn.replace("::pulumi:pulumi:Stack$", "::")


def expansions(token: str) -> list[str]:
    """A name with <stage>/$S and <kind>/$KIND placeholders, for every stage and kind."""
    out = []
    for stack in STACKS:
        for kind in KINDS:
            out.append(token.replace("<stage>", stack).replace("$S", stack)
                       .replace("<kind>", kind).replace("$KIND", kind))
    return sorted(set(out))


def test_the_readme_links_the_runbook():
    assert "(docs/runbook.md)" in (ROOT / "README.md").read_text()


def test_every_name_in_the_runbook_is_one_the_program_creates(text, programs):
    known = set().union(*(physical_names(p) for p in programs.values()))
    checked = 0
    for token in sorted(set(NAME.findall(text))):
        token = token.rstrip(".,)")
        if "*" in token or "..." in token or token in ("listbackup-", "listbackup/"):
            continue        # globs, elisions, the bare prefix in a query
        for name in expansions(token):
            if "<" in name or "$" in name:
                continue    # <service>, <function>, <platform>: a pattern, not a name
            if name.endswith(("-", "/")):
                assert any(k.startswith(name) for k in known), name
            else:
                assert name in known, f"{name} (from {token}) is not created by the program"
            checked += 1
    assert checked > 40


def test_every_urn_in_the_runbook_exists(text, programs):
    found = URN.findall(text)
    assert found
    for match in URN.finditer(text):
        stack, urn = match.group(1), match.group(0).rstrip(".,)")
        urns = {real_urn(r.urn) for r in programs[stack].resources}
        if "**" in urn or "*" in urn:
            # Pulumi's --target glob: * within a URN segment, ** across them.
            pattern = "^" + ".*".join("[^:]*".join(map(re.escape, part.split("*")))
                                      for part in urn.split("**")) + "$"
            matched = [u for u in urns if re.match(pattern, u)]
            assert len(matched) > 1, urn
        else:
            assert urn in urns, urn


def test_the_component_urn_with_dependents_covers_the_service(programs):
    """`--target <component URN> --target-dependents` works because every resource of a
    service is parented under its component (a child counts as its parent's dependent)."""
    program = programs["dev"]
    [jobs] = [r for r in program.resources if r.type == "listbackup:jobs:JobsService"]
    assert real_urn(jobs.urn) == "urn:pulumi:dev::listbackup::listbackup:jobs:JobsService::jobs"
    functions = [r for r in program.of_type("aws:lambda/function:Function")
                 if r.inputs["name"].startswith("listbackup-jobs-dev-")]
    assert len(functions) == 3 and all(f.parent == jobs.urn for f in functions)


def test_config_keys_in_the_runbook_are_declared_and_secret_where_it_says(text):
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    secrets_table = text.split("## Config secrets", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \|", secrets_table, re.M)
    assert {"jwtSecret", "jwtRefreshSecret", "oauthClients", "stripeSecretKey",
            "stripeWebhookSecret"} == set(rows)
    for key in rows:
        assert declared[key].get("secret") is True, key
    for secret, key in re.findall(r"pulumi config set (--secret )?(?:--path )?'?(\w+)", text):
        assert key in declared, key
        assert bool(secret) == bool(declared[key].get("secret")), key
    for key in re.findall(r"pulumi config get (\w+)", text):
        assert key in declared, key


def test_stack_outputs_named_in_the_runbook_exist(text, programs):
    paragraph = text.split("Stack outputs", 1)[1].split("\n\n", 1)[0]
    named = set(re.findall(r"`(\w+)`", paragraph)) - {"pulumi", "main"}
    outputs = set().union(*(set(p.outputs) for p in programs.values()))
    assert named and named <= outputs, named - outputs
    for output in re.findall(r"pulumi stack output (\w+)", text):
        assert output in outputs, output


def test_files_the_runbook_points_to_exist(text):
    for path in sorted(set(re.findall(r"`((?:docs|components|policy|tests|\.github)/[\w./-]+)`", text))):
        assert (ROOT / path).exists(), path
