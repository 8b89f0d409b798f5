"""Serves the site folder on 127.0.0.1 (a static host, as GitHub Pages is): web.sh serve|test."""
import functools
import http.server
import sys

site, port = sys.argv[1], int(sys.argv[2])
plain = "--plain" in sys.argv[3:]


class Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".wasm": "application/wasm", ".js": "text/javascript"}

    def end_headers(self):
        # Cross-origin isolation, which the CPU kernels' Web Workers need (web/pool.js);
        # `--plain` serves without it, as GitHub Pages does (web/coi.js then adds it).
        if not plain:
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", port),
                                functools.partial(Handler, directory=site)).serve_forever()
