// Sign in: in development, as one of the demo org's users, through the development identity
// provider. The page also says how a production identity provider takes its place.

import { h, show } from "../dom.js";
import { demoUsers, signIn } from "../session.js";

export async function signInView(container, onSignedIn) {
  const choices = h("div", { class: "users" }, h("p", { class: "muted" }, "Asking the identity provider…"));
  show(
    container,
    h("section", { class: "card" },
      h("h1", {}, "Sign in"),
      h("p", {}, "Development: pick one of the demo org's users. The development identity provider mints their access token."),
      choices),
    h("section", { class: "card idp" },
      h("h2", {}, "With a production identity provider"),
      h("p", {},
        "Production refuses this page. There, the frontend signs users in with the company's OpenID Connect provider ",
        "(authorization code flow with PKCE) and sends the access token it gets as ",
        h("code", {}, "Authorization: Bearer …"), " on every API call. The gateway and every service verify it against ",
        h("code", {}, "AUTH_JWKS_URL"), ", ", h("code", {}, "AUTH_ISSUER"), " and ", h("code", {}, "AUTH_AUDIENCE"),
        "; the token carries ", h("code", {}, "sub"), ", ", h("code", {}, "email"), ", ", h("code", {}, "org_id"), ", ",
        h("code", {}, "role"), " and ", h("code", {}, "team_ids"), ". In this console, ", h("code", {}, "signIn()"),
        " in ", h("code", {}, "js/session.js"), " is the one place that changes."),
      h("p", {}, "Streams never take the token: the page asks for a single-use ticket (", h("code", {}, "POST …/stream-ticket"),
        ") and opens the stream with it.")),
  );
  try {
    const { org_id: org, users } = await demoUsers();
    show(
      choices,
      users.map((user) =>
        h("button", {
          dataset: { user: user.sub },
          onclick: async (event) => {
            event.currentTarget.disabled = true;
            try {
              await signIn(user.sub);
              onSignedIn();
            } catch (error) {
              show(choices, h("p", { class: "error" }, error.message));
            }
          },
        },
        h("strong", {}, user.sub),
        `${user.role} · ${user.teams.join(", ") || "no team"} · org ${org}`),
      ),
    );
  } catch (error) {
    show(choices, h("p", { class: "error" }, `The development identity provider is not available: ${error.message}`));
  }
}
