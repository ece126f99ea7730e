// A list of records of one type, newest first, a page at a time (cursor pagination).

import { get } from "../api.js";
import { h, show, when } from "../dom.js";
import { RECORD_TYPES, titleOf } from "../records.js";
import { problemView } from "./problem.js";

export async function recordsView(container, type) {
  const spec = RECORD_TYPES[type];
  const rows = h("tbody");
  const more = h("button", { class: "secondary", hidden: true }, "More");
  show(
    container,
    h("section", { class: "card" },
      h("h1", {}, spec.label === "Company" ? "Companies" : `${spec.label}s`),
      h("table", {},
        h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, spec.detail.replace("_", " ")),
          h("th", {}, spec.owner === "owner_id" ? "owner" : "created by"), h("th", {}, "updated"))),
        rows),
      h("p", {}, more)),
  );
  let cursor = null;
  async function loadPage() {
    const query = new URLSearchParams({ limit: "50" });
    if (cursor) query.set("cursor", cursor);
    const { body } = await get(`/api/${spec.plural}?${query}`);
    for (const record of body.items) {
      rows.append(
        h("tr", { dataset: { recordId: record.id } },
          h("td", {}, h("a", { href: `#/${type}/${record.id}` }, titleOf(record))),
          h("td", {}, record[spec.detail] ?? ""),
          h("td", {}, record[spec.owner] ?? ""),
          h("td", {}, when(record.updated_at))),
      );
    }
    if (!rows.children.length) rows.append(h("tr", {}, h("td", { colspan: 4, class: "muted" }, "Nothing here yet.")));
    cursor = body.next_cursor;
    more.hidden = !cursor;
  }
  more.addEventListener("click", () => loadPage().catch((error) => problemView(container, error)));
  try {
    await loadPage();
  } catch (error) {
    problemView(container, error);
  }
}
