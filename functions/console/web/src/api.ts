// The API client: the access token lives in this module's memory only; the refresh token is an
// HttpOnly cookie the page never sees (cookie mode of /auth/*, see docs/console.md).

const MODE = { "X-Coditect-Token-Mode": "cookie" };
const REFRESH_MARGIN_S = 60; // refresh this long before the access token expires

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers?: Headers,
  ) {
    super(message);
  }
}

export interface User { id: string; email: string; name: string; role: string; tenant_id: string }
export interface Session {
  id: string; name: string; description?: string | null; archived?: boolean;
  parent_id?: string | null; created_at: string; updated_at: string;
}
export interface FileEntry {
  path: string; type: "file" | "directory"; size: number; etag: string; version: number;
  content_type?: string; updated_at: string;
}
export interface Workspace { id: string; session_id: string; status: string; status_reason?: string | null }
export interface Page<T> { items: T[]; next_cursor: string | null }

let accessToken: string | null = null;
let refreshTimer: number | undefined;
let onSignedOut: () => void = () => {};
let refreshing: Promise<boolean> | null = null;
// Not a secret: only whether this browser may hold a refresh cookie worth trying at start-up
// (saves a pointless 401 on a first visit). The cookie itself is HttpOnly.
const HINT = "coditect.maybeSignedIn";

export function maybeSignedIn(): boolean {
  try { return localStorage.getItem(HINT) === "1"; } catch { return true; }
}

function hint(on: boolean): void {
  try { if (on) localStorage.setItem(HINT, "1"); else localStorage.removeItem(HINT); } catch { /* private mode */ }
}

export function whenSignedOut(callback: () => void): void {
  onSignedOut = callback;
}

export function signedIn(): boolean {
  return accessToken !== null;
}

function adopt(tokens: { access_token: string; expires_in: number }): void {
  accessToken = tokens.access_token;
  hint(true);
  window.clearTimeout(refreshTimer);
  const delay = Math.max(5, tokens.expires_in - REFRESH_MARGIN_S) * 1000;
  refreshTimer = window.setTimeout(() => void refresh(), delay);
}

export function forget(): void {
  accessToken = null;
  window.clearTimeout(refreshTimer);
}

function signOut(): void {
  hint(false);
  forget();
  onSignedOut();
}

async function envelope<T>(response: Response): Promise<T> {
  if (response.status === 204) return undefined as T;
  const body = await response.json().catch(() => null);
  if (!response.ok || !body || body.success !== true) {
    const error = body?.error ?? {};
    throw new ApiError(response.status, error.code ?? "error", error.message ?? response.statusText, response.headers);
  }
  return body.data as T;
}

/** Rotate the refresh cookie; false (and signed out) when the login session is gone. */
export function refresh(): Promise<boolean> {
  refreshing ??= (async () => {
    try {
      const response = await fetch("/api/v5/auth/refresh", { method: "POST", headers: MODE, credentials: "same-origin" });
      const data = await envelope<{ tokens: { access_token: string; expires_in: number } }>(response);
      adopt(data.tokens);
      return true;
    } catch {
      if (accessToken !== null) signOut();
      else { hint(false); forget(); }
      return false;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

export async function register(body: Record<string, string>): Promise<User> {
  const response = await fetch("/api/v5/auth/register", {
    method: "POST", headers: { ...MODE, "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  const data = await envelope<{ user: User; tokens: { access_token: string; expires_in: number } }>(response);
  adopt(data.tokens);
  return data.user;
}

export async function login(email: string, password: string): Promise<User> {
  const response = await fetch("/api/v5/auth/login", {
    method: "POST", headers: { ...MODE, "Content-Type": "application/json" }, body: JSON.stringify({ email, password }),
  });
  const data = await envelope<{ user: User; tokens: { access_token: string; expires_in: number } }>(response);
  adopt(data.tokens);
  return data.user;
}

export async function logout(): Promise<void> {
  try {
    // through raw(): an access token that expired meanwhile is refreshed first, so the login
    // session is really revoked and the cookies expired
    await raw("/api/v5/auth/logout", { method: "POST", headers: MODE });
  } finally {
    signOut();
  }
}

function bearer(): Record<string, string> {
  return accessToken ? { Authorization: `Bearer ${accessToken}` } : {};
}

/** A raw authenticated request (retried once after a refresh when the token expired). */
export async function raw(path: string, init: RequestInit = {}): Promise<Response> {
  const go = () => fetch(path, { ...init, headers: { ...(init.headers as Record<string, string>), ...bearer() } });
  let response = await go();
  if (response.status === 401) {
    const code = (await response.clone().json().catch(() => null))?.error?.code;
    if (code === "token_expired" && (await refresh())) response = await go();
    else if (code !== "invalid_credentials") {
      signOut();
    }
  }
  return response;
}

export async function call<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    (init.headers as Record<string, string>)["Content-Type"] = "application/json";
  }
  return envelope<T>(await raw(path, init));
}

export const get = <T>(path: string) => call<T>("GET", path);
export const post = <T>(path: string, body?: unknown) => call<T>("POST", path, body ?? {});
export const patch = <T>(path: string, body: unknown) => call<T>("PATCH", path, body);
export const put = <T>(path: string, body: unknown) => call<T>("PUT", path, body);
export const del = (path: string) => call<void>("DELETE", path);

/** Every page of a paged list (bounded: a console list never needs more than `max` items). */
export async function all<T>(path: string, max = 1000): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | null = null;
  do {
    const sep = path.includes("?") ? "&" : "?";
    const page: Page<T> = await get<Page<T>>(`${path}${sep}limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items;
}

/** A file path as a URL path: each segment encoded, the slashes kept. */
export function filePath(sessionId: string, path: string): string {
  return `/api/v5/sessions/${sessionId}/files/${path.split("/").map(encodeURIComponent).join("/")}`;
}

/** The login session ended elsewhere (a 4401 close of the terminal): back to the login screen. */
export function expired(): void {
  signOut();
}
