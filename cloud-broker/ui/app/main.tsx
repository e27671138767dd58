import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, getToken, setToken, whenSignedOut } from './api';
import { DevicePage } from './device';
import { FleetList } from './fleet';
import { live, useLiveState } from './live';
import { ModelsPage } from './models';
import { extraPages, extraNav } from './pages';
import { href, useRoute } from './route';
import { SignIn } from './signin';
import type { WhoamiAnswer } from './types';

/** The page: sign-in, then the header, navigation and the view the URL's hash names. */
function App() {
  const [who, setWho] = useState<WhoamiAnswer | null>(null);
  const [checking, setChecking] = useState(getToken() !== null);
  useEffect(() => {
    const off = whenSignedOut(() => signOut());
    if (getToken())
      api<WhoamiAnswer>('/v1/whoami')
        .then(setWho)
        .catch(() => setToken(null))
        .finally(() => setChecking(false));
    return off;
  }, []);
  useEffect(() => {
    if (who?.kind === 'admin') live.start();
    return () => live.stop();
  }, [who]);
  const signOut = (): void => {
    live.stop();
    setToken(null);
    setWho(null);
  };
  if (checking) return <p class="muted">Checking the saved sign-in…</p>;
  if (!who)
    return (
      <SignIn
        onSignedIn={(token, w) => {
          setToken(token);
          setWho(w);
        }}
      />
    );
  return <Shell who={who} onSignOut={signOut} />;
}

function Shell({ who, onSignOut }: { who: WhoamiAnswer; onSignOut: () => void }) {
  const route = useRoute();
  const admin = who.kind === 'admin';
  const [view, ...rest] = admin ? route.path : ['models'];
  const state = useLiveState();
  const nav: [string, string][] = admin
    ? [['fleet', 'Fleet'], ['models', 'Models'], ...extraNav]
    : [['models', 'Models']];
  useEffect(() => {
    const name = nav.find(([k]) => k === view)?.[1] ?? (view === 'devices' ? rest[0] : 'Outpost');
    document.title = `${name} · Outpost`;
  }, [view, rest[0]]);
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <span class="brand">Outpost</span>
        <nav aria-label="Main">
          <ul>
            {nav.map(([k, label]) => (
              <li>
                <a
                  href={href([k])}
                  aria-current={view === k || (k === 'fleet' && view === 'devices') ? 'page' : undefined}
                >
                  {label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <span class="who">
          {admin ? (
            <span class={`live live-${state}`} role="status">
              {state === 'live' ? 'Live' : state === 'polling' ? 'Polling' : 'Connecting'}
            </span>
          ) : null}
          <span>
            {who.user} ({who.kind})
          </span>
          <button type="button" class="secondary" onClick={onSignOut}>
            Sign out
          </button>
        </span>
      </header>
      <main id="main" tabIndex={-1}>
        {!admin ? (
          <p class="note">
            The fleet, rollouts and audit views need the admin token; a user token shows the models it may read.
          </p>
        ) : null}
        {view === 'fleet' ? <FleetList route={route} /> : null}
        {view === 'devices' && rest[0] ? <DevicePage id={rest[0]} /> : null}
        {view === 'models' ? <ModelsPage admin={admin} /> : null}
        {extraPages(view, rest, route)}
      </main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
