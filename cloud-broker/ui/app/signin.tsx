import { useState } from 'preact/hooks';
import { api, ApiError } from './api';
import { ErrorNote } from './bits';
import type { WhoamiAnswer } from './types';

/** Sign-in with a user or admin token; checked with GET /v1/whoami before it is kept. */
export function SignIn({ onSignedIn }: { onSignedIn: (token: string, who: WhoamiAnswer) => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    const t = token.trim();
    if (!t) return;
    setBusy(true);
    try {
      const who = await api<WhoamiAnswer>('/v1/whoami', { token: t });
      if (who.kind === 'device')
        throw new ApiError(403, 'AUTH_FORBIDDEN', 'a device token cannot sign in here; use a user or admin token');
      onSignedIn(t, who);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return (
    <main id="main" class="signin">
      <form onSubmit={submit} aria-labelledby="signin-h">
        <h1 id="signin-h">Outpost</h1>
        <p>Sign in with a user or admin token. The admin token is in the cloud's data dir (admin.token).</p>
        <label for="token">Token</label>
        <input
          id="token"
          name="token"
          type="password"
          autocomplete="off"
          spellcheck={false}
          value={token}
          onInput={(e) => setToken((e.target as HTMLInputElement).value)}
          required
        />
        <button type="submit" disabled={busy}>
          Sign in
        </button>
        <ErrorNote error={error} />
        <p class="muted small">
          The token stays in this browser tab's session storage and is sent only in the Authorization header.
        </p>
      </form>
    </main>
  );
}
