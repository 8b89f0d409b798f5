"""Serves the site folder on 127.0.0.1 (a static host, as GitHub Pages is): web.sh serve|test."""
import functools
import http.server
import sys

site, port = sys.argv[1], int(sys.argv[2])


class Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".wasm": "application/wasm", ".js": "text/javascript"}

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", port),
                                functools.partial(Handler, directory=site)).serve_forever()
