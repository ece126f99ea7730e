// Tasks on a lead or deal: every task linked to the record that the caller may see, and a form
// that creates one in the caller's Google Tasks linked to the record.

import { get, post } from "../api.js";
import { h, show } from "../dom.js";
import { creationForm, refusal } from "./common.js";

export const tasksPanel = {
  id: "tasks",
  title: "Tasks",
  recordTypes: ["lead", "deal"],
  products: ["tasks"],

  async render(container, record) {
    const list = h("ul", { class: "tasks" });
    const message = h("div", { class: "message" });
    const form = h("form", { class: "stack", id: "new-task" },
      h("label", {}, "Title", h("input", { name: "title", required: true, maxlength: 1024 })),
      h("label", {}, "Due", h("input", { name: "due", type: "date" })),
      h("div", {}, h("button", { type: "submit" }, "Create task")));

    async function load() {
      const query = new URLSearchParams({ record_type: record.type, record_id: record.id, limit: "20" });
      try {
        const { body } = await get(`/api/tasks?${query}`);
        show(list, body.items.length
          ? body.items.map((task) => h("li", {}, task.title, task.due ? h("span", { class: "muted" }, ` · due ${task.due}`) : null, task.status === "completed" ? " ✓" : null))
          : h("li", { class: "muted" }, "No tasks on this record."));
      } catch (error) {
        refusal(list, error, tasksPanel.products);
      }
    }

    creationForm(form, message, this.products, async (data, headers) => {
      const { body } = await post("/api/tasks", {
        title: data.get("title"),
        due: data.get("due") || null,
        links: [{ type: record.type, id: record.id }],
      }, { headers });
      await load();
      return `Created “${body.title}”.`;
    });
    show(container, h("h2", {}, this.title), list, form, message);
    await load();
  },
};
