// Who is signed in. The console keeps the access token in sessionStorage: it lives as long as the
// tab, is never sent anywhere but in the Authorization header, and is gone when the tab closes.
//
// In development the token comes from the development identity provider, through the gateway's
// /app/session routes (which production refuses). With a production identity provider, signIn()
// is where the frontend runs its OpenID Connect authorization-code flow with PKCE and keeps the
// access token it gets; nothing else in the console changes.

const KEY = "pipedesk.session";

export function current() {
  const saved = sessionStorage.getItem(KEY);
  if (!saved) return null;
  try {
    const session = JSON.parse(saved);
    if (new Date(session.expires_at).getTime() > Date.now()) return session;
  } catch {
    // a damaged entry counts as signed out
  }
  sessionStorage.removeItem(KEY);
  return null;
}

export function token() {
  return current()?.access_token ?? null;
}

export async function demoUsers() {
  const response = await fetch("/app/session/users", { cache: "no-store" });
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail || body.title || response.statusText);
  return body;
}

export async function signIn(sub) {
  const response = await fetch("/app/session", {
    method: "POST",
    cache: "no-store",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user: sub }),
  });
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail || body.title || response.statusText);
  sessionStorage.setItem(KEY, JSON.stringify(body));
  return body;
}

export function signOut() {
  sessionStorage.removeItem(KEY);
}
