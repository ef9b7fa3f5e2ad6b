// A session's files: the tree (new file, new folder, rename/move, delete, upload, download), the
// editor (Save = PUT with If-Match; a 412 shows the conflict and lets the user choose) and the
// selected file's versions with restore.
import { useEffect, useRef, useState } from "preact/hooks";
import * as api from "../api";
import type { Editor } from "../editor";
import { ErrorText, Field, message, useAction, when } from "../ui";

const TEXT_LIMIT = 2 * 1024 * 1024; // larger files are offered for download, not opened

interface Opened { path: string; etag: string; binary: boolean; size: number }
interface Version { version: number; size: number; etag: string; created_at: string }

/** The file named in the hash (`#/s/<id>/f/<path>`): a reload reopens it. */
function fileInHash(): string | null {
  const m = location.hash.match(/^#\/s\/[^/]+\/f\/(.+)$/);
  return m ? decodeURIComponent(m[1]) : null;
}

export function FilesPane(props: { sessionId: string }) {
  const [files, setFiles] = useState<api.FileEntry[] | null>(null);
  const [selected, setSelectedState] = useState<string | null>(fileInHash);
  const setSelected = (path: string | null) => {
    setSelectedState(path);
    // replaceState: no hashchange, no history entry per click
    history.replaceState(null, "", `#/s/${props.sessionId}${path ? `/f/${encodeURIComponent(path)}` : ""}`);
  };
  const [form, setForm] = useState<"file" | "folder" | "move" | null>(null);
  const [name, setName] = useState("");
  const [run, error] = useAction();
  const upload = useRef<HTMLInputElement>(null);
  const sid = props.sessionId;

  const load = () => run(async () => setFiles(await api.all<api.FileEntry>(`/api/v5/sessions/${sid}/files?recursive=true`)));
  useEffect(() => void load(), [sid]);

  const entry = files?.find((f) => f.path === selected) ?? null;
  const dirOf = (p: string | null) => {
    const e = files?.find((f) => f.path === p);
    if (!e) return "";
    return e.type === "directory" ? `${e.path}/` : e.path.includes("/") ? e.path.slice(0, e.path.lastIndexOf("/") + 1) : "";
  };

  const submit = (e: Event) => {
    e.preventDefault();
    const target = name.trim().replace(/^\/+/, "");
    void run(async () => {
      if (form === "file") {
        const response = await api.raw(api.filePath(sid, target), { method: "PUT", headers: { "If-None-Match": "*", "Content-Type": "application/octet-stream" }, body: "" });
        if (!response.ok) throw new api.ApiError(response.status, (await response.json()).error?.code ?? "error", "Cannot create the file");
        setSelected(target);
      } else if (form === "folder") {
        await api.post(`/api/v5/sessions/${sid}/files:mkdir`, { path: target });
      } else if (form === "move" && selected) {
        await api.post(`/api/v5/sessions/${sid}/files:move`, { from: selected, to: target });
        setSelected(target);
      }
      setForm(null);
      setName("");
      await load();
    });
  };
  const open = (kind: "file" | "folder" | "move") => {
    setForm(form === kind ? null : kind);
    setName(kind === "move" ? selected ?? "" : dirOf(selected));
  };
  const remove = () => run(async () => {
    if (!entry || !confirm(`Delete ${entry.path}${entry.type === "directory" ? " and everything in it" : ""}?`)) return;
    await api.del(`${api.filePath(sid, entry.path)}${entry.type === "directory" ? "?recursive=true" : ""}`);
    setSelected(null);
    await load();
  });
  const uploadFiles = (list: FileList | null) => run(async () => {
    for (const file of Array.from(list ?? [])) {
      const response = await api.raw(api.filePath(sid, dirOf(selected) + file.name), { method: "PUT", body: file, headers: { "Content-Type": "application/octet-stream" } });
      if (!response.ok) throw new api.ApiError(response.status, (await response.json()).error?.code ?? "error", `Upload of ${file.name} failed`);
    }
    if (upload.current) upload.current.value = "";
    await load();
  });
  const download = () => run(async () => {
    if (!entry || entry.type !== "file") return;
    const response = await api.raw(api.filePath(sid, entry.path));
    if (!response.ok) throw new api.ApiError(response.status, "download_failed", "Download failed");
    const url = URL.createObjectURL(await response.blob());
    const a = document.createElement("a");
    a.href = url;
    a.download = entry.path.split("/").pop() ?? "file";
    a.click();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  });

  return (
    <div class="files">
      <aside class="tree-pane">
        <div class="toolbar">
          <button type="button" onClick={() => open("file")}>New file</button>
          <button type="button" onClick={() => open("folder")}>New folder</button>
          <label class="button">Upload<input ref={upload} type="file" multiple class="hidden-input" onChange={(e) => void uploadFiles((e.currentTarget as HTMLInputElement).files)} /></label>
        </div>
        {form && (
          <form class="stack" onSubmit={submit} aria-label={form === "file" ? "New file" : form === "folder" ? "New folder" : "Rename or move"}>
            {form === "file" && <Field label="File name" value={name} onInput={setName} required placeholder="src/main.py" />}
            {form === "folder" && <Field label="Folder name" value={name} onInput={setName} required />}
            {form === "move" && <Field label="New path" value={name} onInput={setName} required />}
            <div class="row">
              <button type="submit" class="primary">{form === "file" ? "Create" : form === "folder" ? "Create folder" : "Move"}</button>
              <button type="button" onClick={() => setForm(null)}>Cancel</button>
            </div>
          </form>
        )}
        {files === null ? <p class="muted">Loading…</p> : files.length === 0 ? <p class="empty">No files yet.</p> : (
          <Tree files={files} selected={selected} onSelect={setSelected} />
        )}
        {entry && (
          <div class="toolbar">
            <button type="button" onClick={() => open("move")}>Rename/move</button>
            {entry.type === "file" && <button type="button" onClick={() => void download()}>Download</button>}
            <button type="button" class="danger" onClick={() => void remove()}>Delete</button>
          </div>
        )}
        <ErrorText error={error} />
      </aside>
      <div class="editor-pane">
        {entry?.type === "file" ? <FileView key={entry.path} sessionId={sid} path={entry.path} onSaved={() => void load()} />
          : <div class="placeholder" role="region" aria-label="Editor"><p class="muted">Select a file to edit it.</p></div>}
      </div>
    </div>
  );
}

function Tree(props: { files: api.FileEntry[]; selected: string | null; onSelect: (path: string) => void }) {
  const sorted = [...props.files].sort((a, b) => a.path.localeCompare(b.path));
  const children = (dir: string) => sorted.filter((f) => {
    const parent = f.path.includes("/") ? f.path.slice(0, f.path.lastIndexOf("/")) : "";
    return parent === dir;
  }).sort((a, b) => (a.type === b.type ? a.path.localeCompare(b.path) : a.type === "directory" ? -1 : 1));
  const item = (f: api.FileEntry, level: number) => {
    const base = f.path.split("/").pop() ?? f.path;
    const kids = f.type === "directory" ? children(f.path) : [];
    return (
      <li key={f.path} role="treeitem" aria-label={base} aria-level={level} aria-selected={props.selected === f.path}
        aria-expanded={f.type === "directory" ? true : undefined} tabIndex={0}
        onClick={(e) => { e.stopPropagation(); props.onSelect(f.path); }}
        onKeyDown={(e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); e.stopPropagation(); props.onSelect(f.path); } }}>
        <span class={`node ${f.type}`}>{base}</span>
        {kids.length > 0 && <ul role="group">{kids.map((k) => item(k, level + 1))}</ul>}
      </li>
    );
  };
  return <ul class="tree" role="tree" aria-label="Files">{children("").map((f) => item(f, 1))}</ul>;
}

