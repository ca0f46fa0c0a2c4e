import { z } from 'zod';
import { queryBool } from './common';

/**
 * Wire shapes of the Files capability (Daytona toolbox `/files/*`). Field names and types follow the Daytona SDK's
 * toolbox client (`@daytona/toolbox-api-client` models), which is what SDK users parse.
 */

const path = z.string().min(1, 'must not be empty');

/** An octal permission string such as `755` or `0644`. */
const OctalMode = z.string().regex(/^0?[0-7]{3,4}$/, 'expected an octal mode such as 755 or 0644');

/** One file or directory, as `GET /files` and `GET /files/info` return it. */
export const FileInfo = z.object({
  name: z.string(),
  /** Full path of the entry. Relative when the request's path was relative, as Daytona reports it. */
  path: z.string().optional(),
  size: z.number().int(),
  /** Go-style mode string: `-rw-r--r--`, `drwxr-xr-x`, `Lrwxrwxrwx`. */
  mode: z.string(),
  /** Modification time in Go's `time.String()` layout (kept for old clients). */
  modTime: z.string(),
  /** Modification time, ISO 8601. */
  modifiedAt: z.string(),
  isDir: z.boolean(),
  owner: z.string(),
  group: z.string(),
  /** Permission bits in octal, four digits: `0644`. */
  permissions: z.string(),
});
export type FileInfo = z.infer<typeof FileInfo>;

export const FileInfoList = z.array(FileInfo);
export type FileInfoList = z.infer<typeof FileInfoList>;

export const PathQuery = z.object({ path });
export type PathQuery = z.infer<typeof PathQuery>;

export const ListQuery = z.object({
  path: path.optional(),
  /** How many levels to list: 1 is the directory's own entries. */
  depth: z.coerce.number().int().min(1).max(64).optional(),
});
export type ListQuery = z.infer<typeof ListQuery>;

export const DeleteQuery = z.object({ path, recursive: queryBool });
export type DeleteQuery = z.infer<typeof DeleteQuery>;

export const FolderQuery = z.object({ path, mode: OctalMode.optional() });
export type FolderQuery = z.infer<typeof FolderQuery>;

export const MoveQuery = z.object({ source: path, destination: path });
export type MoveQuery = z.infer<typeof MoveQuery>;

export const PermissionsQuery = z.object({
  path,
  /** User name or numeric uid. */
  owner: z.string().optional(),
  /** Group name or numeric gid. */
  group: z.string().optional(),
  mode: OctalMode.optional(),
});
export type PermissionsQuery = z.infer<typeof PermissionsQuery>;

export const PatternQuery = z.object({ path, pattern: z.string().min(1, 'must not be empty') });
export type PatternQuery = z.infer<typeof PatternQuery>;

/** One line that contains the pattern (`GET /files/find`). */
export const Match = z.object({ file: z.string(), line: z.number().int(), content: z.string() });
export type Match = z.infer<typeof Match>;

export const MatchList = z.array(Match);
export type MatchList = z.infer<typeof MatchList>;

/** Answer of `GET /files/search` (names matching a glob). */
export const SearchFilesResponse = z.object({ files: z.array(z.string()) });
export type SearchFilesResponse = z.infer<typeof SearchFilesResponse>;

/** `POST /files/replace`: replace every literal occurrence of `pattern` by `newValue` in each file. */
export const ReplaceRequest = z.object({
  files: z.array(path).min(1),
  pattern: z.string().min(1, 'must not be empty'),
  newValue: z.string(),
});
export type ReplaceRequest = z.infer<typeof ReplaceRequest>;

export const ReplaceResult = z.object({
  file: z.string(),
  success: z.boolean(),
  error: z.string().optional(),
});
export type ReplaceResult = z.infer<typeof ReplaceResult>;

export const ReplaceResultList = z.array(ReplaceResult);
export type ReplaceResultList = z.infer<typeof ReplaceResultList>;

/** `POST /files/bulk-download`. */
export const BulkDownloadRequest = z.object({ paths: z.array(path).min(1).max(10_000) });
export type BulkDownloadRequest = z.infer<typeof BulkDownloadRequest>;

/**
 * Body of a bulk-download part named `error` (JSON). The SDK reads `message`, `statusCode`, `code` and `source`
 * and turns them into its typed errors.
 */
export const BulkDownloadError = z.object({
  message: z.string(),
  statusCode: z.number().int(),
  code: z.string(),
  source: z.string(),
});
export type BulkDownloadError = z.infer<typeof BulkDownloadError>;

/** Answer of the single-file upload routes. */
export const UploadedFile = z.object({
  name: z.string(),
  /** Absolute path the file was written to. */
  path: z.string(),
  /** Media type the client sent with the part. */
  type: z.string(),
});
export type UploadedFile = z.infer<typeof UploadedFile>;

/** Answer of `POST /files/bulk-upload` (the SDK ignores it; Cove reports what it wrote). */
export const BulkUploadResponse = z.array(UploadedFile);
export type BulkUploadResponse = z.infer<typeof BulkUploadResponse>;

/** Multipart field names of `POST /files/bulk-upload`: `files[3].path`, `files[3].file`. */
export const BULK_UPLOAD_FIELD = /^files\[(\d{1,6})\]\.(path|file)$/;
