// One session: its header (rename, archive, fork, delete, related), the workspace bar (start/stop,
// status and reason, Open IDE), the files or conversations, and the terminal when ready.
import { useEffect, useRef, useState } from "preact/hooks";
import * as api from "../api";
import { ErrorText, Field, go, useAction } from "../ui";
import { FilesPane } from "./files";
import { ConversationsPane } from "./conversations";

const SETTLED = new Set(["ready", "stopped", "failed"]);

interface Related { parent: api.Session | null; children: api.Session[]; siblings: api.Session[] }

export function SessionScreen(props: { id: string }) {
  const [session, setSession] = useState<api.Session | null>(null);
  const [related, setRelated] = useState<Related | null>(null);
  const [tab, setTab] = useState<"files" | "conversations">("files");
  const [renaming, setRenaming] = useState(false);
  const [newName, setNewName] = useState("");
  const [run, error] = useAction();
  const base = `/api/v5/sessions/${props.id}`;

  const load = () => run(async () => {
    setSession(await api.get<api.Session>(base));
    setRelated(await api.get<Related>(`${base}/related`));
  });
  useEffect(() => void load(), [props.id]);

  const rename = (e: Event) => {
    e.preventDefault();
    void run(async () => { setSession(await api.patch<api.Session>(base, { name: newName.trim() })); setRenaming(false); });
  };
  const archive = () => run(async () => setSession(await api.patch<api.Session>(base, { archived: !session?.archived })));
  const fork = () => run(async () => go(`#/s/${(await api.post<api.Session>(`${base}/fork`, {})).id}`));
  const remove = () => run(async () => {
    if (!confirm(`Delete the session "${session?.name}" with its files and conversations?`)) return;
    await api.del(base);
    go("#/");
  });

  if (!session) return <div><ErrorText error={error} /><p class="muted">Loading…</p></div>;
  return (
    <div class="session">
      <header class="session-head">
        <div>
          <a href="#/" class="muted">Sessions</a> / <h1 class="inline-title">{session.name}</h1>
          {session.archived && <span class="badge">archived</span>}
          {related?.parent && <span class="muted"> · forked from <a href={`#/s/${related.parent.id}`}>{related.parent.name}</a></span>}
        </div>
        <div class="actions">
          <button type="button" onClick={() => { setNewName(session.name); setRenaming(!renaming); }}>Rename</button>
          <button type="button" onClick={() => void archive()}>{session.archived ? "Unarchive" : "Archive"}</button>
          <button type="button" onClick={() => void fork()}>Fork</button>
          <button type="button" class="danger" onClick={() => void remove()}>Delete session</button>
        </div>
      </header>
      {renaming && (
        <form class="row" onSubmit={rename} aria-label="Rename session">
          <Field label="New session name" value={newName} onInput={setNewName} required />
          <button type="submit" class="primary">Save name</button>
        </form>
      )}
      {related && (related.children.length > 0 || related.siblings.length > 0) && (
        <p class="muted related">
          {related.children.length > 0 && <>Forks: {related.children.map((s) => <a key={s.id} href={`#/s/${s.id}`}>{s.name}</a>)} </>}
          {related.siblings.length > 0 && <>Siblings: {related.siblings.map((s) => <a key={s.id} href={`#/s/${s.id}`}>{s.name}</a>)}</>}
        </p>
      )}
      <ErrorText error={error} />
      <WorkspaceBar sessionId={props.id} />
      <div class="tabs" role="tablist">
        <button type="button" role="tab" aria-selected={tab === "files"} onClick={() => setTab("files")}>Files</button>
        <button type="button" role="tab" aria-selected={tab === "conversations"} onClick={() => setTab("conversations")}>Conversations</button>
      </div>
      {tab === "files" ? <FilesPane sessionId={props.id} /> : <ConversationsPane sessionId={props.id} />}
    </div>
  );
}

function WorkspaceBar(props: { sessionId: string }) {
  const [ws, setWs] = useState<api.Workspace | null>(null);
  const [run, error] = useAction();
  const timer = useRef<number>();

  const poll = (id: string) => {
    window.clearTimeout(timer.current);
    timer.current = window.setTimeout(() => void api.get<api.Workspace>(`/api/v5/workspaces/${id}`).then((w) => {
      setWs(w);
      if (!SETTLED.has(w.status)) poll(id);
    }, () => poll(id)), 700);
  };
  useEffect(() => {
    void run(async () => {
      const mine = (await api.all<api.Workspace>("/api/v5/workspaces")).filter((w) => w.session_id === props.sessionId);
      const live = mine.find((w) => w.status !== "stopped" && w.status !== "failed") ?? mine[0] ?? null;
      setWs(live);
      if (live && !SETTLED.has(live.status)) poll(live.id);
    });
    return () => window.clearTimeout(timer.current);
  }, [props.sessionId]);

  const start = () => run(async () => {
    const w = await api.call<api.Workspace>("POST", "/api/v5/workspaces", { session_id: props.sessionId }, { "Idempotency-Key": crypto.randomUUID() });
    setWs(w);
    poll(w.id);
  });
  const stop = () => run(async () => {
    if (!ws) return;
    setWs(await api.call<api.Workspace>("DELETE", `/api/v5/workspaces/${ws.id}`));
    poll(ws.id);
  });
  const openIde = () => run(async () => {
    if (!ws) return;
    const t = await api.post<{ ticket: string }>(`/api/v5/workspaces/${ws.id}/tickets`);
    window.open(`/workspaces/${ws.id}/?ticket=${encodeURIComponent(t.ticket)}`, "_blank", "noopener,noreferrer");
  });

  const running = ws !== null && !["stopped", "failed", "stopping"].includes(ws.status);
  return (
    <>
      <div class="workspace-bar" aria-label="Workspace">
        <span>Workspace: <strong role="status" aria-label="Workspace status">{ws ? ws.status : "not started"}</strong>
          {ws?.status_reason && <span class="muted"> — {ws.status_reason}</span>}</span>
        <span class="actions">
          {running
            ? <button type="button" onClick={() => void stop()}>Stop workspace</button>
            : <button type="button" class="primary" onClick={() => void start()}>Start workspace</button>}
          {ws?.status === "ready" && <button type="button" onClick={() => void openIde()}>Open IDE</button>}
        </span>
      </div>
      <ErrorText error={error} />
      {ws?.status === "ready" && <TerminalView workspaceId={ws.id} />}
    </>
  );
}

function TerminalView(props: { workspaceId: string }) {
  const host = useRef<HTMLDivElement>(null);
  const [note, setNote] = useState("Connecting…");
  useEffect(() => {
    let stop: (() => void) | undefined;
    let alive = true;
    void import("../terminal").then((m) => {
      if (alive && host.current) stop = m.openTerminal(host.current, props.workspaceId, setNote);
    });
    return () => { alive = false; stop?.(); };
  }, [props.workspaceId]);
  return (
    <section class="terminal-wrap">
      <div class="terminal" role="region" aria-label="Terminal" ref={host} />
      <p class="muted small" aria-live="polite">{note}</p>
    </section>
  );
}
