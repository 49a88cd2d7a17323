"""The CMDB: file format, validation, graph queries, value semantics."""
from __future__ import annotations

import json

import pytest

from bizra_nb.cmdb import Cmdb, CmdbError
from bizra_nb.errors import InvalidInput, NotFound
from bizra_nb.fleet import demo_cmdb

DOC = """
items:
  - {id: frontend, kind: service, owner: web, tier: 1}
  - {id: cartservice, kind: service, selectors: {cpu: 'rate(cpu{app="cart"}[1m])'}}
  - {id: redis-cart, kind: cache}
relations:
  - {source: frontend, target: cartservice, type: depends_on}
  - {source: cartservice, target: redis-cart, type: depends_on}
"""


def test_yaml_and_json_give_the_same_cmdb():
    from_yaml = Cmdb.parse(DOC)
    from_json = Cmdb.parse(json.dumps(from_yaml.to_dict()))
    assert from_yaml.to_dict() == from_json.to_dict()
    assert from_yaml.item("frontend")["owner"] == "web"  # extra attributes kept
    assert Cmdb.parse(from_yaml.dumps("yaml")).to_dict() == from_yaml.to_dict()


def test_graph_queries():
    cmdb = Cmdb.parse(DOC)
    assert [d["id"] for d in cmdb.upstream("frontend")] == ["cartservice", "redis-cart"]
    assert [(d["id"], d["distance"]) for d in cmdb.impact("redis-cart")] == [("cartservice", 1), ("frontend", 2)]
    assert cmdb.paths("frontend", "redis-cart") == [["frontend", "cartservice", "redis-cart"]]
    assert cmdb.paths("redis-cart", "frontend") == []
    with pytest.raises(NotFound):
        cmdb.impact("nope")


@pytest.mark.parametrize("doc, fragment", [
    ({"items": [{"id": "a", "kind": "service"}, {"id": "a", "kind": "service"}]}, "duplicate id 'a'"),
    ({"items": [{"id": "a", "kind": "service"}], "relations": [{"source": "a", "target": "b"}]},
     "relations[0]: unknown target 'b'"),
    ({"items": [{"id": "a"}]}, "'kind' is required"),
    ({"items": [{"id": "bad id", "kind": "service"}]}, "items[0].id must be a name"),
    ({"items": [{"id": "a", "kind": "s"}, {"id": "b", "kind": "s"}],
      "relations": [{"source": "a", "target": "b", "type": "likes"}]}, "unknown type 'likes'"),
    ({"items": [{"id": "a", "kind": "s"}, {"id": "b", "kind": "s"}, {"id": "c", "kind": "s"}],
      "relations": [{"source": "a", "target": "b"}, {"source": "b", "target": "c"}, {"source": "c", "target": "a"}]},
     "depends_on cycle: a -> b -> c -> a"),
    ({"things": []}, "unknown top-level key"),
    ([1, 2], "must be a mapping"),
])
def test_validation_problems_are_named(doc, fragment):
    with pytest.raises(CmdbError) as info:
        Cmdb.from_dict(doc)
    assert fragment in info.value.message


def test_bad_yaml_says_where():
    with pytest.raises(InvalidInput, match="neither valid YAML nor JSON at line 3"):
        Cmdb.parse("items:\n  - {id: a, kind: [\n")


def test_changes_return_new_validated_values():
    cmdb = Cmdb.parse(DOC)
    bigger = cmdb.with_item({"id": "db", "kind": "database"})
    bigger = bigger.with_item({"id": "cartservice", "kind": "service"}, [{"target": "db", "type": "depends_on"}])
    assert bigger.dependencies("cartservice") == ["db"]  # relations replaced
    assert cmdb.dependencies("cartservice") == ["redis-cart"]  # the original is untouched
    with pytest.raises(CmdbError, match="cycle"):
        bigger.with_item({"id": "db", "kind": "database"}, [{"target": "frontend"}])
    smaller, removed = cmdb.without_item("cartservice")
    assert "cartservice" not in smaller.items and len(removed) == 2 and smaller.relations == []
    merged = cmdb.merged({"items": [{"id": "new", "kind": "queue"}],
                          "relations": [{"source": "frontend", "target": "new", "type": "depends_on"}]})
    assert len(merged) == 4 and merged.dependencies("frontend") == ["cartservice", "new"]


def test_demo_fleet_cmdb_is_valid_and_acyclic():
    cmdb = demo_cmdb()
    assert len([i for i in cmdb.items.values() if i["kind"] != "host"]) >= 12
    assert cmdb.find_cycle() is None
    assert {"database", "cache", "queue", "service", "host"} <= {i["kind"] for i in cmdb.items.values()}


def test_a_cycle_unreachable_from_the_first_item_is_found():
    """Cycle detection must search from every item, not only from the first one."""
    doc = {"items": [{"id": i, "kind": "service"} for i in ("first", "lonely", "x", "y", "z")],
           "relations": [{"source": "first", "target": "lonely"},
                         {"source": "x", "target": "y"}, {"source": "y", "target": "z"}, {"source": "z", "target": "x"}]}
    with pytest.raises(CmdbError) as info:
        Cmdb.from_dict(doc)
    assert "depends_on cycle" in info.value.message
    assert {"x", "y", "z"} <= set(info.value.message.split("cycle: ")[1].split(" -> "))


def layered(width: int, depth: int) -> Cmdb:
    """``depth`` layers of ``width`` items, each depending on every item of the next layer: width**depth paths."""
    layers = [[f"n{d}-{w}" for w in range(width)] for d in range(depth)]
    items = [{"id": i, "kind": "service"} for layer in layers for i in layer] + [{"id": "aside", "kind": "service"}]
    relations = [{"source": a, "target": b} for upper, lower in zip(layers, layers[1:]) for a in upper for b in lower]
    return Cmdb.from_dict({"items": items, "relations": relations})


def test_paths_are_shortest_first_bounded_and_pruned():
    cmdb = layered(3, 12)  # 3**11 paths from the top to the bottom
    found = cmdb.paths("n0-0", "n11-0", limit=20)
    assert len(found) == 20 and all(len(p) == 12 and p[0] == "n0-0" and p[-1] == "n11-0" for p in found)
    assert len({tuple(p) for p in found}) == 20
    assert cmdb.paths("n0-0", "aside") == []  # unreachable: answered without walking the 3**11 paths
    shortcut = Cmdb.from_dict({"items": [{"id": i, "kind": "s"} for i in "abcd"],
                               "relations": [{"source": "a", "target": "b"}, {"source": "b", "target": "c"},
                                             {"source": "c", "target": "d"}, {"source": "a", "target": "d"}]})
    assert shortcut.paths("a", "d") == [["a", "d"], ["a", "b", "c", "d"]]


def test_merging_a_large_cmdb_into_itself_changes_nothing():
    cmdb = layered(100, 20)  # 2,000 items, 190,000 relations: quadratic duplicate checks would take minutes
    merged = cmdb.merged(cmdb.to_dict())
    assert len(merged.items) == 2001 and len(merged.relations) == len(cmdb.relations)
    assert merged.hosts_of("n0-0") == [] and merged.dependents("n1-0") == [f"n0-{w}" for w in range(100)]
