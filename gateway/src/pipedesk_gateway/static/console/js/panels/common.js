// What every panel does alike: a form that creates something in Google, and the explanation of a
// refusal, offering to connect Google when that is what the API asks for.

import { h, newKey, show } from "../dom.js";
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

/**
 * Send `form` with `create(data, headers)`, which resolves to what to tell the user. One
 * Idempotency-Key per thing being created: kept while the form is unchanged, so sending again
 * after a lost answer never creates a second one.
 */
export function creationForm(form, message, products, create) {
  let key = newKey();
  form.addEventListener("input", () => (key = newKey()));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const done = await create(new FormData(form), { "Idempotency-Key": key });
      form.reset();
      key = newKey();
      show(message, h("p", { class: "muted" }, done));
    } catch (error) {
      refusal(message, error, products);
    } finally {
      button.disabled = false;
    }
  });
}