function FileView(props: { sessionId: string; path: string; onSaved: () => void }) {
  const host = useRef<HTMLDivElement>(null);
  const editor = useRef<Editor | null>(null);
  // A click on the editor's region while its code is still loading: focus it once it is there
  // (CodeMirror handles the clicks itself after that).
  const wantFocus = useRef(false);
  const [opened, setOpened] = useState<Opened | null>(null);
  const [dirty, setDirty] = useState(false);
  const [conflict, setConflict] = useState(false);
  const [status, setStatus] = useState("");
  const [versionsKey, setVersionsKey] = useState(0);
  const [run, error] = useAction();
  const url = api.filePath(props.sessionId, props.path);

  const fetchFile = async (): Promise<{ text: string; meta: Opened }> => {
    const response = await api.raw(url);
    if (!response.ok) throw new api.ApiError(response.status, "read_failed", `Cannot read ${props.path}`);
    const size = Number(response.headers.get("Content-Length") ?? "0");
    const bytes = new Uint8Array(await response.arrayBuffer());
    let text = "";
    let binary = size > TEXT_LIMIT || bytes.includes(0);
    if (!binary) {
      try { text = new TextDecoder("utf-8", { fatal: true }).decode(bytes); } catch { binary = true; }
    }
    return { text, meta: { path: props.path, etag: response.headers.get("ETag") ?? "", binary, size: bytes.length } };
  };

  useEffect(() => {
    let alive = true;
    wantFocus.current = false;
    void run(async () => {
      const [{ text, meta }, mod] = await Promise.all([fetchFile(), import("../editor")]);
      if (!alive) return;
      setOpened(meta);
      if (!meta.binary && host.current) {
        editor.current = await mod.createEditor(host.current, text, props.path, () => setDirty(true));
        if (wantFocus.current) editor.current.focus();
      }
    });
    return () => { alive = false; editor.current?.destroy(); editor.current = null; };
  }, [url]);

  const write = async (ifMatch: string | null) => {
    if (!editor.current || !opened) return;
    const headers: Record<string, string> = { "Content-Type": "application/octet-stream" };
    if (ifMatch) headers["If-Match"] = ifMatch;
    const response = await api.raw(url, { method: "PUT", headers, body: editor.current.text() });
    if (response.status === 412) { setConflict(true); return; }
    const body = await response.json().catch(() => null);
    if (!response.ok) throw new api.ApiError(response.status, body?.error?.code ?? "error", body?.error?.message ?? "Save failed");
    setOpened({ ...opened, etag: response.headers.get("ETag") ?? body.data.etag });
    setDirty(false);
    setConflict(false);
    setStatus(`Saved version ${body.data.version}.`);
    setVersionsKey((k) => k + 1);
    props.onSaved();
  };
  const save = () => run(() => write(opened?.etag ?? null));
  const overwrite = () => run(async () => {
    const head = await api.raw(url, { method: "HEAD" });
    await write(head.ok ? head.headers.get("ETag") : null);
  });
  const reload = () => run(async () => {
    const { text, meta } = await fetchFile();
    setOpened(meta);
    editor.current?.replace(text);
    setDirty(false);
    setConflict(false);
    setStatus("Reloaded the current version.");
    setVersionsKey((k) => k + 1);
  });

  return (
    <div class="file-view">
      <div class="toolbar">
        <strong class="path">{props.path}</strong>{dirty && <span class="badge">modified</span>}
        <span class="spacer" />
        <span class="muted small" aria-live="polite">{status}</span>
        <button type="button" class="primary" onClick={() => void save()} disabled={!opened || opened.binary}>Save</button>
      </div>
      {conflict && (
        <div class="conflict" role="alert">
          <p><strong>Conflict:</strong> this file was changed elsewhere since you opened it. Your edits are not saved.</p>
          <button type="button" class="danger" onClick={() => void overwrite()}>Overwrite with my version</button>
          <button type="button" onClick={() => void reload()}>Reload theirs</button>
        </div>
      )}
      <ErrorText error={error} />
      {opened?.binary && <p class="muted">Binary or large file ({opened.size} bytes): use Download.</p>}
      <div class="editor" role="region" aria-label="Editor" ref={host}
        onMouseDown={() => { if (!editor.current) wantFocus.current = true; }} />
      <Versions key={versionsKey} sessionId={props.sessionId} path={props.path} onRestored={() => void reload()} />
    </div>
  );
}

function Versions(props: { sessionId: string; path: string; onRestored: () => void }) {
  const [versions, setVersions] = useState<Version[] | null>(null);
  const [err, setErr] = useState<string | null>(null);
  useEffect(() => {
    api.get<api.Page<Version>>(`/api/v5/sessions/${props.sessionId}/files:versions?path=${encodeURIComponent(props.path)}&limit=20`)
      .then((p) => setVersions(p.items), (e) => setErr(message(e)));
  }, [props.path]);
  const restore = (version: number) => {
    api.post(`/api/v5/sessions/${props.sessionId}/files:restore`, { path: props.path, version })
      .then(props.onRestored, (e) => setErr(message(e)));
  };
  return (
    <details class="versions">
      <summary>Versions{versions ? ` (${versions.length})` : ""}</summary>
      <ErrorText error={err} />
      <ul class="list">
        {(versions ?? []).map((v, i) => (
          <li key={v.version}>
            <span>v{v.version} · {v.size} bytes · {when(v.created_at)}</span>
            {i > 0 && <button type="button" onClick={() => restore(v.version)} aria-label={`Restore version ${v.version}`}>Restore</button>}
          </li>
        ))}
      </ul>
    </details>
  );
}
