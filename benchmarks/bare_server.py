"""The baseline for benchmarks/health_throughput.py: a bare Tornado handler writing a small JSON dict."""
from __future__ import annotations

import asyncio
import sys

import tornado.web


class BareHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write({"status": "ok", "score": 100.0})


async def main(port: int) -> None:
    app = tornado.web.Application([(r"/health", BareHandler)])
    app.listen(port, "127.0.0.1")
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
