"""The CMDB: configuration items and typed relations, validated, with graph queries (upstream, impact, paths).

The file format, YAML or JSON with the same keys (tools rely on it)::

    items:
      - {id: frontend, kind: service, owner: web, tier: 1}
      - {id: cartservice, kind: service}
      - {id: redis-cart, kind: cache}
    relations:
      - {source: frontend, target: cartservice, type: depends_on}   # source calls / needs target
      - {source: cartservice, target: redis-cart, type: depends_on}

Items need ``id`` and ``kind``; every other attribute is kept as given (owner,
tier, SLO targets, ``selectors`` of PromQL per metric, ...). Relation types are
``depends_on`` (source needs target; no cycles) and ``runs_on`` (source runs
on a host). A :class:`Cmdb` is a value: changes return a new, validated one.
"""
from __future__ import annotations

import json
import re
from collections import deque
from pathlib import Path
from typing import Any, Iterable

import yaml

from bizra_nb.errors import InvalidInput, NotFound

RELATION_TYPES = ("depends_on", "runs_on")
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


class CmdbError(InvalidInput):
    """The CMDB document is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[str]) -> None:
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        super().__init__(f"invalid CMDB: {shown}", field="cmdb")
        self.problems = problems


class Cmdb:
    """Configuration items by id and their relations."""

    def __init__(self, items: dict[str, dict], relations: list[dict]) -> None:
        self.items = items
        self.relations = relations
        self._out: dict[str, list[str]] = {i: [] for i in items}
        self._in: dict[str, list[str]] = {i: [] for i in items}
        for rel in relations:
            if rel["type"] == "depends_on":
                self._out[rel["source"]].append(rel["target"])
                self._in[rel["target"]].append(rel["source"])

    # -- construction --------------------------------------------------------------

    @classmethod
    def from_dict(cls, doc: Any) -> "Cmdb":
        """Validate a ``{"items": [...], "relations": [...]}`` document; raises :class:`CmdbError`."""
        problems: list[str] = []
        if not isinstance(doc, dict):
            raise CmdbError(["the document must be a mapping with 'items' and 'relations'"])
        unknown = set(doc) - {"items", "relations"}
        if unknown:
            problems.append(f"unknown top-level key(s) {sorted(unknown)}; expected 'items' and 'relations'")
        raw_items = doc.get("items") or []
        raw_relations = doc.get("relations") or []
        if not isinstance(raw_items, list):
            raise CmdbError(["'items' must be a list"])
        if not isinstance(raw_relations, list):
            raise CmdbError(["'relations' must be a list"])
        items: dict[str, dict] = {}
        for n, item in enumerate(raw_items):
            where = f"items[{n}]"
            if not isinstance(item, dict):
                problems.append(f"{where} must be a mapping")
                continue
            item_id, kind = item.get("id"), item.get("kind")
            if not isinstance(item_id, str) or not ID_PATTERN.match(item_id):
                problems.append(f"{where}.id must be a name of letters, digits and . _ : - (got {item_id!r})")
                continue
            if not isinstance(kind, str) or not kind:
                problems.append(f"{where} ({item_id}): 'kind' is required (service, database, cache, queue, host, ...)")
                continue
            if item_id in items:
                problems.append(f"{where}: duplicate id {item_id!r}")
                continue
            items[item_id] = dict(item)
        relations: list[dict] = []
        seen: set[tuple] = set()
        for n, rel in enumerate(raw_relations):
            where = f"relations[{n}]"
            if not isinstance(rel, dict):
                problems.append(f"{where} must be a mapping")
                continue
            source, target, type_ = rel.get("source"), rel.get("target"), rel.get("type", "depends_on")
            if not isinstance(source, str) or not isinstance(target, str):
                problems.append(f"{where}: source and target must be item ids (text)")
                continue
            if not isinstance(type_, str) or type_ not in RELATION_TYPES:
                problems.append(f"{where}: unknown type {type_!r}; allowed: {', '.join(RELATION_TYPES)}")
                continue
            missing = [name for name, ref in (("source", source), ("target", target)) if ref not in items]
            if missing:
                problems.append(f"{where}: unknown {' and '.join(f'{m} {rel.get(m)!r}' for m in missing)}")
                continue
            if source == target:
                problems.append(f"{where}: {source!r} cannot relate to itself")
                continue
            key = (source, target, type_)
            if key in seen:
                problems.append(f"{where}: duplicate relation {source} -{type_}-> {target}")
                continue
            seen.add(key)
            relations.append({**rel, "source": source, "target": target, "type": type_})
        if problems:
            raise CmdbError(problems)
        cmdb = cls(items, relations)
        cycle = cmdb.find_cycle()
        if cycle:
            raise CmdbError([f"depends_on cycle: {' -> '.join(cycle)}"])
        return cmdb

    @classmethod
    def parse(cls, text: str | bytes, *, source: str = "CMDB") -> "Cmdb":
        """Parse YAML or JSON text in the CMDB file format."""
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise InvalidInput(f"{source} is neither valid YAML nor JSON{where}: {getattr(exc, 'problem', exc)}",
                               field="cmdb") from None
        return cls.from_dict(doc)

    @classmethod
    def load(cls, path: str | Path) -> "Cmdb":
        """Read a CMDB file (``.yaml``, ``.yml`` or ``.json``)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(f"cannot read CMDB file {path}: {exc.strerror}", field="cmdb") from None
        try:
            return cls.parse(text, source=str(path))
        except CmdbError as exc:
            raise CmdbError([f"{path}: {p}" for p in exc.problems]) from None

    def to_dict(self) -> dict:
        return {"items": list(self.items.values()), "relations": list(self.relations)}

    def dumps(self, fmt: str = "yaml") -> str:
        if fmt == "json":
            return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    # -- changes (each returns a new validated Cmdb) ------------------------------------

    def merged(self, other: dict) -> "Cmdb":
        """This CMDB with ``other``'s items upserted and its relations added."""
        items = {**self.items, **{i["id"]: i for i in other.get("items") or []
                                  if isinstance(i, dict) and isinstance(i.get("id"), str)}}
        bad_items = [i for i in other.get("items") or [] if not (isinstance(i, dict) and isinstance(i.get("id"), str))]
        relations = self.relations + [r for r in other.get("relations") or []
                                      if not (isinstance(r, dict) and self._has_relation(r))]
        return Cmdb.from_dict({"items": list(items.values()) + bad_items, "relations": relations})

    def _has_relation(self, rel: dict) -> bool:
        key = (rel.get("source"), rel.get("target"), rel.get("type", "depends_on"))
        return any((r["source"], r["target"], r["type"]) == key for r in self.relations)

    def with_item(self, item: dict, relations: list[dict] | None = None) -> "Cmdb":
        """Upsert ``item``; when ``relations`` is given, they replace the item's outgoing relations."""
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise CmdbError(["an item must be an object with an 'id' (text)"])
        if relations is not None and (not isinstance(relations, list)
                                      or not all(isinstance(r, dict) for r in relations)):
            raise CmdbError(["relations must be a list of {target, type} objects"])
        items = {**self.items, item["id"]: item}
        kept = self.relations
        if relations is not None:
            kept = [r for r in self.relations if r["source"] != item.get("id")]
            kept = kept + [{"source": item.get("id"), **r} for r in relations]
        return Cmdb.from_dict({"items": list(items.values()), "relations": kept})

    def without_item(self, item_id: str) -> tuple["Cmdb", list[dict]]:
        """Remove an item and every relation touching it; returns the new CMDB and the removed relations."""
        self.item(item_id)
        removed = [r for r in self.relations if item_id in (r["source"], r["target"])]
        rest = [r for r in self.relations if item_id not in (r["source"], r["target"])]
        items = [i for k, i in self.items.items() if k != item_id]
        return Cmdb.from_dict({"items": items, "relations": rest}), removed

    # -- queries -----------------------------------------------------------------------

    def item(self, item_id: str) -> dict:
        try:
            return self.items[item_id]
        except KeyError:
            raise NotFound(f"no configuration item {item_id!r}", field="id") from None

    def dependencies(self, item_id: str) -> list[str]:
        """What ``item_id`` directly depends on (calls)."""
        return list(self._out.get(item_id, ()))

    def dependents(self, item_id: str) -> list[str]:
        """What directly depends on ``item_id`` (its callers)."""
        return list(self._in.get(item_id, ()))

    def _walk(self, start: str, step) -> list[dict]:
        self.item(start)
        seen = {start: 0}
        order = []
        queue = deque([start])
        while queue:
            node = queue.popleft()
            for nxt in step(node):
                if nxt not in seen:
                    seen[nxt] = seen[node] + 1
                    order.append({"id": nxt, "distance": seen[nxt], "kind": self.items[nxt].get("kind")})
                    queue.append(nxt)
        return order

    def upstream(self, item_id: str) -> list[dict]:
        """Everything ``item_id`` depends on, transitively, nearest first (``id``, ``distance``, ``kind``)."""
        return self._walk(item_id, self.dependencies)

    def impact(self, item_id: str) -> list[dict]:
        """The blast radius: everything that depends on ``item_id``, transitively, nearest first."""
        return self._walk(item_id, self.dependents)

    def paths(self, source: str, target: str, *, limit: int = 20) -> list[list[str]]:
        """Dependency paths from ``source`` to ``target`` (shortest first, at most ``limit``)."""
        self.item(source)
        self.item(target)
        found: list[list[str]] = []
        queue = deque([[source]])
        while queue and len(found) < limit:
            path = queue.popleft()
            for nxt in self.dependencies(path[-1]):
                if nxt in path:
                    continue
                if nxt == target:
                    found.append(path + [nxt])
                else:
                    queue.append(path + [nxt])
        return found

    def hosts_of(self, item_id: str) -> list[str]:
        return [r["target"] for r in self.relations if r["type"] == "runs_on" and r["source"] == item_id]

    def find_cycle(self) -> list[str] | None:
        """A depends_on cycle as a list of ids (first id repeated at the end), or None."""
        WHITE, GREY, BLACK = 0, 1, 2
        colour = dict.fromkeys(self.items, WHITE)
        for root in self.items:
            if colour[root] != WHITE:
                continue
            stack: list[tuple[str, Iterable[str]]] = [(root, iter(self._out[root]))]
            path = [root]
            colour[root] = GREY
            while stack:
                node, children = stack[-1]
                child = next(children, None)
                if child is None:
                    colour[node] = BLACK
                    stack.pop()
                    path.pop()
                elif colour[child] == GREY:
                    return path[path.index(child):] + [child]
                elif colour[child] == WHITE:
                    colour[child] = GREY
                    path.append(child)
                    stack.append((child, iter(self._out[child])))
        return None

    def graph(self) -> dict:
        """Nodes and edges, for drawing."""
        return {"nodes": [{"id": k, **{a: v for a, v in i.items() if a != "id"}} for k, i in self.items.items()],
                "edges": [dict(r) for r in self.relations]}

    def __len__(self) -> int:
        return len(self.items)
