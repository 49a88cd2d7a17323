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

import heapq
import json
import re
from collections import deque
from itertools import count
from pathlib import Path
from typing import Any, Iterable

import yaml

from bizra_nb.errors import InvalidInput, NotFound, clip_message, excerpt

RELATION_TYPES = ("depends_on", "runs_on")
SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 5x faster, and bounds nesting depth
SafeDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


def load_document(text: str | bytes) -> Any:
    """YAML or JSON text as Python values; JSON (a YAML subset) through :mod:`json`, a hundred times faster."""
    if text.lstrip()[:1] in ("{", b"{"):
        try:
            return json.loads(text)
        except (ValueError, RecursionError):
            pass  # YAML after all (flow style), or broken: the YAML parser says where
    doc = yaml.load(text, Loader=SafeLoader)
    _refuse_shared_nodes(doc)
    return doc


def _refuse_shared_nodes(doc: Any) -> None:
    """Refuse YAML aliases: ``*a`` makes one node appear many times, and a few hundred bytes of
    nested aliases expand into gigabytes once the document is validated, stored or exported."""
    seen: set[int] = set()
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, (dict, list)):
            if id(node) in seen:
                raise InvalidInput("YAML anchors and aliases (&name, *name) are not accepted in a CMDB document; "
                                   "write each item out", field="cmdb")
            seen.add(id(node))
            stack.extend(node.values() if isinstance(node, dict) else node)


def _yaml_block(entries: list[dict], batch: int = 200) -> str:
    """`` []`` or a block sequence, dumped a few hundred entries at a time.

    One ``yaml.dump`` of ten thousand items builds a million short-lived nodes at
    once, and the garbage collector's full passes over them stop every thread
    for a fraction of a second; batches keep the heap small.
    """
    if not entries:
        return " []\n"
    return "\n" + "".join(yaml.dump(entries[n:n + batch], Dumper=SafeDumper, sort_keys=False, allow_unicode=True)
                          for n in range(0, len(entries), batch))


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
        # indexes, so that every query is linear in what it returns, not in the size of the CMDB
        self._out: dict[str, list[str]] = {i: [] for i in items}
        self._in: dict[str, list[str]] = {i: [] for i in items}
        self._hosts: dict[str, list[str]] = {}
        self._keys = {(rel["source"], rel["target"], rel["type"]) for rel in relations}
        for rel in relations:
            if rel["type"] == "depends_on":
                self._out[rel["source"]].append(rel["target"])
                self._in[rel["target"]].append(rel["source"])
            elif rel["type"] == "runs_on":
                self._hosts.setdefault(rel["source"], []).append(rel["target"])

    # -- construction --------------------------------------------------------------

    @classmethod
    def from_dict(cls, doc: Any) -> "Cmdb":
        """Validate a ``{"items": [...], "relations": [...]}`` document; raises :class:`CmdbError`."""
        problems: list[str] = []
        if not isinstance(doc, dict):
            raise CmdbError(["the document must be a mapping with 'items' and 'relations'"])
        unknown = set(doc) - {"items", "relations"}
        if unknown:
            shown = ", ".join(excerpt(k) for k in list(unknown)[:5])
            problems.append(f"unknown top-level key(s) {shown}; expected 'items' and 'relations'")
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
                problems.append(f"{where}.id must be a name of letters, digits and . _ : - (got {excerpt(item_id)})")
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
                problems.append(f"{where}: unknown type {excerpt(type_)}; allowed: {', '.join(RELATION_TYPES)}")
                continue
            missing = [name for name, ref in (("source", source), ("target", target)) if ref not in items]
            if missing:
                problems.append(f"{where}: unknown {' and '.join(f'{m} {excerpt(rel.get(m))}' for m in missing)}")
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
            doc = load_document(text)
        except yaml.YAMLError as exc:  # the message quotes no more of the document than a short excerpt
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = clip_message(getattr(exc, "problem", None) or str(exc), limit=200)
            raise InvalidInput(f"{source} is neither valid YAML nor JSON{where}: {problem}", field="cmdb") from None
        except RecursionError:  # the pure-Python loader, without libyaml's nesting limit
            raise InvalidInput(f"{source} is nested too deeply to be a CMDB", field="cmdb") from None
        except (ValueError, OverflowError, TypeError, AttributeError, LookupError) as exc:  # a value its tag cannot hold
            problem = clip_message(str(exc), limit=120)
            raise InvalidInput(f"{source} holds a value YAML cannot read ({problem})", field="cmdb") from None
        return cls.from_dict(doc)

    @classmethod
    def load(cls, path: str | Path) -> "Cmdb":
        """Read and validate a CMDB file (``.yaml``, ``.yml`` or ``.json``).

        Parameters
        ----------
        path
            The file; a relative path is read from the data dir (``$BIZRA_DATA_DIR``,
            see :mod:`bizra_nb.paths`), not the kernel's working directory.

        Returns
        -------
        Cmdb
            Items by id and their relations (``depends_on``, ``runs_on``, ...).

        Raises
        ------
        InvalidInput
            The file cannot be read (named, with where it was looked for) or is not UTF-8.
        CmdbError
            Every problem of its content, each prefixed with the file name.
        """
        from bizra_nb.paths import data_path, describe

        given, path = path, data_path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(f"cannot read CMDB file {given}: {exc.strerror}{describe(given)}",
                               field="cmdb") from None
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"CMDB file {path} is not UTF-8 text (byte {exc.start})", field="cmdb") from None
        try:
            return cls.parse(text, source=str(path))
        except CmdbError as exc:
            raise CmdbError([f"{path}: {p}" for p in exc.problems]) from None

    def to_dict(self) -> dict:
        return {"items": list(self.items.values()), "relations": list(self.relations)}

    def dumps(self, fmt: str = "yaml") -> str:
        if fmt == "json":
            return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)
        return f"items:{_yaml_block(list(self.items.values()))}relations:{_yaml_block(self.relations)}"

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
        try:
            return key in self._keys
        except TypeError:  # an unhashable id: not a relation of ours; validation names it
            return False

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
        """Dependency paths from ``source`` to ``target`` (shortest first, at most ``limit``).

        A best-first search guided by each item's exact distance to ``target``: it
        never enters an item from which ``target`` cannot be reached, and each path
        found costs about its length in steps, however many paths the graph holds.
        """
        self.item(source)
        self.item(target)
        to_target = {target: 0}  # distance to target, for every item that reaches it
        queue = deque([target])
        while queue:
            node = queue.popleft()
            for prev in self._in[node]:
                if prev not in to_target:
                    to_target[prev] = to_target[node] + 1
                    queue.append(prev)
        if source not in to_target or source == target:
            return []
        found: list[list[str]] = []
        tie = count()  # equal estimates: the longer partial path first (depth-first towards target)
        frontier = [(to_target[source], 0, next(tie), [source])]
        while frontier and len(found) < limit:
            _, _, _, path = heapq.heappop(frontier)
            for nxt in self._out[path[-1]]:
                if nxt not in to_target or nxt in path:
                    continue
                if nxt == target:
                    found.append(path + [nxt])
                else:
                    heapq.heappush(frontier, (len(path) + to_target[nxt], -len(path), next(tie), path + [nxt]))
        return found

    def hosts_of(self, item_id: str) -> list[str]:
        return list(self._hosts.get(item_id, ()))

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
