// The session list: create, open (each session a link named by its name), show archived.
import { useEffect, useState } from "preact/hooks";
import * as api from "../api";
import { ErrorText, Field, Panel, go, useAction, when } from "../ui";

export function SessionsScreen() {
  const [sessions, setSessions] = useState<api.Session[] | null>(null);
  const [archived, setArchived] = useState(false);
  const [creating, setCreating] = useState(false);
  const [name, setName] = useState("");
  const [run, error] = useAction();

  const load = () => run(async () => setSessions(await api.all<api.Session>(`/api/v5/sessions?archived=${archived ? "all" : "false"}`)));
  useEffect(() => void load(), [archived]);

  const create = (e: Event) => {
    e.preventDefault();
    void run(async () => {
      const made = await api.post<api.Session>("/api/v5/sessions", { name: name.trim() });
      setName("");
      setCreating(false);
      go(`#/s/${made.id}`);
    });
  };

  return (
    <Panel title="Sessions" actions={<>
      <label class="inline"><input type="checkbox" checked={archived} onChange={(e) => setArchived((e.currentTarget as HTMLInputElement).checked)} /> Show archived</label>
      <button type="button" class="primary" onClick={() => setCreating(!creating)}>New session</button>
    </>}>
      {creating && (
        <form class="row" onSubmit={create} aria-label="New session">
          <Field label="Session name" value={name} onInput={setName} required />
          <button type="submit" class="primary">Create</button>
          <button type="button" onClick={() => setCreating(false)}>Cancel</button>
        </form>
      )}
      <ErrorText error={error} />
      {sessions === null ? <p class="muted">Loading…</p> : sessions.length === 0 ? (
        <p class="empty">No sessions yet. Create one to start.</p>
      ) : (
        <ul class="list">
          {sessions.map((s) => (
            <li key={s.id}>
              <a href={`#/s/${s.id}`}>{s.name}</a>
              <span class="muted">{s.archived ? "archived · " : ""}{s.parent_id ? "fork · " : ""}updated {when(s.updated_at)}</span>
            </li>
          ))}
        </ul>
      )}
    </Panel>
  );
}
