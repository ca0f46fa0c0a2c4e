import type { Router } from '../../../lib/http/router';
import { PushAccess } from '../../../wire/object-storage';
import { principalOf } from '../auth/principal';
import type { ObjectStorage } from './service';

/** Credentials for the SDK's uploads of build contexts (`Image.addLocalFile/addLocalDir`), under the API base path. */
export function registerObjectStorageRoutes(router: Router, storage: ObjectStorage): void {
  router.route(
    {
      method: 'get',
      path: '/object-storage/push-access',
      tag: 'object-storage',
      summary: "S3 credentials, valid for an hour, for uploading this API key's build contexts to the server's object storage (the SDK does this for addLocalFile/addLocalDir)",
      response: PushAccess,
    },
    ({ c }) => storage.pushAccess(principalOf(c)),
  );
}
