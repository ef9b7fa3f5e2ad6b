// The workspace terminal (loaded on first use): xterm.js over the relay's WebSocket, with a fresh
// single-use ticket as the subprotocol `coditect.ticket.<t>` (never in the URL). Keystrokes go as
// binary frames (typed into the PTY); resizes as the text control message of the workspace program.
// Close 4401 (grant revoked) → the login screen when the login session is gone; 1012/4503 (relay restarting) → reconnect
// with backoff; anything else leaves a note.
import { Terminal } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import "@xterm/xterm/css/xterm.css";
import * as api from "./api";

const RECONNECT_CODES = new Set([1012, 4503]);
const MAX_BACKOFF_MS = 10_000;

export function openTerminal(host: HTMLElement, workspaceId: string, note: (text: string) => void): () => void {
  const term = new Terminal({
    cursorBlink: true,
    fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace",
    fontSize: 13,
    scrollback: 2000,
    theme: { background: "#0f172a", foreground: "#e2e8f0" },
  });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(host);
  fit.fit();
  const encoder = new TextEncoder();
  let socket: WebSocket | null = null;
  let closed = false;
  let attempt = 0;
  let retry: number | undefined;

  const sendSize = () => {
    if (socket?.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "resize", cols: term.cols, rows: term.rows }));
  };
  const input = term.onData((data) => {
    if (socket?.readyState === WebSocket.OPEN) socket.send(encoder.encode(data));
  });
  const resized = term.onResize(sendSize);
  const observer = new ResizeObserver(() => fit.fit());
  observer.observe(host);

  const connect = async () => {
    let ticket: string;
    try {
      ticket = (await api.post<{ ticket: string }>(`/api/v5/workspaces/${workspaceId}/tickets`)).ticket;
    } catch (e) {
      note(`Cannot open the terminal: ${e instanceof Error ? e.message : e}`);
      return;
    }
    if (closed) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/workspaces/${workspaceId}/terminal`, [`coditect.ticket.${ticket}`, "coditect.relay"]);
    ws.binaryType = "arraybuffer";
    socket = ws;
    ws.onopen = () => {
      attempt = 0;
      note("Connected.");
      sendSize();
      term.focus();
    };
    ws.onmessage = (event) => {
      term.write(typeof event.data === "string" ? event.data : new Uint8Array(event.data as ArrayBuffer));
    };
    ws.onclose = (event) => {
      if (closed) return;
      if (event.code === 4401) {
        // The relay revoked the grant: the login session ended (→ the login screen), or only the
        // workspace stopped. One API call tells which: a revoked login session answers 401.
        note("The relay closed the terminal (access revoked).");
        void api.get("/api/v5/users/me").catch((e) => { if (e instanceof api.ApiError && e.status === 401) api.expired(); });
      } else if (RECONNECT_CODES.has(event.code)) {
        const delay = Math.min(MAX_BACKOFF_MS, 250 * 2 ** attempt++) * (0.5 + Math.random() / 2);
        note(`The relay is restarting; reconnecting in ${Math.round(delay / 100) / 10} s…`);
        retry = window.setTimeout(() => void connect(), delay);
      } else {
        note(`Disconnected (${event.code}${event.reason ? `: ${event.reason}` : ""}).`);
      }
    };
  };
  void connect();

  return () => {
    closed = true;
    window.clearTimeout(retry);
    observer.disconnect();
    input.dispose();
    resized.dispose();
    socket?.close(1000);
    term.dispose();
  };
}
