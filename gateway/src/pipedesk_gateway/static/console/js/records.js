// The CRM record types the console lists and opens, and how each is shown.

export const RECORD_TYPES = {
  lead: { plural: "leads", label: "Lead", detail: "status", owner: "owner_id" },
  deal: { plural: "deals", label: "Deal", detail: "stage", owner: "owner_id" },
  contact: { plural: "contacts", label: "Contact", detail: "job_title", owner: "created_by" },
  company: { plural: "companies", label: "Company", detail: "domain", owner: "created_by" },
};

export const BY_PLURAL = Object.fromEntries(
  Object.entries(RECORD_TYPES).map(([type, spec]) => [spec.plural, type]),
);

export function titleOf(record) {
  return record.title || record.name || record.id;
}

/** Fields worth showing on a record's page: everything but ids the page shows elsewhere. */
export function displayedFields(record) {
  const skipped = new Set(["id", "org_id", "title", "name"]);
  return Object.entries(record).filter(
    ([name, value]) => !skipped.has(name) && value !== null && !(Array.isArray(value) && !value.length),
  );
}

export function formatValue(value) {
  if (Array.isArray(value)) return value.join(", ");
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}
