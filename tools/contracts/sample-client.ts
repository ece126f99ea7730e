// A small client of the PipeDesk API, typed by the types openapi-typescript generates from the
// gateway's merged OpenAPI document (pipedesk-api.ts, generated beside it by openapi.mjs).
// make test type-checks it: a change of the API that would break such a client fails the build.
import type { components, paths } from "./pipedesk-api";

type Schemas = components["schemas"];
type Json<P extends keyof paths, M extends keyof paths[P], S extends number> =
  paths[P][M] extends { responses: { [K in S]: { content: { "application/json": infer B } } } }
    ? B
    : never;
type Body<P extends keyof paths, M extends keyof paths[P]> =
  paths[P][M] extends { requestBody: { content: { "application/json": infer B } } } ? B : never;

export class PipeDeskClient {
  constructor(
    private readonly baseUrl: string,
    private readonly token: string,
  ) {}

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const answer = await fetch(this.baseUrl + path, {
      method,
      headers: {
        Authorization: `Bearer ${this.token}`,
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!answer.ok) {
      const problem = (await answer.json()) as Schemas["Problem"];
      throw new Error(`${problem.status} ${problem.title}: ${problem.detail ?? ""}`);
    }
    return (await answer.json()) as T;
  }

  createLead(lead: Body<"/api/leads", "post">): Promise<Json<"/api/leads", "post", 201>> {
    return this.call("POST", "/api/leads", lead);
  }

  lead(id: string): Promise<Schemas["LeadPublic"]> {
    return this.call("GET", `/api/leads/${encodeURIComponent(id)}`);
  }

  /** Every lead the caller may read, one page after another. */
  async *leads(limit = 50): AsyncGenerator<Schemas["LeadPublic"]> {
    let cursor: string | null = null;
    do {
      const query = new URLSearchParams({ limit: String(limit), ...(cursor ? { cursor } : {}) });
      const page: Json<"/api/leads", "get", 200> = await this.call("GET", `/api/leads?${query}`);
      yield* page.items;
      cursor = page.next_cursor ?? null;
    } while (cursor);
  }

  /** A record's timeline, newest first (one page). */
  timeline(type: "lead" | "deal", id: string): Promise<Json<"/api/timeline/{record_type}/{record_id}", "get", 200>> {
    return this.call("GET", `/api/timeline/${type}/${encodeURIComponent(id)}`);
  }

  teams(): Promise<Json<"/api/teams", "get", 200>> {
    return this.call("GET", "/api/teams");
  }

  createMeeting(
    meeting: Body<"/api/calendar/events", "post">,
  ): Promise<Json<"/api/calendar/events", "post", 201>> {
    return this.call("POST", "/api/calendar/events", meeting);
  }
}

export async function example(client: PipeDeskClient): Promise<string[]> {
  const lead = await client.createLead({ title: "Acme renewal", priority: "high", tags: ["q3"] });
  const again: Schemas["LeadPublic"] = await client.lead(lead.id);
  const titles: string[] = [again.title];
  for await (const each of client.leads(20)) {
    titles.push(`${each.title} (${each.status}, ${each.owner_id})`);
  }
  const timeline = await client.timeline("lead", lead.id);
  titles.push(...timeline.items.map((item) => `${item.kind}: ${item.title}`));
  const teams = await client.teams();
  titles.push(...teams.items.map((team) => team.name));
  const meeting = await client.createMeeting({
    summary: "Kick-off",
    start: "2030-03-04T10:00:00Z",
    end: "2030-03-04T11:00:00Z",
  });
  titles.push(meeting.id);
  return titles;
}
