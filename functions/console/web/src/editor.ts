// The editor (loaded on first use): CodeMirror 6 with syntax by file extension. File content is
// only ever text in the editor's model, never HTML.
import { EditorState, type Extension } from "@codemirror/state";
import { EditorView, drawSelection, highlightActiveLine, keymap, lineNumbers } from "@codemirror/view";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { bracketMatching, defaultHighlightStyle, indentOnInput, syntaxHighlighting } from "@codemirror/language";
import { highlightSelectionMatches, searchKeymap } from "@codemirror/search";

export interface Editor {
  text(): string;
  replace(text: string): void;
  focus(): void;
  destroy(): void;
}

async function language(name: string): Promise<Extension> {
  const ext = name.split(".").pop()?.toLowerCase() ?? "";
  switch (ext) {
    case "js": case "mjs": case "cjs": case "jsx":
      return (await import("@codemirror/lang-javascript")).javascript({ jsx: ext === "jsx" });
    case "ts": case "tsx": case "mts":
      return (await import("@codemirror/lang-javascript")).javascript({ typescript: true, jsx: ext === "tsx" });
    case "py": return (await import("@codemirror/lang-python")).python();
    case "json": return (await import("@codemirror/lang-json")).json();
    case "md": case "markdown": return (await import("@codemirror/lang-markdown")).markdown();
    case "html": case "htm": return (await import("@codemirror/lang-html")).html();
    case "css": return (await import("@codemirror/lang-css")).css();
    default: return [];
  }
}

export async function createEditor(parent: HTMLElement, text: string, fileName: string, onChange: () => void): Promise<Editor> {
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc: text,
      extensions: [
        lineNumbers(), history(), drawSelection(), highlightActiveLine(), indentOnInput(), bracketMatching(),
        highlightSelectionMatches(), syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
        keymap.of([...defaultKeymap, ...historyKeymap, ...searchKeymap, indentWithTab]),
        await language(fileName),
        EditorView.updateListener.of((u) => { if (u.docChanged) onChange(); }),
        EditorView.contentAttributes.of({ "aria-label": `Contents of ${fileName}` }),
      ],
    }),
  });
  return {
    text: () => view.state.doc.toString(),
    replace: (next) => view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: next } }),
    focus: () => view.focus(),
    destroy: () => view.destroy(),
  };
}
