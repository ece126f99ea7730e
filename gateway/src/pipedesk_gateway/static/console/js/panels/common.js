// What every panel does alike: explain a refusal, offering to connect Google when that is what
// the API asks for.

import { h, show } from "../dom.js";
import { connectGoogle } from "../views/google.js";

export function refusal(container, error, products) {
  if (error.slug === "google-not-connected" || error.slug === "google-reconnect-required") {
    show(
      container,
      h("p", { class: "error" }, error.message),
      h("button", { class: "secondary", onclick: () => connectGoogle(products) }, `Connect Google (${products.join(", ")})`),
    );
    return;
  }
  const fields = (error.problem?.errors ?? []).map((field) => `${field.field}: ${field.message}`);
  show(container, h("p", { class: "error" }, [error.message, ...fields].join(" · ")));
}
