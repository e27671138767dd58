import { OutpostError } from '../../protocol/errors/index.js';
import { formatModelId, parseModelId, parseModelRef } from '../../protocol/ids.js';
import type { Db } from '../db/open.js';
import { appModels, latestVersion, versionExists } from './catalog-read.js';

/** What a deploy names: one model (`owner/name[@version]`, latest when omitted) or an app's model list. */
export type DeploySpec = { model: string } | { app: string };

/** One model version of a deployment, resolved against the catalog. */
export interface DeployItem {
  model: string;
  version: number;
  app: string | null;
}

/** The model versions a deploy spec names, checked against the catalog. */
export function resolveDeploy(db: Db, spec: DeploySpec): DeployItem[] {
  const items: DeployItem[] = [];
  if ('app' in spec) {
    const app = formatModelId(parseModelId(spec.app, 'app'));
    const models = appModels(db, app);
    // An empty list would deploy nothing yet answer success: refuse it like a missing one.
    if (!models || Object.keys(models).length === 0)
      throw new OutpostError(
        'DEPLOY_VERSION_NOT_FOUND',
        `app ${app} has ${models ? 'an empty' : 'no'} model list in the catalog; run \`outpost app models add\` in the app folder first`,
        { app },
      );
    for (const [model, version] of Object.entries(models)) items.push({ model, version, app });
  } else {
    const ref = parseModelRef(spec.model);
    const model = formatModelId(ref);
    const version = ref.version ?? latestVersion(db, model);
    if (version === null)
      throw new OutpostError(
        'DEPLOY_VERSION_NOT_FOUND',
        `model ${model} has no published version; publish it with \`outpost model publish\``,
        { model },
      );
    items.push({ model, version, app: null });
  }
  for (const it of items) {
    if (!versionExists(db, it.model, it.version)) {
      throw new OutpostError(
        'DEPLOY_VERSION_NOT_FOUND',
        `${it.model}@${it.version} is not in the catalog; see \`outpost model versions ${it.model}\``,
        { model: it.model, version: it.version },
      );
    }
  }
  return items;
}
