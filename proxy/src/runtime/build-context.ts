/** Where the Dockerfile sits in a build context Cove assembles: a name no uploaded context uses by accident. */
export const CONTEXT_DOCKERFILE = '.cove-dockerfile';

const BLOCK = 512;

/** One ustar header and body for a regular file `name` (≤ 100 bytes of ASCII), without the end-of-archive blocks. */
function fileEntry(name: string, content: string): Buffer {
  const body = Buffer.from(content, 'utf8');
  const header = Buffer.alloc(BLOCK);
  const put = (text: string, offset: number, length: number) => header.write(text, offset, length, 'ascii');
  const octal = (n: number, length: number) => n.toString(8).padStart(length - 1, '0') + '\0';
  put(name, 0, 100);
  put(octal(0o644, 8), 100, 8);
  put(octal(0, 8), 108, 8);
  put(octal(0, 8), 116, 8);
  put(octal(body.length, 12), 124, 12);
  put(octal(0, 12), 136, 12);
  put(' '.repeat(8), 148, 8);
  put('0', 156, 1);
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  let sum = 0;
  for (const byte of header) sum += byte;
  put(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
  return Buffer.concat([header, body, Buffer.alloc((BLOCK - (body.length % BLOCK)) % BLOCK)]);
}

/** An entry's size field: octal digits (NUL/space-terminated), or GNU's base-256 for large files. */
function entrySize(field: Buffer): number {
  if (field[0] & 0x80) {
    let n = 0;
    for (let i = 1; i < field.length; i++) n = n * 256 + field[i];
    return n;
  }
  const text = field.toString('ascii').replace(/[\0 ]+$/, '').trim();
  if (!/^[0-7]*$/.test(text)) throw new Error('a tar header has a malformed size');
  return text ? parseInt(text, 8) : 0;
}

/** Whether a 512-byte block is a tar header whose checksum holds. */
function validHeader(block: Buffer): boolean {
  const stored = parseInt(block.subarray(148, 156).toString('ascii').replace(/[\0 ]+$/, '').trim(), 8);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i];
  return stored === sum;
}

/**
 * The entries of a tar archive (headers and padded bodies, byte for byte) without its end-of-archive blocks or what
 * follows them, so that archives can be joined into one. Throws when the bytes are not a whole tar archive.
 */
export async function* tarEntries(archive: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  let pending: Buffer = Buffer.alloc(0);
  let bodyLeft = 0;
  for await (const chunk of archive) {
    let buf: Buffer = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    pending = Buffer.alloc(0);
    while (buf.length) {
      if (bodyLeft > 0) {
        const n = Math.min(bodyLeft, buf.length);
        yield buf.subarray(0, n);
        bodyLeft -= n;
        buf = buf.subarray(n);
        continue;
      }
      if (buf.length < BLOCK) {
        pending = Buffer.from(buf);
        break;
      }
      const header = buf.subarray(0, BLOCK);
      if (header.every((b) => b === 0)) return;
      if (!validHeader(header)) throw new Error('the context is not a tar archive (a header checksum does not hold)');
      yield header;
      bodyLeft = Math.ceil(entrySize(header.subarray(124, 136)) / BLOCK) * BLOCK;
      buf = buf.subarray(BLOCK);
    }
  }
  if (pending.length || bodyLeft) throw new Error('the context tar archive ends in the middle of an entry');
  throw new Error('the context tar archive has no end-of-archive blocks');
}

/**
 * A build context made of the Dockerfile (as `.cove-dockerfile`) and the files of each uploaded context archive, in
 * order (a later archive's file replaces an earlier one's of the same path, as tar extraction does), as one tar
 * stream: nothing is held in memory beyond a chunk.
 */
export async function* buildContext(dockerfile: string, archives: (() => Promise<AsyncIterable<Buffer>>)[]): AsyncGenerator<Buffer> {
  yield fileEntry(CONTEXT_DOCKERFILE, dockerfile);
  for (const open of archives) yield* tarEntries(await open());
  yield Buffer.alloc(2 * BLOCK);
}
