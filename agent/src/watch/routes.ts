import { WatchersResponse, WatchQuery } from '../../../wire/watch';
import type { Router } from '../../../lib/http/router';
import { serveWatchChannel } from './channel';
import { createIgnoreMatcher } from './ignore';
import type { WatchService } from './service';

export function registerWatchRoutes(router: Router, watch: WatchService): void {
  const tag = 'watch';
  router.ws(
    {
      path: '/files/watch',
      tag,
      summary: 'Stream add/change/unlink/addDir/unlinkDir events of a file or folder',
      // The path is resolved while the query is parsed, which happens before the upgrade: a missing path is refused
      // with a 404 JSON error instead of an accepted socket that closes at once.
      // Ignore globs are compiled here too, so that one the watch could not use is refused before the upgrade (400).
      query: WatchQuery.transform((q) => {
        createIgnoreMatcher('/', q.ignore);
        return { ...q, path: watch.resolveExisting(q.path) };
      }),
    },
    ({ socket, query }) => serveWatchChannel(socket, watch, query as WatchQuery),
  );
  router.route(
    { method: 'get', path: '/files/watchers', tag, summary: 'Open file watches and their queues', response: WatchersResponse },
    () => ({ watchers: watch.list() }),
  );
}
