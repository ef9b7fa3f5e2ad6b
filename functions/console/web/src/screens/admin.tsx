// Tenant administration (owner/admin): users and roles, invites, the audit log.
import { useEffect, useState } from "preact/hooks";
import * as api from "../api";
import { ErrorText, Panel, useAction, when } from "../ui";

const ROLES = ["owner", "admin", "member", "viewer"];
interface AuditEvent { id: string; type: string; time: string; actor_id: string | null; outcome: string; reason?: string | null; ip?: string | null }
interface Invite { invite_token: string; role: string; expires_at: string }

export function AdminScreen(props: { me: api.User | null }) {
  const [users, setUsers] = useState<api.User[]>([]);
  const [audit, setAudit] = useState<AuditEvent[]>([]);
  const [auditCursor, setAuditCursor] = useState<string | null>(null);
  const [role, setRole] = useState("member");
  const [invite, setInvite] = useState<Invite | null>(null);
  const [run, error] = useAction();

  const loadUsers = () => run(async () => setUsers(await api.all<api.User>("/api/v5/tenant/users")));
  const loadAudit = (cursor: string | null) => run(async () => {
    const p = await api.get<api.Page<AuditEvent>>(`/api/v5/audit?limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    setAudit((a) => (cursor ? [...a, ...p.items] : p.items));
    setAuditCursor(p.next_cursor);
  });
  useEffect(() => { void loadUsers(); void loadAudit(null); }, []);

  const setUserRole = (u: api.User, next: string) => run(async () => { await api.patch(`/api/v5/tenant/users/${u.id}`, { role: next }); await loadUsers(); });
  const disable = (u: api.User) => run(async () => {
    if (!confirm(`Disable ${u.email}? Their login sessions end at once.`)) return;
    await api.del(`/api/v5/tenant/users/${u.id}`);
    await loadUsers();
  });
  const makeInvite = (e: Event) => {
    e.preventDefault();
    void run(async () => setInvite(await api.post<Invite>("/api/v5/tenant/invites", { role })));
  };

  return (
    <div class="grid">
      <Panel title="Users">
        <ul class="list">
          {users.map((u) => (
            <li key={u.id}>
              <span>{u.name} <span class="muted">{u.email}</span></span>
              <select aria-label={`Role of ${u.email}`} value={u.role} disabled={u.id === props.me?.id}
                onChange={(e) => void setUserRole(u, (e.currentTarget as HTMLSelectElement).value)}>
                {ROLES.map((r) => <option key={r} value={r}>{r}</option>)}
              </select>
              {u.id !== props.me?.id && <button type="button" class="danger" onClick={() => void disable(u)}>Disable</button>}
            </li>
          ))}
        </ul>
      </Panel>
      <Panel title="Invites">
        <form class="row" onSubmit={makeInvite} aria-label="Invite">
          <label class="field inline"><span>Invite role</span>
            <select value={role} onChange={(e) => setRole((e.currentTarget as HTMLSelectElement).value)}>
              {ROLES.filter((r) => r !== "owner").map((r) => <option key={r} value={r}>{r}</option>)}
            </select>
          </label>
          <button type="submit" class="primary">Create invite</button>
        </form>
        {invite && <p>Invite code ({invite.role}, until {when(invite.expires_at)}): <code class="secret">{invite.invite_token}</code></p>}
      </Panel>
      <Panel title="Audit log" wide>
        <table class="audit">
          <thead><tr><th>When</th><th>Event</th><th>Outcome</th><th>Actor</th><th>IP</th></tr></thead>
          <tbody>
            {audit.map((a) => (
              <tr key={a.id}>
                <td>{when(a.time)}</td><td>{a.type}</td><td>{a.outcome}{a.reason ? ` (${a.reason})` : ""}</td>
                <td>{users.find((u) => u.id === a.actor_id)?.email ?? a.actor_id ?? ""}</td><td class="muted small">{a.ip ?? ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {auditCursor && <button type="button" onClick={() => void loadAudit(auditCursor)}>Older events</button>}
      </Panel>
      <ErrorText error={error} />
    </div>
  );
}
