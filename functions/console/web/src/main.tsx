// The console's entry: the shell (header, log out) and the hash routes. Signed-out visitors see
// the login screen; a reload restores the login through the refresh cookie.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import * as api from "./api";
import { go, useHash } from "./ui";
import { AuthScreen } from "./screens/auth";
import { SessionsScreen } from "./screens/sessions";
import { SessionScreen } from "./screens/session";
import { AccountScreen } from "./screens/account";
import { AdminScreen } from "./screens/admin";
import "./style.css";

function App() {
  const [state, setState] = useState<"starting" | "in" | "out">("starting");
  const [me, setMe] = useState<api.User | null>(null);
  const hash = useHash();

  useEffect(() => {
    api.whenSignedOut(() => {
      setMe(null);
      setState("out");
    });
    if (!api.maybeSignedIn()) setState("out");
    else void api.refresh().then((ok) => setState(ok ? "in" : "out"));
  }, []);
  useEffect(() => {
    if (state === "in" && me === null) void api.get<api.User>("/api/v5/users/me").then(setMe, () => {});
  }, [state, me]);

  if (state === "starting") return <main class="center"><p aria-busy="true">Loading…</p></main>;
  if (state === "out") {
    return <AuthScreen register={hash === "#/register"} onIn={(user) => { setMe(user); setState("in"); if (hash.startsWith("#/register") || hash === "#/login") go("#/"); }} />;
  }
  const [, route, id] = hash.split("/");
  const admin = me?.role === "owner" || me?.role === "admin";
  return (
    <div class="shell">
      <header class="top">
        <a class="brand" href="#/">Coditect</a>
        <nav aria-label="Main">
          <a href="#/" aria-current={!route ? "page" : undefined}>Sessions</a>
          <a href="#/account" aria-current={route === "account" ? "page" : undefined}>Account</a>
          {admin && <a href="#/admin" aria-current={route === "admin" ? "page" : undefined}>Tenant</a>}
        </nav>
        <span class="who">{me ? `${me.name} · ${me.role}` : ""}</span>
        <button type="button" onClick={() => void api.logout()}>Log out</button>
      </header>
      <main class="content">
        {route === "s" && id ? <SessionScreen key={id} id={id} />
          : route === "account" ? <AccountScreen me={me} onMe={setMe} />
          : route === "admin" && admin ? <AdminScreen me={me} />
          : <SessionsScreen />}
      </main>
    </div>
  );
}

render(<App />, document.getElementById("app")!);
