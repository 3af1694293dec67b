import type { IncomingMessage, ServerResponse } from 'node:http';
import { SwitchboardError } from '../protocol/index.js';
import type { HttpApiDeps } from './deps.js';
import { sendError } from './http-io.js';
import { playgroundEnabled } from './playground-access.js';
import { createPlaygroundApi } from './playground-api.js';

const PLAYGROUND_OFF = 'the playground is off (SWITCHBOARD_PLAYGROUND=off, or auto with a listener not on a loopback address)';

/**
 * The pages (issue 12): `GET /dashboard` (the page loads without the key; every data call it makes needs the bearer
 * key the operator types in), `GET /playground` when enabled, their assets under `/pages/`, and the playground's
 * loopback-only API under `/playground/api/`. Resolves false for a path that is none of these.
 */
export function createPageRoutes(deps: HttpApiDeps): (req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams) => Promise<boolean> {
  const playgroundApi = createPlaygroundApi(deps);
  const enabled = () => playgroundEnabled(deps.config.playground, deps.listenHost());

  const page = (req: IncomingMessage, res: ServerResponse, name: string): boolean => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendError(res, new SwitchboardError('method_not_allowed'), { allow: 'GET, HEAD' });
      return true;
    }
    if (!deps.pages.serve(res, name, req.method === 'HEAD')) throw new SwitchboardError('not_found');
    return true;
  };

  return async (req, res, path, query) => {
    if (path === '/dashboard' || path === '/dashboard/') return page(req, res, 'dashboard.html');
    if (path === '/playground' || path === '/playground/') {
      if (!enabled()) throw new SwitchboardError('not_found', PLAYGROUND_OFF);
      return page(req, res, 'playground.html');
    }
    if (path.startsWith('/pages/')) {
      const name = path.slice('/pages/'.length);
      if (name.startsWith('playground') && !enabled()) throw new SwitchboardError('not_found', PLAYGROUND_OFF);
      return page(req, res, name);
    }
    if (path.startsWith('/playground/api/')) {
      if (!enabled()) throw new SwitchboardError('not_found', PLAYGROUND_OFF);
      await playgroundApi(req, res, path.slice('/playground/api/'.length), query);
      return true;
    }
    return false;
  };
}
