import { IMAGE_REF } from '../../../wire/sandbox';

/**
 * The images a Dockerfile builds from: each stage's `FROM` image and each `COPY --from=` / `RUN --mount=…,from=` that
 * names an image rather than an earlier stage, in order, without repeats (`scratch` is none). Throws an Error saying
 * why when one cannot be known before the build: a build argument (`$`) in an image reference, or a reference that is
 * not one. Lines continued with `\` are joined; comments and parser directives are skipped.
 */
export function baseImages(dockerfile: string): string[] {
  const lines: string[] = [];
  let pending = '';
  for (const raw of dockerfile.split(/\r?\n/)) {
    const line = raw.trimEnd();
    if (!pending && /^\s*#/.test(line)) continue;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    lines.push(pending + line);
    pending = '';
  }
  if (pending) lines.push(pending);

  const stages = new Set<string>();
  const images: string[] = [];
  const add = (ref: string, where: string) => {
    if (ref.includes('$')) throw new Error(`${where} uses a build argument (${ref.slice(0, 100)}); name the image itself`);
    if (ref.toLowerCase() === 'scratch' || stages.has(ref.toLowerCase()) || /^\d+$/.test(ref)) return;
    if (ref.length > 255 || !IMAGE_REF.test(ref)) throw new Error(`${where} names ${JSON.stringify(ref.slice(0, 100))}, which is not an image reference`);
    if (!images.includes(ref)) images.push(ref);
  };
  for (const line of lines) {
    const words = line.trim().split(/\s+/);
    const instruction = words[0]?.toUpperCase();
    if (instruction === 'FROM') {
      const args = words.slice(1).filter((w) => !w.startsWith('--'));
      if (!args[0]) throw new Error('A FROM line names no image');
      add(args[0], 'FROM');
      if (args[1]?.toUpperCase() === 'AS' && args[2]) stages.add(args[2].toLowerCase());
    } else if (instruction === 'COPY' || instruction === 'ADD') {
      for (const flag of words.slice(1).filter((w) => w.startsWith('--from='))) add(flag.slice('--from='.length), `${instruction} --from`);
    } else if (instruction === 'RUN') {
      for (const flag of words.slice(1).filter((w) => w.startsWith('--mount='))) {
        const from = /(?:^|,)from=([^,]+)/.exec(flag.slice('--mount='.length));
        if (from) add(from[1], 'RUN --mount from');
      }
    }
  }
  return images;
}
