import { useState, type FormEvent, type ReactNode } from "react";

import { useAuth } from "../auth";
import { ErrorMessage } from "../components/States";

export function SignIn(): ReactNode {
  const { signIn, signedOutReason } = useAuth();
  const [key, setKey] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (!key.trim()) {
      setError(new Error("Enter an API key."));
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await signIn(key);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="signin">
      <form className="card narrow" onSubmit={submit} aria-labelledby="signin-title">
        <h1 id="signin-title">Expunge</h1>
        <p className="muted">Sign in with an API key. It is kept only for this browser tab's session.</p>
        {signedOutReason && <p className="notice" role="status">{signedOutReason}</p>}
        <label htmlFor="api-key" className="label">
          API key
        </label>
        <input
          id="api-key"
          type="password"
          autoComplete="off"
          spellCheck={false}
          placeholder="exp_…"
          value={key}
          onChange={(e) => setKey(e.target.value)}
          autoFocus
        />
        {error !== null && <ErrorMessage error={error} title="Could not sign in" />}
        <div className="actions">
          <button type="submit" className="primary" disabled={busy}>
            {busy ? "Checking…" : "Sign in"}
          </button>
        </div>
      </form>
    </main>
  );
}
