"""`/cmdb/…`: configuration items and relations: graph, items CRUD, bulk import/export, upstream and impact.

A CMDB may hold ten thousand items: validating, querying and encoding one runs
on the worker threads (``self.compute``), never on the IOLoop.
"""
from __future__ import annotations

import gc
from typing import Any, Callable

from bizra_nb.cmdb import Cmdb
from bizra_nb.errors import Conflict, InvalidInput
from bizra_server.base import ApiError, BaseHandler, encode_json

MAX_IMPORT_BYTES = 10 * 1024 * 1024


class CmdbHandler(BaseHandler):
    """Shared by the CMDB handlers: read the current CMDB, commit a new one, answer off the loop."""

    @property
    def cmdb(self) -> Cmdb:
        return self.services.cmdb

    async def answer(self, query: Callable[..., Any], *args: Any, status: int | None = None) -> None:
        """Finish with ``query(*args)`` as JSON, computed and encoded on a worker thread."""
        text = await self.compute(lambda: encode_json(query(*args)))
        if status is not None:
            self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(text)

    async def commit(self, new: Cmdb) -> None:
        """Persist ``new`` (already validated), then make it current and tell the live stream."""
        await self.blocking(self.store.save_cmdb, new.to_dict())
        self.services.cmdb = new
        # A large CMDB lives long: keep it out of the garbage collector's full passes, which would
        # otherwise walk its hundreds of thousands of objects (a pause of every thread, the IOLoop's
        # too) again and again. The replaced CMDB holds no reference cycles: it is freed all the same.
        gc.collect(1)
        gc.freeze()


class GraphHandler(CmdbHandler):
    async def get(self) -> None:
        await self.answer(self.cmdb.graph)


def items_of_kind(cmdb: Cmdb, kind: str | None) -> dict:
    items = [i for i in cmdb.items.values() if kind is None or i.get("kind") == kind]
    return {"items": items, "count": len(items)}


class ItemsHandler(CmdbHandler):
    async def get(self) -> None:
        await self.answer(items_of_kind, self.cmdb, self.get_query_argument("kind", None))

    async def post(self) -> None:
        body = self.json_object()
        item_id = body.get("id")
        if not isinstance(item_id, str) or not item_id:
            raise InvalidInput("id: the item's id (text) is required", field="id")
        async with self.services.cmdb_lock:
            if item_id in self.cmdb.items:
                raise Conflict(f"configuration item {item_id!r} exists; PUT /cmdb/items/{item_id} changes it",
                               field="id")
            relations = body.pop("relations", None)
            await self.commit(await self.compute(self.cmdb.with_item, body, relations))
        self.write_json(self.cmdb.item(item_id), status=201)


class ItemHandler(CmdbHandler):
    def get(self, item_id: str) -> None:
        item = self.cmdb.item(item_id)  # a few dict look-ups: fine on the loop
        self.write_json({**item, "depends_on": self.cmdb.dependencies(item_id),
                         "dependents": self.cmdb.dependents(item_id), "runs_on": self.cmdb.hosts_of(item_id)})

    async def put(self, item_id: str) -> None:
        body = self.json_object()
        if body.setdefault("id", item_id) != item_id:
            raise InvalidInput(f"the body's id {body['id']!r} differs from the path's {item_id!r}", field="id")
        relations = body.pop("relations", None)
        async with self.services.cmdb_lock:
            created = item_id not in self.cmdb.items
            await self.commit(await self.compute(self.cmdb.with_item, body, relations))
        self.write_json(self.cmdb.item(item_id), status=201 if created else 200)

    async def delete(self, item_id: str) -> None:
        async with self.services.cmdb_lock:
            new, removed = await self.compute(self.cmdb.without_item, item_id)
            await self.commit(new)
        self.write_json({"deleted": item_id, "relations_removed": removed})


def upstream_of(cmdb: Cmdb, item_id: str) -> dict:
    return {"id": item_id, "upstream": cmdb.upstream(item_id)}


def impact_of(cmdb: Cmdb, item_id: str) -> dict:
    impact = cmdb.impact(item_id)
    return {"id": item_id, "impact": impact, "count": len(impact)}


def paths_between(cmdb: Cmdb, source: str, target: str) -> dict:
    return {"from": source, "to": target, "paths": cmdb.paths(source, target)}


class UpstreamHandler(CmdbHandler):
    async def get(self, item_id: str) -> None:
        await self.answer(upstream_of, self.cmdb, item_id)


class ImpactHandler(CmdbHandler):
    async def get(self, item_id: str) -> None:
        await self.answer(impact_of, self.cmdb, item_id)


class PathsHandler(CmdbHandler):
    async def get(self) -> None:
        source, target = self.get_query_argument("from", None), self.get_query_argument("to", None)
        if not source or not target:
            raise ApiError(400, "query parameters 'from' and 'to' are required")
        await self.answer(paths_between, self.cmdb, source, target)


class ImportHandler(CmdbHandler):
    max_body_size = MAX_IMPORT_BYTES  # a larger body is a 413 before any of it is read

    async def post(self) -> None:
        mode = self.choice_argument("mode", ("merge", "replace"), "merge")
        if not self.request.body.strip():
            raise ApiError(400, "the body must be a CMDB document in YAML or JSON (items, relations)")
        # validates the document alone
        incoming = await self.compute(Cmdb.parse, bytes(self.request.body), source="request body")
        async with self.services.cmdb_lock:
            new = incoming if mode == "replace" else await self.compute(self.cmdb.merged, incoming.to_dict())
            await self.commit(new)
        self.write_json({"mode": mode, "items": len(new.items), "relations": len(new.relations)})


class ExportHandler(CmdbHandler):
    async def get(self) -> None:
        fmt = self.choice_argument("format", ("yaml", "json"), "yaml")
        self.set_header("Content-Type", "application/yaml; charset=UTF-8" if fmt == "yaml"
                        else "application/json; charset=UTF-8")
        self.finish(await self.compute(self.cmdb.dumps, fmt))


_ID = r"(?P<item_id>[A-Za-z0-9][A-Za-z0-9._:-]*)"
handlers = [
    (r"/cmdb/graph", GraphHandler),
    (r"/cmdb/items", ItemsHandler),
    (rf"/cmdb/items/{_ID}", ItemHandler),
    (rf"/cmdb/items/{_ID}/upstream", UpstreamHandler),
    (rf"/cmdb/items/{_ID}/impact", ImpactHandler),
    (r"/cmdb/paths", PathsHandler),
    (r"/cmdb/import", ImportHandler),
    (r"/cmdb/export", ExportHandler),
]
