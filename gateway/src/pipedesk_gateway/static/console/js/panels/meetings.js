// Meetings on a lead or deal: the record's calendar events, and a form that creates one in the
// caller's Google Calendar linked to the record (it reaches the timeline through its event).

import { get, post } from "../api.js";
import { h, show, when } from "../dom.js";
import { creationForm, refusal } from "./common.js";

function inputValue(date) {
  const local = new Date(date.getTime() - date.getTimezoneOffset() * 60_000);
  return local.toISOString().slice(0, 16); // what <input type="datetime-local"> holds
}

export const meetingsPanel = {
  id: "meetings",
  title: "Meetings",
  recordTypes: ["lead", "deal"],
  products: ["calendar"],

  async render(container, record) {
    const list = h("ul", { class: "meetings" });
    const message = h("div", { class: "message" });
    const start = new Date(Date.now() + 24 * 3600_000);
    start.setMinutes(0, 0, 0);
    const form = h("form", { class: "stack", id: "new-meeting" },
      h("label", {}, "Title", h("input", { name: "summary", required: true, maxlength: 1024 })),
      h("label", {}, "Starts", h("input", { name: "start", type: "datetime-local", required: true, value: inputValue(start) })),
      h("label", {}, "Minutes", h("input", { name: "minutes", type: "number", min: 5, max: 1440, value: 30, required: true })),
      h("label", {}, "Attendees (comma-separated e-mails)", h("input", { name: "attendees" })),
      h("div", {}, h("button", { type: "submit" }, "Create meeting")));

    async function load() {
      const query = new URLSearchParams({ record_type: record.type, record_id: record.id, limit: "20" });
      try {
        const { body } = await get(`/api/calendar/events?${query}`);
        show(list, body.items.length
          ? body.items.map((meeting) => h("li", {}, meeting.summary ?? "(no title)", h("span", { class: "muted" }, ` · ${when(meeting.start.date_time ?? meeting.start.date)}`)))
          : h("li", { class: "muted" }, "No meetings of yours on this record."));
      } catch (error) {
        refusal(list, error, meetingsPanel.products);
      }
    }

    creationForm(form, message, this.products, async (data, headers) => {
      const begins = new Date(String(data.get("start")));
      const ends = new Date(begins.getTime() + Number(data.get("minutes")) * 60_000);
      const attendees = String(data.get("attendees") || "").split(",").map((email) => email.trim()).filter(Boolean);
      const { body } = await post("/api/calendar/events", {
        summary: data.get("summary"),
        start: begins.toISOString(),
        end: ends.toISOString(),
        timezone: Intl.DateTimeFormat().resolvedOptions().timeZone,
        attendees,
        links: [{ type: record.type, id: record.id }],
      }, { headers });
      await load();
      return `Created “${body.summary}”; it reaches the timeline through its event.`;
    });
    show(container, h("h2", {}, this.title), list, form, message);
    await load();
  },
};
