// A record's timeline kept current the way a frontend should:
//
// 1. GET the first page; keep its ETag and Timeline-Version.
// 2. Open the live stream: POST …/stream-ticket (with the token), then an EventSource on the
//    ticket's URL, resuming after the page's Timeline-Version so nothing between the page and the
//    stream is missed. Each `item` event adds or replaces an item (items are identified by id).
// 3. A ticket works once: when the stream ends or breaks, get a new ticket and resume after the
//    last event id received (backing off while the API is unreachable).
// 4. Revalidate the page with If-None-Match (a cheap 304 while nothing changed) after a
//    reconnection, when the tab becomes visible again, and on demand; a 200 replaces the page
//    (it also reflects access changes, which the stream does not send).

import { ApiError, get, post } from "./api.js";

const MAX_BACKOFF_MS = 30_000;

export class TimelineFeed extends EventTarget {
  constructor(type, id) {
    super();
    this.path = `/api/timeline/${type}/${id}`;
    this.items = new Map(); // id → item
    this.arrivals = new Map(); // id → "page" | "stream"
    this.etag = null;
    this.version = null; // the last position the page or the stream reached
    this.lastCheck = null; // the last page request: { status, conditional }
    this.state = "connecting"; // connecting | live | reconnecting | closed | gone
    this.nextCursor = null;
    this.backoff = 1000;
    this.source = null;
    this.closed = false;
    this.onVisible = () => {
      if (document.visibilityState === "visible") this.revalidate().catch(() => {});
    };
  }

  /** Items newest first, as the API orders them. */
  get ordered() {
    return [...this.items.values()].sort(
      (a, b) => (b.occurred_at > a.occurred_at) - (b.occurred_at < a.occurred_at) || (b.id > a.id) - (b.id < a.id),
    );
  }

  async start() {
    await this.revalidate();
    document.addEventListener("visibilitychange", this.onVisible);
    await this.connect();
  }

  close() {
    this.closed = true;
    this.source?.close();
    document.removeEventListener("visibilitychange", this.onVisible);
    this.setState("closed");
  }

  /** GET the first page, with If-None-Match once there is an ETag. */
  async revalidate() {
    const headers = this.etag ? { "If-None-Match": this.etag } : {};
    const response = await get(this.path, { headers });
    this.lastCheck = { status: response.status, conditional: Boolean(this.etag) };
    this.etag = response.headers.get("ETag") ?? this.etag;
    const version = Number(response.headers.get("Timeline-Version"));
    if (response.status === 200) {
      const previous = this.arrivals;
      this.items = new Map(response.body.items.map((item) => [item.id, item]));
      this.arrivals = new Map(response.body.items.map((item) => [item.id, previous.get(item.id) ?? "page"]));
      this.nextCursor = response.body.next_cursor;
      if (this.version === null || version > this.version) this.version = version;
    }
    this.changed();
    return response.status;
  }

  async connect() {
    if (this.closed) return;
    let ticket;
    try {
      ({ body: ticket } = await post(`${this.path}/stream-ticket`));
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return this.gone();
      if (error instanceof ApiError && error.status === 401) return this.close();
      return this.retry();
    }
    const url = new URL(ticket.stream_url, location.origin);
    if (this.version !== null) url.searchParams.set("last_event_id", String(this.version));
    const source = new EventSource(url);
    this.source = source;
    source.addEventListener("ready", () => {
      this.backoff = 1000;
      this.setState("live");
    });
    source.addEventListener("item", (event) => {
      const item = JSON.parse(event.data);
      this.items.set(item.id, item);
      this.arrivals.set(item.id, "stream");
      if (event.lastEventId) this.version = Number(event.lastEventId);
      this.changed(item.id);
    });
    source.addEventListener("end", (event) => {
      source.close();
      const { reason } = JSON.parse(event.data);
      if (reason === "access") this.gone();
      else this.retry();
    });
    // A broken connection: EventSource would retry with the same, spent ticket; take a new one.
    source.addEventListener("error", () => {
      if (this.source !== source) return;
      source.close();
      this.retry();
    });
  }

  retry() {
    if (this.closed) return;
    this.setState("reconnecting");
    const delay = this.backoff;
    this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
    setTimeout(async () => {
      if (this.closed) return;
      try {
        await this.revalidate();
      } catch (error) {
        if (error instanceof ApiError && error.status === 404) return this.gone();
      }
      await this.connect();
    }, delay);
  }

  gone() {
    this.close();
    this.setState("gone");
  }

  setState(state) {
    this.state = state;
    this.dispatchEvent(new Event("state"));
  }

  changed(itemId = null) {
    this.dispatchEvent(new CustomEvent("change", { detail: { itemId } }));
  }
}
