// One record: its fields, its unified timeline (live), and the panels that apply to its type.

import { get } from "../api.js";
import { h, show, when } from "../dom.js";
import { PANELS } from "../panels/index.js";
import { RECORD_TYPES, displayedFields, formatValue, titleOf } from "../records.js";
import { TimelineFeed } from "../timeline.js";
import { notFoundView, problemView } from "./problem.js";

const STATES = {
  connecting: "connecting…",
  live: "● live",
  reconnecting: "reconnecting…",
  closed: "stopped",
  gone: "no access",
};

function timelineItem(item, arrival, fresh) {
  return h("li", { class: fresh ? "fresh" : null, dataset: { itemId: item.id, kind: item.kind, arrived: arrival } },
    h("span", { class: "kind" }, item.kind),
    h("strong", { class: "title" }, item.title),
    item.status && !["confirmed", "needsAction"].includes(item.status) ? h("span", { class: "muted" }, ` (${item.status})`) : null,
    h("div", { class: "when" }, when(item.occurred_at), item.actor_id ? ` · ${item.actor_id}` : "", ` · ${item.source.service}`),
    item.summary ? h("p", { class: "summary" }, item.summary) : null,
    item.hidden ? h("div", { class: "muted" }, `partly hidden: ${item.hidden.reason}`) : null);
}

export async function recordView(container, type, id, onLeave) {
  const spec = RECORD_TYPES[type];
  let record;
  try {
    ({ body: record } = await get(`/api/${spec.plural}/${id}`));
  } catch (error) {
    return problemView(container, error, spec.label.toLowerCase());
  }
  const feed = new TimelineFeed(type, id);
  onLeave(() => feed.close());

  const items = h("ol", { id: "timeline-items" });
  const live = h("span", { class: "live off", id: "stream-state" }, STATES.connecting);
  const version = h("span", { id: "timeline-version" });
  const check = h("span", { id: "last-check" });
  const refresh = h("button", { class: "secondary", id: "revalidate" }, "Revalidate");
  refresh.addEventListener("click", () => feed.revalidate().catch((error) => (check.textContent = error.message)));

  function renderItems(freshId = null) {
    const ordered = feed.ordered;
    show(items, ordered.length
      ? ordered.map((item) => timelineItem(item, feed.arrivals.get(item.id), item.id === freshId))
      : h("li", { class: "muted" }, "Nothing on the timeline yet."));
    version.textContent = feed.version === null ? "" : `version ${feed.version}`;
    const last = feed.lastCheck;
    check.textContent = !last ? "" : !last.conditional ? `page: ${last.status}`
      : last.status === 304 ? "revalidated: 304 not modified" : `revalidated: ${last.status}, changed`;
  }
  feed.addEventListener("change", (event) => renderItems(event.detail.itemId));
  feed.addEventListener("state", () => {
    if (feed.state === "gone") return notFoundView(container, spec.label.toLowerCase());
    live.textContent = STATES[feed.state];
    live.className = `live ${feed.state === "live" ? "on" : "off"}`;
  });

  const panels = PANELS.filter((panel) => panel.recordTypes.includes(type)).map((panel) => ({
    panel,
    box: h("section", { class: "card panel", id: `panel-${panel.id}` }, h("h2", {}, panel.title)),
  }));
  show(
    container,
    h("div", { class: "record", dataset: { recordType: type, recordId: id } },
      h("div", {},
        h("section", { class: "card" },
          h("p", { class: "muted" }, spec.label),
          h("h1", { id: "record-title" }, titleOf(record)),
          h("dl", { class: "fields" }, displayedFields(record).map(([name, value]) => [h("dt", {}, name.replaceAll("_", " ")), h("dd", {}, formatValue(value))]))),
        h("section", { class: "card timeline" },
          h("h2", {}, "Timeline"),
          h("div", { class: "status-line" }, live, version, check, refresh),
          items)),
      h("div", {}, panels.map(({ box }) => box))),
  );
  renderItems();
  for (const { panel, box } of panels) panel.render(box, { ...record, type });
  try {
    await feed.start();
  } catch (error) {
    if (error.status === 404) return notFoundView(container, spec.label.toLowerCase());
    check.textContent = error.message;
  }
}
