// The caller's account: profile, password, login sessions (revoke) and settings.
import { useEffect, useRef, useState } from "preact/hooks";
import * as api from "../api";
import { ErrorText, Field, Panel, useAction, when } from "../ui";

interface AuthSession { id: string; created_at: string; last_used_at: string; user_agent: string | null; current: boolean }

export function AccountScreen(props: { me: api.User | null; onMe: (u: api.User) => void }) {
  const [name, setName] = useState(props.me?.name ?? "");
  // Once the person has typed, the profile must not overwrite the field: effects run after paint,
  // so even this screen's first one can come after a quick edit (a ref, not state, so that a late
  // effect sees the edit), and a later copy of the profile can arrive at any time.
  const edited = useRef(false);
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [logins, setLogins] = useState<AuthSession[]>([]);
  const [note, setNote] = useState("");
  const [run, error] = useAction();

  const load = () => run(async () => setLogins(await api.all<AuthSession>("/api/v5/users/me/auth-sessions")));
  useEffect(() => void load(), []);
  useEffect(() => { if (!edited.current) setName(props.me?.name ?? ""); }, [props.me?.name]);

  const saveProfile = (e: Event) => {
    e.preventDefault();
    void run(async () => {
      props.onMe(await api.patch<api.User>("/api/v5/users/me", { name: name.trim() }));
      edited.current = false;
      setNote("Profile saved.");
    });
  };
  const changePassword = (e: Event) => {
    e.preventDefault();
    void run(async () => {
      await api.put("/api/v5/users/me/password", { current_password: current, new_password: next });
      setCurrent(""); setNext(""); setNote("Password changed; your other login sessions were signed out.");
      await load();
    });
  };
  const revoke = (s: AuthSession) => run(async () => { await api.del(`/api/v5/users/me/auth-sessions/${s.id}`); await load(); });

  return (
    <div class="grid">
      <Panel title="Profile">
        <form class="stack" onSubmit={saveProfile} aria-label="Profile">
          <p class="muted">{props.me?.email} · {props.me?.role}</p>
          <Field label="Display name" value={name} onInput={(v) => { edited.current = true; setName(v); }} required />
          <button type="submit" class="primary">Save profile</button>
        </form>
      </Panel>
      <Panel title="Password">
        <form class="stack" onSubmit={changePassword} aria-label="Change password">
          <Field label="Current password" type="password" value={current} onInput={setCurrent} autocomplete="current-password" required />
          <Field label="New password" type="password" value={next} onInput={setNext} autocomplete="new-password" required />
          <button type="submit" class="primary">Change password</button>
        </form>
      </Panel>
      <Panel title="Login sessions">
        <ul class="list">
          {logins.map((s) => (
            <li key={s.id}>
              <span>{s.user_agent ?? "unknown client"}{s.current && <strong> (this browser)</strong>}</span>
              <span class="muted small">since {when(s.created_at)}, last used {when(s.last_used_at)}</span>
              {!s.current && <button type="button" onClick={() => void revoke(s)}>Revoke</button>}
            </li>
          ))}
        </ul>
      </Panel>
      <SettingsPanel />
      <p class="muted" aria-live="polite">{note}</p>
      <ErrorText error={error} />
    </div>
  );
}

function SettingsPanel() {
  const [settings, setSettings] = useState<Record<string, unknown>>({});
  const [key, setKey] = useState("");
  const [value, setValue] = useState("");
  const [run, error] = useAction();
  const load = () => run(async () => setSettings(await api.get<Record<string, unknown>>("/api/v5/settings")));
  useEffect(() => void load(), []);
  const save = (e: Event) => {
    e.preventDefault();
    void run(async () => {
      let parsed: unknown;
      try { parsed = JSON.parse(value); } catch { parsed = value; }
      await api.put(`/api/v5/settings/${encodeURIComponent(key.trim())}`, { value: parsed });
      setKey(""); setValue("");
      await load();
    });
  };
  const remove = (k: string) => run(async () => { await api.del(`/api/v5/settings/${encodeURIComponent(k)}`); await load(); });
  return (
    <Panel title="Settings">
      <ul class="list">
        {Object.entries(settings).map(([k, v]) => (
          <li key={k}><code>{k}</code><code class="muted">{JSON.stringify(v)}</code>
            <button type="button" aria-label={`Delete setting ${k}`} onClick={() => void remove(k)}>Delete</button></li>
        ))}
      </ul>
      <form class="row" onSubmit={save} aria-label="Set a setting">
        <Field label="Key" value={key} onInput={setKey} required />
        <Field label="Value (JSON or text)" value={value} onInput={setValue} required />
        <button type="submit">Set</button>
      </form>
      <ErrorText error={error} />
    </Panel>
  );
}
