// Swagger UI for the gateway's merged OpenAPI document. A file, not an inline script, so the page
// runs under a Content-Security-Policy without 'unsafe-inline' for scripts.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  persistAuthorization: false,
  validatorUrl: null, // never send the document to an online validator
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
});
