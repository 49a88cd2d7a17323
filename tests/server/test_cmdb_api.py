"""/cmdb: graph, items CRUD, import/export, upstream and impact, on a real server; bad input never a 5xx."""
from __future__ import annotations

import json

import pytest

from bizra_nb.fleet import demo_cmdb

SMALL = """
items:
  - {id: frontend, kind: service, owner: web}
  - {id: cart, kind: service}
  - {id: redis, kind: cache}
relations:
  - {source: frontend, target: cart, type: depends_on}
  - {source: cart, target: redis, type: depends_on}
"""


@pytest.fixture
def loaded(http, auth):
    response = http.post("/cmdb/import", content=SMALL, headers=auth)
    assert response.status_code == 200, response.text
    return response.json()


def test_import_then_graph_upstream_impact_paths(http, loaded):
    assert loaded == {"mode": "merge", "items": 3, "relations": 2}
    graph = http.get("/cmdb/graph").json()
    assert {n["id"] for n in graph["nodes"]} == {"frontend", "cart", "redis"} and len(graph["edges"]) == 2
    assert [d["id"] for d in http.get("/cmdb/items/frontend/upstream").json()["upstream"]] == ["cart", "redis"]
    impact = http.get("/cmdb/items/redis/impact").json()
    assert impact["count"] == 2 and impact["impact"][0] == {"id": "cart", "distance": 1, "kind": "service"}
    assert http.get("/cmdb/paths", params={"from": "frontend", "to": "redis"}).json()["paths"] == [
        ["frontend", "cart", "redis"]]
    item = http.get("/cmdb/items/cart").json()
    assert item["depends_on"] == ["redis"] and item["dependents"] == ["frontend"]


def test_items_crud(http, auth, loaded):
    created = http.post("/cmdb/items", json={"id": "db", "kind": "database", "owner": "dba"}, headers=auth)
    assert created.status_code == 201 and created.json()["owner"] == "dba"
    assert http.post("/cmdb/items", json={"id": "db", "kind": "database"}, headers=auth).status_code == 409
    updated = http.put("/cmdb/items/cart", json={"kind": "service", "tier": 1,
                                                  "relations": [{"target": "db", "type": "depends_on"}]}, headers=auth)
    assert updated.status_code == 200 and updated.json()["tier"] == 1
    assert http.get("/cmdb/items/cart").json()["depends_on"] == ["db"]
    assert http.get("/cmdb/items", params={"kind": "database"}).json()["count"] == 1
    deleted = http.delete("/cmdb/items/db", headers=auth)
    assert deleted.status_code == 200 and len(deleted.json()["relations_removed"]) == 1
    assert http.get("/cmdb/items/db").status_code == 404


def test_changes_survive_a_restart(make_server, auth):
    import httpx

    first = make_server()
    assert httpx.post(first.url + "/cmdb/import", content=SMALL, headers=auth).status_code == 200
    first.stop()
    second = make_server()
    assert len(httpx.get(second.url + "/cmdb/graph").json()["nodes"]) == 3


def test_export_round_trips(http, auth, loaded):
    yaml_text = http.get("/cmdb/export").text
    assert "frontend" in yaml_text
    as_json = http.get("/cmdb/export", params={"format": "json"}).json()
    replaced = http.post("/cmdb/import", params={"mode": "replace"}, content=json.dumps(as_json), headers=auth)
    assert replaced.json()["items"] == 3


def test_replace_with_the_demo_fleet(http, auth, loaded):
    response = http.post("/cmdb/import?mode=replace", content=demo_cmdb().dumps("json"), headers=auth)
    assert response.json()["items"] == 18
    assert "redis" not in {n["id"] for n in http.get("/cmdb/graph").json()["nodes"]}


@pytest.mark.parametrize("body, status, fragment", [
    ("items: [{id: a, kind: service}]\nrelations: [{source: a, target: ghost}]", 400, "unknown target 'ghost'"),
    ("items: [{id: a, kind: s}, {id: a, kind: s}]", 400, "duplicate id"),
    ("items:\n - {id: x, kind: [", 400, "neither valid YAML nor JSON"),
    ("", 400, "must be a CMDB document"),
    ("items: [{id: b, kind: s}, {id: c, kind: s}]\nrelations: [{source: b, target: c}, {source: c, target: b}]",
     400, "cycle"),
])
def test_a_bad_import_changes_nothing(http, auth, loaded, body, status, fragment):
    before = http.get("/cmdb/graph").json()
    response = http.post("/cmdb/import", content=body, headers=auth)
    assert response.status_code == status and fragment in response.json()["error"]["message"]
    assert http.get("/cmdb/graph").json() == before


def test_bad_requests(http, auth, loaded):
    assert http.post("/cmdb/import", content=SMALL).status_code == 401
    assert http.post("/cmdb/import?mode=upsert", content=SMALL, headers=auth).status_code == 400
    assert http.get("/cmdb/items/ghost").json()["error"]["code"] == "not_found"
    assert http.get("/cmdb/items/ghost/impact").status_code == 404
    assert http.get("/cmdb/paths", params={"from": "frontend"}).status_code == 400
    mismatch = http.put("/cmdb/items/cart", json={"id": "other", "kind": "service"}, headers=auth)
    assert mismatch.status_code == 400 and mismatch.json()["error"]["field"] == "id"
    cycle = http.put("/cmdb/items/redis", json={"kind": "cache", "relations": [{"target": "frontend"}]}, headers=auth)
    assert cycle.status_code == 400 and "cycle" in cycle.json()["error"]["message"]
    assert http.put("/cmdb/items/cart", content=b"[1]", headers=auth).status_code == 400
    assert http.delete("/cmdb/items/ghost", headers=auth).status_code == 404
    assert http.put("/cmdb/items/cart", json={"kind": "service", "relations": "redis"}, headers=auth).status_code == 400


@pytest.mark.parametrize("body", [
    "a: 2001-13-45", "a: !!int x", "a: !!float x", "a: !!timestamp x",
    "items: [{id: a, kind: service, t: 2001-02-30}]", '{"items": [], "n": ' + "9" * 5000 + "}",
    "items: &i [{id: a, kind: service}]\nrelations: []\nx: [*i, *i]",
    "x: &a [1, 1, 1]\ny: &b [*a, *a, *a]\nz: [*b, *b, *b]",
])
def test_yaml_values_and_aliases_are_400s_that_never_lower_the_score(http, auth, loaded, body):
    response = http.post("/cmdb/import", content=body, headers=auth)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["field"] == "cmdb"
    assert len(http.get("/cmdb/graph").json()["nodes"]) == loaded["items"]  # nothing changed
    assert http.get("/health").json()["ahsan_score"] == 100.0
