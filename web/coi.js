// A service worker that serves the site with the two headers that make a page cross-origin
// isolated (Cross-Origin-Opener-Policy and -Embedder-Policy), for static hosts that cannot
// send them, such as GitHub Pages. Isolated, a page may share memory with Web Workers: the CPU
// kernels then run on every core (web/pool.js). index.html registers it and reloads once; where
// service workers are off (a private window in some browsers), the page runs on one thread.
self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));
self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.cache === "only-if-cached" && request.mode !== "same-origin") {
    return;
  }
  event.respondWith(
    fetch(request).then((response) => {
      if (response.status === 0) {
        return response;
      }
      const headers = new Headers(response.headers);
      headers.set("Cross-Origin-Opener-Policy", "same-origin");
      headers.set("Cross-Origin-Embedder-Policy", "require-corp");
      return new Response(response.body, {
        status: response.status,
        statusText: response.statusText,
        headers,
      });
    }),
  );
});
