// What the console shows when the API says no: 404 is one page for "does not exist" and "you may
// not see it" (the API answers both alike, by design), anything else shows the problem's detail.

import { h, show } from "../dom.js";

export function notFoundView(container, what = "page") {
  show(
    container,
    h("section", { class: "card not-found" },
      h("h1", {}, "Not found"),
      h("p", {}, `This ${what} does not exist, or you may not see it.`),
      h("p", {}, h("a", { href: "#/leads" }, "Back to the leads"))),
  );
}

export function problemView(container, error, what) {
  if (error.status === 404) return notFoundView(container, what);
  show(
    container,
    h("section", { class: "card" },
      h("h1", {}, error.problem?.title || "Something went wrong"),
      h("p", { class: "error" }, error.message),
      error.status ? h("p", { class: "muted" }, `HTTP ${error.status}`) : null),
  );
}
