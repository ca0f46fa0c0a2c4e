declare module 's3rver' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  /** The parts of s3rver (an S3-compatible server on the file system, a Koa app) that Cove uses. */
  export default class S3rver {
    constructor(options: { silent?: boolean; directory: string; vhostBuckets?: boolean; configureBuckets?: { name: string; configs: string[] }[] });
    store: {
      getObject(bucket: string, key: string): Promise<unknown>;
      existsObject(bucket: string, key: string): Promise<boolean>;
      /** Where the store keeps a resource (`uploads`: the folder of multipart uploads, one folder per upload id). */
      getResourcePath(bucket: string, key: string | undefined, resource: string): string;
    };
    configureBuckets(): Promise<void>;
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
    on(event: 'error', listener: (err: Error) => void): this;
  }
}
