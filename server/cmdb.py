"""`/cmdb/…`: configuration items and relations: graph, items CRUD, bulk import/export, upstream and impact."""
from __future__ import annotations

from bizra_nb.cmdb import Cmdb
from bizra_nb.errors import Conflict, InvalidInput
from server.base import ApiError, BaseHandler

MAX_IMPORT_BYTES = 10 * 1024 * 1024


class CmdbHandler(BaseHandler):
    """Shared by the CMDB handlers: read the current CMDB, commit a new one."""

    @property
    def cmdb(self) -> Cmdb:
        return self.services.cmdb

    async def commit(self, new: Cmdb) -> None:
        """Persist ``new`` (already validated), then make it current and tell the live stream."""
        await self.blocking(self.store.save_cmdb, new.to_dict())
        self.services.cmdb = new


class GraphHandler(CmdbHandler):
    def get(self) -> None:
        self.write_json(self.cmdb.graph())


class ItemsHandler(CmdbHandler):
    def get(self) -> None:
        kind = self.get_query_argument("kind", None)
        items = [i for i in self.cmdb.items.values() if kind is None or i.get("kind") == kind]
        self.write_json({"items": items, "count": len(items)})

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
            await self.commit(self.cmdb.with_item(body, relations))
        self.write_json(self.cmdb.item(item_id), status=201)


class ItemHandler(CmdbHandler):
    def get(self, item_id: str) -> None:
        item = self.cmdb.item(item_id)
        self.write_json({**item, "depends_on": self.cmdb.dependencies(item_id),
                         "dependents": self.cmdb.dependents(item_id), "runs_on": self.cmdb.hosts_of(item_id)})

    async def put(self, item_id: str) -> None:
        body = self.json_object()
        if body.setdefault("id", item_id) != item_id:
            raise InvalidInput(f"the body's id {body['id']!r} differs from the path's {item_id!r}", field="id")
        relations = body.pop("relations", None)
        async with self.services.cmdb_lock:
            created = item_id not in self.cmdb.items
            await self.commit(self.cmdb.with_item(body, relations))
        self.write_json(self.cmdb.item(item_id), status=201 if created else 200)

    async def delete(self, item_id: str) -> None:
        async with self.services.cmdb_lock:
            new, removed = self.cmdb.without_item(item_id)
            await self.commit(new)
        self.write_json({"deleted": item_id, "relations_removed": removed})


class UpstreamHandler(CmdbHandler):
    def get(self, item_id: str) -> None:
        self.write_json({"id": item_id, "upstream": self.cmdb.upstream(item_id)})


class ImpactHandler(CmdbHandler):
    def get(self, item_id: str) -> None:
        impact = self.cmdb.impact(item_id)
        self.write_json({"id": item_id, "impact": impact, "count": len(impact)})


class PathsHandler(CmdbHandler):
    def get(self) -> None:
        source, target = self.get_query_argument("from", None), self.get_query_argument("to", None)
        if not source or not target:
            raise ApiError(400, "query parameters 'from' and 'to' are required")
        self.write_json({"from": source, "to": target, "paths": self.cmdb.paths(source, target)})


class ImportHandler(CmdbHandler):
    async def post(self) -> None:
        mode = self.choice_argument("mode", ("merge", "replace"), "merge")
        if len(self.request.body) > MAX_IMPORT_BYTES:
            raise ApiError(413, f"a CMDB import may be {MAX_IMPORT_BYTES // 2**20} MiB at most")
        if not self.request.body.strip():
            raise ApiError(400, "the body must be a CMDB document in YAML or JSON (items, relations)")
        incoming = Cmdb.parse(self.request.body, source="request body")  # validates the document alone
        async with self.services.cmdb_lock:
            new = incoming if mode == "replace" else self.cmdb.merged(incoming.to_dict())
            await self.commit(new)
        self.write_json({"mode": mode, "items": len(new.items), "relations": len(new.relations)})


class ExportHandler(CmdbHandler):
    def get(self) -> None:
        fmt = self.choice_argument("format", ("yaml", "json"), "yaml")
        self.set_header("Content-Type", "application/yaml; charset=UTF-8" if fmt == "yaml"
                        else "application/json; charset=UTF-8")
        self.finish(self.cmdb.dumps(fmt))


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
