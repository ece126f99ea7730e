// The console: a hash router over a few views. Signed out, every route shows the sign-in page.
//
//   #/leads #/deals #/contacts #/companies   a list of records
//   #/lead/<id> (deal, contact, company)     a record: fields, live timeline, panels
//   #/google                                 the Google connection
//
// Google's consent flow ends at /app/?google=connected|error&…: the outcome is shown, and the
// page the user left returns.

import { h, show } from "./dom.js";
import { BY_PLURAL, RECORD_TYPES } from "./records.js";
import { current, signOut } from "./session.js";
import { RETURN_KEY, googleView } from "./views/google.js";
import { notFoundView } from "./views/problem.js";
import { recordView } from "./views/record.js";
import { recordsView } from "./views/records.js";
import { signInView } from "./views/signin.js";

const view = document.getElementById("view");
const flash = document.getElementById("flash");
let leaving = [];

function say(text, tone) {
  flash.textContent = text;
  flash.className = `flash ${tone}`;
  flash.hidden = false;
}

function googleOutcome() {
  const query = new URLSearchParams(location.search);
  const outcome = query.get("google");
  if (!outcome) return;
  const lacking = query.get("needs_reconnect");
  if (outcome === "connected" && lacking) {
    say(`Google connected: ${query.get("products") || "no product"}. Google did not grant everything ${lacking} needs: connect it again and allow every access asked.`, "bad");
  } else if (outcome === "connected") say(`Google connected: ${query.get("products") || "no product"}.`, "good");
  else say(`Google was not connected: ${query.get("reason") || "unknown reason"}.`, "bad");
  const back = sessionStorage.getItem(RETURN_KEY) || "#/google";
  sessionStorage.removeItem(RETURN_KEY);
  history.replaceState(null, "", `/app/${back}`);
}

function header(session) {
  document.getElementById("nav").hidden = !session;
  const who = document.getElementById("who");
  if (!session) return show(who);
  const { user } = session;
  show(who,
    h("span", { id: "signed-in-as" }, `${user.sub} · ${user.role} · ${user.org_id}`),
    h("button", { onclick: () => { signOut(); route(); } }, "Sign out"));
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("current", location.hash.startsWith(link.getAttribute("href")));
  }
}

async function route() {
  for (const leave of leaving) leave();
  leaving = [];
  const session = current();
  header(session);
  if (!session) return signInView(view, () => route());
  const [, first, second] = location.hash.split("/");
  if (!first) return recordsView(view, "lead");
  if (BY_PLURAL[first] && !second) return recordsView(view, BY_PLURAL[first]);
  if (RECORD_TYPES[first] && second) return recordView(view, first, second, (leave) => leaving.push(leave));
  if (first === "google") return googleView(view);
  return notFoundView(view);
}

window.addEventListener("hashchange", () => {
  flash.hidden = true;
  route();
});
window.addEventListener("pipedesk:unauthorized", () => {
  if (!current()) return;
  signOut();
  say("Your session ended; sign in again.", "bad");
  route();
});
googleOutcome();
route();
