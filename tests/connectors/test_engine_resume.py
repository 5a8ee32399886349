"""The engine's resume hook (``Connector.resume_state`` / ``pages(name, resume=...)``) the
backup worker checkpoints with: for every resumable style, a walk stopped after any page
and resumed from the state read then (in a new Connector, after a JSON round trip) yields
exactly the remaining pages, and its first request continues where the walk stopped."""

from __future__ import annotations

import json

import pytest

from handlers.shared.connectors.engine import Connector, ConnectorError
from handlers.shared.connectors.model import Endpoint, Pagination, Platform
from handlers.shared.connectors import model
from tests.connectors.platform_servers import FakePlatform, make_records
from tests.connectors.test_engine import API_KEY, SHAPES, platform_for, server_for

RESUMABLE = ["offset_total", "offset_short", "page", "cursor_after_id", "next_url", "link_header",
             "cursor_token", "marker"]
IDS = [r["id"] for r in make_records(23)]


def connector(platform):
    return Connector(platform, {}, {"api_key": API_KEY}, sleep=lambda s: None)


@pytest.mark.parametrize("shape", RESUMABLE)
@pytest.mark.parametrize("stop_after", [1, 2, 4, 5])
def test_a_walk_resumed_from_its_state_yields_exactly_the_remaining_pages(shape, stop_after):
    with server_for(shape) as server:
        platform = platform_for(shape, server.url)
        whole = [[r["id"] for r in page] for page in connector(platform).pages("things")]
        assert [i for page in whole for i in page] == IDS
        first = connector(platform)
        walk = first.pages("things")
        got = []
        for _ in range(stop_after):
            got.append([r["id"] for r in next(walk)])
        state = json.loads(json.dumps(first.resume_state))
        walk.close()
        assert state is not None
        before = len(server.requests)
        rest = [[r["id"] for r in page] for page in connector(platform).pages("things", resume=state)]
        assert got + rest == whole
        if stop_after < len(whole):
            # no page before the stop was fetched again
            assert len(server.requests) - before <= len(whole) - stop_after + 1


@pytest.mark.parametrize("shape", ["single", "cursor_post"])
def test_unresumable_styles_say_so(shape):
    with server_for(shape) as server:
        platform = platform_for(shape, server.url)
        c = connector(platform)
        for _ in c.pages("things"):
            assert c.resume_state is None
        if shape == "cursor_post":
            with pytest.raises(ConnectorError):
                list(connector(platform).pages("things", resume={"cursor": "x"}))


def test_a_state_after_the_last_page_resumes_to_nothing():
    with server_for("cursor_token") as server:
        platform = platform_for("cursor_token", server.url)
        c = connector(platform)
        list(c.pages("things"))
        assert list(connector(platform).pages("things", resume=c.resume_state)) == []
