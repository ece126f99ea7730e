// The caller's Google connection: status, connect (the OAuth flow: the browser goes to Google's
// consent page and the callback sends it back here, /app/?google=…), disconnect.

import { del, get } from "../api.js";
import { h, show, when } from "../dom.js";
import { problemView } from "./problem.js";

const PRODUCTS = ["calendar", "tasks", "drive", "gmail"];
export const RETURN_KEY = "pipedesk.returnTo";

export async function connectGoogle(products, returnTo = location.hash) {
  const query = new URLSearchParams({ products: products.join(",") });
  const { body } = await get(`/api/accounts/google/connect?${query}`);
  sessionStorage.setItem(RETURN_KEY, returnTo);
  location.assign(body.authorization_url);
}

export async function googleView(container) {
  let connection;
  try {
    ({ body: connection } = await get("/api/accounts/google"));
  } catch (error) {
    return problemView(container, error);
  }
  const boxes = PRODUCTS.map((product) =>
    h("label", {},
      h("input", { type: "checkbox", name: product, checked: product === "calendar" || product === "tasks" || connection.products[product]?.state !== "not_requested" }),
      ` ${product}`),
  );
  const message = h("p", { class: "error", hidden: true });
  const connected = connection.status === "connected";
  show(
    container,
    h("section", { class: "card google" },
      h("h1", {}, "Google"),
      h("p", { class: "google-status", dataset: { status: connection.status } },
        connected
          ? `Connected as ${connection.google_email ?? "?"} (${connection.via}) since ${when(connection.connected_at)}.`
          : connection.status === "revoked"
            ? `Google no longer accepts the grant: ${connection.last_error ?? "connect again"}.`
            : "Not connected."),
      h("table", {},
        h("thead", {}, h("tr", {}, h("th", {}, "product"), h("th", {}, "granted"))),
        h("tbody", {}, Object.entries(connection.products).map(([product, access]) =>
          h("tr", {}, h("td", {}, product), h("td", {}, access.granted ? "yes"
            : access.state === "needs_reconnect" ? `needs reconnect: ${access.problem}` : "no"))))),
      h("form", {
        class: "stack",
        onsubmit: async (event) => {
          event.preventDefault();
          const chosen = boxes.map((label) => label.querySelector("input")).filter((box) => box.checked).map((box) => box.name);
          try {
            await connectGoogle(chosen, "#/google");
          } catch (error) {
            message.hidden = false;
            message.textContent = error.message;
          }
        },
      },
      h("div", { class: "products" }, boxes),
      h("div", {}, h("button", { type: "submit", id: "connect-google" }, connected ? "Connect more products" : "Connect Google"))),
      connected && connection.via === "oauth"
        ? h("p", {}, h("button", {
            class: "secondary",
            onclick: async () => {
              try {
                await del("/api/accounts/google");
                await googleView(container);
              } catch (error) {
                message.hidden = false;
                message.textContent = error.message;
              }
            },
          }, "Disconnect"))
        : null,
      message),
  );
}
