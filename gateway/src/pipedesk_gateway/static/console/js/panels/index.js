// The panels of a record's page, beside its timeline. Each is a module exporting
// { id, title, recordTypes, products, render(container, record) }: `recordTypes` are the record
// types it applies to, `products` the Google products it needs (the panel offers to connect them).
//
// A product's panel is added here when its service exists: files (Drive) and mail (Gmail) will
// be two more modules in this list, listing `/api/drive/…` and `/api/gmail/…` for the record.

import { meetingsPanel } from "./meetings.js";
import { tasksPanel } from "./tasks.js";

export const PANELS = [meetingsPanel, tasksPanel];
