// A session's conversations and their messages (post, load further pages). Message content is
// shown as text only.
import { useEffect, useState } from "preact/hooks";
import * as api from "../api";
import { ErrorText, Field, useAction, when } from "../ui";

interface Conversation { id: string; title: string; agent: string | null; message_count: number; updated_at: string }
interface Message { id: string; seq: number; role: string; content: string; created_at: string }

export function ConversationsPane(props: { sessionId: string }) {
  const [items, setItems] = useState<Conversation[] | null>(null);
  const [current, setCurrent] = useState<Conversation | null>(null);
  const [title, setTitle] = useState("");
  const [run, error] = useAction();
  const load = () => run(async () => setItems(await api.all<Conversation>(`/api/v5/sessions/${props.sessionId}/conversations`)));
  useEffect(() => void load(), [props.sessionId]);

  const create = (e: Event) => {
    e.preventDefault();
    void run(async () => {
      const made = await api.post<Conversation>(`/api/v5/sessions/${props.sessionId}/conversations`, { title: title.trim() });
      setTitle("");
      setCurrent(made);
      await load();
    });
  };
  const remove = (c: Conversation) => run(async () => {
    if (!confirm(`Delete the conversation "${c.title}"?`)) return;
    await api.del(`/api/v5/conversations/${c.id}`);
    if (current?.id === c.id) setCurrent(null);
    await load();
  });

  return (
    <div class="conversations">
      <aside class="tree-pane">
        <form class="stack" onSubmit={create} aria-label="New conversation">
          <Field label="Conversation title" value={title} onInput={setTitle} required />
          <button type="submit">Start conversation</button>
        </form>
        <ErrorText error={error} />
        <ul class="list">
          {(items ?? []).map((c) => (
            <li key={c.id} class={current?.id === c.id ? "current" : ""}>
              <button type="button" class="link" onClick={() => setCurrent(c)}>{c.title}</button>
              <span class="muted small">{c.message_count} messages</span>
              <button type="button" class="danger small" aria-label={`Delete conversation ${c.title}`} onClick={() => void remove(c)}>×</button>
            </li>
          ))}
        </ul>
        {items?.length === 0 && <p class="empty">No conversations yet.</p>}
      </aside>
      <div class="editor-pane">
        {current ? <Messages key={current.id} conversation={current} onPosted={() => void load()} /> : <p class="muted">Select or start a conversation.</p>}
      </div>
    </div>
  );
}

function Messages(props: { conversation: Conversation; onPosted: () => void }) {
  const [messages, setMessages] = useState<Message[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [text, setText] = useState("");
  const [role, setRole] = useState("user");
  const [run, error] = useAction();
  const base = `/api/v5/conversations/${props.conversation.id}/messages`;

  const page = (after: string | null) => run(async () => {
    const p = await api.get<api.Page<Message>>(`${base}?limit=50${after ? `&cursor=${encodeURIComponent(after)}` : ""}`);
    setMessages((m) => (after ? [...m, ...p.items] : p.items));
    setCursor(p.next_cursor);
  });
  useEffect(() => void page(null), [base]);

  const send = (e: Event) => {
    e.preventDefault();
    void run(async () => {
      const m = await api.post<Message>(base, { role, content: text });
      if (!cursor) setMessages((list) => [...list, m]);
      setText("");
      props.onPosted();
    });
  };

  return (
    <div class="messages">
      <h3>{props.conversation.title}</h3>
      <ol class="message-list">
        {messages.map((m) => (
          <li key={m.id} class={`message ${m.role}`}>
            <span class="muted small">{m.role} · {when(m.created_at)}</span>
            <pre>{m.content}</pre>
          </li>
        ))}
      </ol>
      {cursor && <button type="button" onClick={() => void page(cursor)}>Load more messages</button>}
      <ErrorText error={error} />
      <form class="stack" onSubmit={send} aria-label="New message">
        <label class="field"><span>Message</span>
          <textarea rows={3} value={text} required onInput={(e) => setText((e.currentTarget as HTMLTextAreaElement).value)} />
        </label>
        <div class="row">
          <label class="field inline"><span>Role</span>
            <select value={role} onChange={(e) => setRole((e.currentTarget as HTMLSelectElement).value)}>
              {["user", "assistant", "system", "tool"].map((r) => <option key={r} value={r}>{r}</option>)}
            </select>
          </label>
          <button type="submit" class="primary">Post message</button>
        </div>
      </form>
    </div>
  );
}
