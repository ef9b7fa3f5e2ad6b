// Create account and log in. Field labels and button names are fixed (automation relies on them).
import { useState } from "preact/hooks";
import * as api from "../api";
import { ErrorText, Field, useAction } from "../ui";

export function AuthScreen(props: { register: boolean; onIn: (user: api.User) => void }) {
  const [name, setName] = useState("");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [tenant, setTenant] = useState("");
  const [invite, setInvite] = useState("");
  const [run, error, busy] = useAction();

  const submit = (e: Event) => {
    e.preventDefault();
    void run(async () => {
      if (props.register) {
        const body: Record<string, string> = { name, email, password };
        if (tenant.trim()) body.tenant_name = tenant.trim();
        if (invite.trim()) body.invite_token = invite.trim();
        props.onIn(await api.register(body));
      } else {
        props.onIn(await api.login(email, password));
      }
    });
  };

  return (
    <main class="center">
      <form class="card auth" onSubmit={submit} aria-label={props.register ? "Create account" : "Log in"}>
        <h1>Coditect</h1>
        <p class="muted">{props.register ? "Create your account." : "Log in to your workspace sessions."}</p>
        {props.register && <Field label="Name" value={name} onInput={setName} autocomplete="name" required />}
        <Field label="Email" type="email" value={email} onInput={setEmail} autocomplete="email" required />
        <Field label="Password" type="password" value={password} onInput={setPassword}
          autocomplete={props.register ? "new-password" : "current-password"} required />
        {props.register && (
          <details>
            <summary>Organisation or invite (optional)</summary>
            <Field label="Organisation (optional)" value={tenant} onInput={setTenant} />
            <Field label="Invite code (optional)" value={invite} onInput={setInvite} />
          </details>
        )}
        <ErrorText error={error} />
        <button class="primary" type="submit" disabled={busy}>{props.register ? "Create account" : "Log in"}</button>
        {props.register
          ? <p class="muted">Already registered? <a href="#/login">Back to sign-in</a></p>
          : <p class="muted">New here? <a href="#/register">Create account</a></p>}
      </form>
    </main>
  );
}
