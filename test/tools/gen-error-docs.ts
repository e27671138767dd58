// Regenerates docs/errors.md from the catalog (npm run docs:errors).
import { writeFileSync } from 'node:fs';
import { renderErrorDocs } from '../../protocol/errors/render-docs.js';

writeFileSync(new URL('../../docs/errors.md', import.meta.url), renderErrorDocs());
