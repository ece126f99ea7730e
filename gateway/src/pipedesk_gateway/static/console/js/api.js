// Every call to the API goes through request(): the bearer token, JSON in and out, and problem
// documents (RFC 9457) turned into ApiError. The console does its own revalidation
// (If-None-Match), so the browser's HTTP cache is bypassed.

import { token } from "./session.js";

export class ApiError extends Error {
  constructor(response, problem) {
    super(problem.detail || problem.title || `${response.status} ${response.statusText}`);
    this.status = response.status;
    this.problem = problem;
    this.retryAfter = response.headers.get("Retry-After");
  }

  /** The problem's type without its URN prefix: "not-found", "google-not-connected"… */
  get slug() {
    return String(this.problem.type || "").split(":").pop();
  }
}

export async function request(method, path, { json, headers = {} } = {}) {
  const init = { method, cache: "no-store", headers: { Accept: "application/json", ...headers } };
  const bearer = token();
  if (bearer) init.headers.Authorization = `Bearer ${bearer}`;
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  const response = await fetch(path, init);
  if (response.status === 401) window.dispatchEvent(new CustomEvent("pipedesk:unauthorized"));
  if (!response.ok && response.status !== 304) {
    let problem = { title: response.statusText, status: response.status };
    try {
      problem = await response.json();
    } catch {
      // not a problem document (a proxy's page): keep the status line
    }
    throw new ApiError(response, problem);
  }
  const body = response.status === 204 || response.status === 304 ? null : await response.json();
  return { status: response.status, headers: response.headers, body };
}

export const get = (path, options) => request("GET", path, options);
export const post = (path, json, options = {}) => request("POST", path, { ...options, json });
export const del = (path, options) => request("DELETE", path, options);
