import { useEffect, useState } from 'preact/hooks';
import { api } from './api';
import { ErrorNote } from './bits';
import { bytes, dateTime } from './format';
import { useLiveTick } from './live';
import { href } from './route';
import type { ModelView } from './types';

/** Models and their versions: files, size, who published each, and the devices running it. */
export function ModelsPage({ admin }: { admin: boolean }) {
  const [models, setModels] = useState<ModelView[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const tick = useLiveTick((c) => c.kinds.includes('reported'));
  useEffect(() => {
    const ac = new AbortController();
    api<{ models: ModelView[] }>('/v1/fleet/models', { signal: ac.signal })
      .then((d) => {
        setModels(d.models);
        setError(null);
      })
      .catch((e) => {
        if ((e as Error).name !== 'AbortError') setError(e);
      });
    return () => ac.abort();
  }, [tick]);
  return (
    <>
      <h1>Models</h1>
      <ErrorNote error={error} />
      {models === null ? (
        <p class="muted">Loading…</p>
      ) : models.length === 0 ? (
        <p class="empty">No model is published yet: run `outpost model publish` in a model folder.</p>
      ) : (
        models.map((m) => (
          <section class="card" aria-labelledby={`m-${m.id}`}>
            <div class="page-head">
              <h2 id={`m-${m.id}`}>
                {m.id} <span class="muted small">{m.framework ?? ''}</span>
                {m.public ? <span class="chip">public</span> : null}
              </h2>
              {admin ? (
                <a class="button" href={href(['deploy'], { model: m.id, version: m.latest })}>
                  Deploy {m.id}…
                </a>
              ) : null}
            </div>
            <table class="responsive">
              <thead>
                <tr>
                  <th scope="col">Version</th>
                  <th scope="col">Published</th>
                  <th scope="col">By</th>
                  <th scope="col">Files</th>
                  <th scope="col">Size</th>
                  {admin ? <th scope="col">Running on</th> : null}
                </tr>
              </thead>
              <tbody>
                {m.versions.map((v) => (
                  <tr>
                    <th scope="row" data-label="Version">
                      v{v.version}
                      {v.version === m.latest ? <span class="muted"> (latest)</span> : null}
                    </th>
                    <td data-label="Published">{dateTime(v.createdAt)}</td>
                    <td data-label="By">{v.publishedBy ?? <span class="muted">not recorded</span>}</td>
                    <td data-label="Files">
                      <details>
                        <summary>
                          {v.files.length} file{v.files.length === 1 ? '' : 's'}
                        </summary>
                        <ul class="files">
                          {v.files.map((f) => (
                            <li>
                              <code>{f.path}</code> {bytes(f.size)}
                            </li>
                          ))}
                        </ul>
                      </details>
                    </td>
                    <td data-label="Size">{bytes(v.size)}</td>
                    {admin ? (
                      <td data-label="Running on">
                        {v.running.count === 0 ? (
                          <span class="muted">no device</span>
                        ) : (
                          <>
                            <a href={href(['fleet'], { model: m.id })}>
                              {v.running.count} device{v.running.count === 1 ? '' : 's'}
                            </a>
                            :{' '}
                            {v.running.devices.map((d, i) => (
                              <>
                                {i ? ', ' : ''}
                                <a href={href(['devices', d])}>{d}</a>
                              </>
                            ))}
                            {v.running.count > v.running.devices.length ? ', …' : ''}
                          </>
                        )}
                      </td>
                    ) : null}
                  </tr>
                ))}
              </tbody>
            </table>
          </section>
        ))
      )}
    </>
  );
}
