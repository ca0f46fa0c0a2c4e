import type { HttpBindings } from '@hono/node-server';
import {
  BulkDownloadRequest,
  BulkUploadResponse,
  DeleteQuery,
  FileInfo,
  FileInfoList,
  FolderQuery,
  ListQuery,
  MatchList,
  MoveQuery,
  PathQuery,
  PatternQuery,
  PermissionsQuery,
  ReplaceRequest,
  ReplaceResultList,
  SearchFilesResponse,
  UploadedFile,
} from '../../../wire/files';
import type { Router } from '../../../lib/http/router';
import { multipartForm, sendBulkDownload, sendWith, uploadSource } from './http';
import { rfc5987 } from './multipart';
import type { FilesService } from './service';

/** Header set when a find or search answer was cut at the result limit. */
const TRUNCATED_HEADER = 'X-Cove-Truncated';

export function registerFilesRoutes(router: Router, files: FilesService): void {
  const tag = 'files';

  router.route(
    { method: 'get', path: '/files', tag, summary: 'List a folder', query: ListQuery, response: FileInfoList },
    ({ query }) => files.list(query.path, query.depth),
  );
  router.route(
    { method: 'get', path: '/files/info', tag, summary: 'Metadata of a file or folder', query: PathQuery, response: FileInfo },
    ({ query }) => files.info(query.path),
  );
  router.route(
    { method: 'delete', path: '/files', tag, summary: 'Delete a file or folder', query: DeleteQuery, status: 204 },
    async ({ query }) => {
      await files.remove(query.path, query.recursive);
    },
  );
  router.route(
    { method: 'post', path: '/files/folder', tag, summary: 'Create a folder and its parents', query: FolderQuery, status: 204 },
    async ({ query }) => {
      await files.createFolder(query.path, query.mode);
    },
  );
  router.route(
    { method: 'post', path: '/files/move', tag, summary: 'Move or rename', query: MoveQuery, status: 204 },
    async ({ query }) => {
      await files.move(query.source, query.destination);
    },
  );
  router.route(
    { method: 'post', path: '/files/permissions', tag, summary: 'Set owner, group and mode', query: PermissionsQuery, status: 204 },
    async ({ query }) => {
      await files.setPermissions(query.path, query);
    },
  );

  router.route(
    { method: 'get', path: '/files/download', tag, summary: 'Download a file', query: PathQuery, rawResponse: 'application/octet-stream' },
    async ({ query, c }) => {
      const file = await files.download(query.path);
      return sendWith(
        c,
        {
          'Content-Type': 'application/octet-stream',
          'Content-Length': String(file.size),
          'Content-Disposition': `attachment; filename*=${rfc5987(file.name)}`,
        },
        (out) => file.writeTo(out),
      );
    },
  );
  router.route(
    {
      method: 'post',
      path: '/files/bulk-download',
      tag,
      summary: 'Download several files as multipart/form-data',
      body: BulkDownloadRequest,
      rawResponse: 'multipart/form-data',
    },
    ({ body, c }) => sendBulkDownload(c, files.bulkDownload(body.paths)),
  );

  for (const p of ['/files/upload', '/files/upload-v2']) {
    router.route(
      {
        method: 'post',
        path: p,
        tag,
        summary: 'Upload a file (multipart field "file", or the raw body)',
        query: PathQuery,
        rawBody: 'multipart/form-data',
        response: UploadedFile,
      },
      ({ query, c }) => files.upload(query.path, uploadSource((c.env as HttpBindings).incoming)),
    );
  }
  router.route(
    {
      method: 'post',
      path: '/files/bulk-upload',
      tag,
      summary: 'Upload several files (files[i].path, files[i].file)',
      rawBody: 'multipart/form-data',
      response: BulkUploadResponse,
    },
    ({ c }) => files.bulkUpload(multipartForm((c.env as HttpBindings).incoming)),
  );

  router.route(
    { method: 'post', path: '/files/replace', tag, summary: 'Replace text in files', body: ReplaceRequest, response: ReplaceResultList },
    ({ body }) => files.replace(body),
  );
  router.route(
    { method: 'get', path: '/files/find', tag, summary: 'Lines containing a text', query: PatternQuery, response: MatchList },
    async ({ query, c }) => {
      const { matches, truncated } = await files.find(query.path, query.pattern);
      if (truncated) c.header(TRUNCATED_HEADER, 'true');
      return matches;
    },
  );
  router.route(
    { method: 'get', path: '/files/search', tag, summary: 'Paths whose name matches a glob', query: PatternQuery, response: SearchFilesResponse },
    async ({ query, c }) => {
      const { files: found, truncated } = await files.search(query.path, query.pattern);
      if (truncated) c.header(TRUNCATED_HEADER, 'true');
      return { files: found };
    },
  );
}
