import type { ModelManifest, VersionFile } from '../../protocol/manifest-types.js';

/**
 * The JSON shapes of the cloud's HTTP API (docs/http-api.md). The server builds exactly these
 * and the client returns them, so the two cannot drift apart silently.
 */

export type TokenKind = 'admin' | 'user' | 'device';

export interface HealthAnswer {
  ok: true;
  version: string;
}

export interface WhoamiAnswer {
  user: string;
  kind: TokenKind;
}

export interface CreatedUser {
  name: string;
  token: string;
}

export interface BlobAnswer {
  sha256: string;
  size: number;
}

/** Body of `POST /v1/models/:owner/:name/versions`. */
export interface CreateVersionBody {
  manifest: ModelManifest | Record<string, unknown>;
  files: VersionFile[];
  force?: boolean;
}

export interface CreatedVersion {
  id: string;
  version: number;
  /** true when the content equals the latest version and no version was created. */
  unchanged?: boolean;
}

export interface ModelSummary {
  id: string;
  owner: string;
  name: string;
  public: boolean;
  latest: number;
  updatedAt: string;
}

export interface VersionSummary {
  version: number;
  createdAt: string;
  /** sha256 of the canonical {manifest, files}: equal digests mean equal content. */
  digest: string;
}

export interface ModelDetail extends ModelSummary {
  versions: VersionSummary[];
  /** The manifest of the latest version. */
  manifest: Record<string, unknown>;
}

export interface VersionDetail {
  id: string;
  version: number;
  manifest: Record<string, unknown>;
  files: VersionFile[];
  createdAt: string;
  digest: string;
}

/** `{"owner/name": version}`, as in alwaysai.app.json. */
export type AppModels = Record<string, number>;

export interface AppDetail {
  id: string;
  models: AppModels;
  updatedAt: string;
}
