// A client written against the types openapi-typescript generates from the served document
// (default options), compiled with tsc --strict by tests/e2e/test_generated_clients.py. It must
// compile without casts: optional fields optional, bodies optional where the server takes none,
// headers and statuses where the server uses them.
import createClient from "openapi-fetch";
import type { components, paths } from "./api";

type Schemas = components["schemas"];

export async function journey(baseUrl: string, token: string): Promise<Uint8Array> {
  const api = createClient<paths>({ baseUrl });
  const headers = { Authorization: `Bearer ${token}` };

  const created = await api.POST("/api/v5/sessions", { body: { name: "demo" }, headers });
  if (!created.data) throw new Error(created.error?.error.code ?? "no session");
  const sessionId: string = created.data.data.id;
  const session = { params: { path: { session_id: sessionId } }, headers };

  const fork = await api.POST("/api/v5/sessions/{session_id}/fork", { ...session, body: {} });
  const forkId: string | undefined = fork.data?.data.id;
  await api.PATCH("/api/v5/sessions/{session_id}", {
    params: { path: { session_id: sessionId }, header: { "If-Match": "etag" } },
    body: { archived: false },
    headers,
  });
  const page = await api.GET("/api/v5/sessions", { params: { query: { limit: 10, archived: "all" } }, headers });
  const next: string | null | undefined = page.data?.data.next_cursor;

  const conversation = await api.POST("/api/v5/sessions/{session_id}/conversations", {
    ...session,
    body: { title: "t" },
  });
  const conversationId = conversation.data?.data.id ?? "";
  await api.POST("/api/v5/conversations/{conversation_id}/messages", {
    params: { path: { conversation_id: conversationId } },
    body: { role: "user", content: "hi" },
    headers,
  });

  const moved = await api.POST("/api/v5/sessions/{session_id}/files:move", {
    ...session,
    body: { from: "a.txt", to: "b.txt" },
  });
  const file: Schemas["FileInfo"] | undefined = moved.data?.data;
  const changes = await api.GET("/api/v5/sessions/{session_id}/files:changes", {
    params: { path: { session_id: sessionId }, query: { wait: 0 } },
    headers,
  });
  const cursor: string | undefined = changes.data?.data.cursor;

  const workspace = await api.POST("/api/v5/workspaces", {
    params: { header: { "Idempotency-Key": "retry-1" } },
    body: { session_id: sessionId },
    headers,
  });
  const status: Schemas["Workspace"]["status"] | undefined = workspace.data?.data.status;

  const read = await api.GET("/api/v5/sessions/{session_id}/files/{path}", {
    params: { path: { session_id: sessionId, path: "b.txt" }, header: { Range: "bytes=0-9" } },
    headers,
    parseAs: "arrayBuffer",
  });
  void [forkId, next, file, cursor, status];
  return new Uint8Array(read.data ?? new ArrayBuffer(0));
}
