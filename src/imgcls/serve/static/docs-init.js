// Swagger UI over /openapi.json, from files the app serves (no CDN, no inline script).
"use strict";
window.addEventListener("load", () => {
  window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui" });
});
