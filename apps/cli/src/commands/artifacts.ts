import { createReadStream, createWriteStream, statSync } from 'node:fs';
import { once } from 'node:events';
import { basename, resolve } from 'node:path';
import { Command } from 'commander';
import { clientStreamCall, serverStreamCall, type AetherClient } from '@aether/client';
import { artifactsV1, dateFromTimestamp } from '@aether/proto';
import { arg, collectPages, collectPairs, list, printJson, withClient } from '../command-support';
import { withAetherErrors } from '../errors';
import { table } from '../output';
import { progressFor } from '../progress';
import { formatAge, formatBytes, parseCount, resourceName, truncate, UsageError } from '../units';

const { ArtifactType, LineageDirection } = artifactsV1;

/** Upload chunk size: well under the 4 MiB message limit, big enough to keep the pipe full. */
const CHUNK = 1024 * 1024;
const TYPES = ['dataset', 'checkpoint', 'model', 'report', 'log', 'other'] as const;

function parseType(v: string): artifactsV1.ArtifactType {
  const t = v.toLowerCase();
  if (!(TYPES as readonly string[]).includes(t))
    throw new UsageError(`artifact type "${v}" must be one of ${TYPES.join(', ')}`);
  return artifactsV1.artifactTypeFromJSON(`ARTIFACT_TYPE_${t.toUpperCase()}`);
}

/** `model` from ARTIFACT_TYPE_MODEL. */
export function typeName(t: artifactsV1.ArtifactType): string {
  return artifactsV1.artifactTypeToJSON(t).replace('ARTIFACT_TYPE_', '').toLowerCase();
}

function parseDigest(v: string): string {
  if (!/^sha256:[0-9a-f]{64}$/.test(v))
    throw new UsageError(`digest "${v}" must be sha256:<64 lowercase hex digits>`);
  return v;
}

const artifactName = (v: string): string => resourceName('artifacts', v, 'an artifact');
const artifactJson = (a: artifactsV1.Artifact): unknown => artifactsV1.Artifact.toJSON(a);
const shortDigest = (d: string): string => d.replace(/^sha256:/, '').slice(0, 12);

/** The human view of one artifact, `aether artifacts get`. */
export function artifactDetail(a: artifactsV1.Artifact): string {
  const rows: [string, string][] = [
    ['Name', a.name],
    ['Type', typeName(a.type)],
    ['Media type', a.mediaType],
    ['Size', `${formatBytes(a.sizeBytes)} (${a.sizeBytes} bytes)`],
    ['Digest', a.digest],
    ['Filename', a.filename],
    ['Path', a.path],
    ['Actor', a.actor],
    ['Created', a.createTime ? dateFromTimestamp(a.createTime).toISOString() : ''],
    ['Verified', a.verifyTime ? dateFromTimestamp(a.verifyTime).toISOString() : 'never'],
    ['Job', a.jobId],
    ['Intent', a.intentId],
    ['Derived from', a.derivedFrom.join(', ')],
    [
      'Labels',
      Object.entries(a.labels)
        .map(([k, v]) => `${k}=${v}`)
        .join(', '),
    ],
    ['Description', a.description],
  ];
  return rows
    .filter(([, v]) => v !== '')
    .map(([k, v]) => `${`${k}:`.padEnd(14)}${v}`)
    .join('\n')
    .concat('\n');
}

async function* fileChunks(
  path: string,
  first: artifactsV1.UploadArtifactRequest,
  onChunk: (n: number) => void,
): AsyncGenerator<artifactsV1.UploadArtifactRequest> {
  yield first;
  for await (const chunk of createReadStream(path, { highWaterMark: CHUNK })) {
    const buf = chunk as Buffer;
    onChunk(buf.length);
    yield { payload: { $case: 'chunk', value: buf } };
  }
}

interface AddOpts {
  type?: artifactsV1.ArtifactType;
  mediaType?: string;
  label?: Record<string, string>;
  derivedFrom?: string[];
  job?: string;
  intent?: string;
  description?: string;
  filename?: string;
  digest?: string;
  byPath?: boolean;
  idempotencyKey?: string;
  progress?: boolean;
  json?: boolean;
}

async function add(
  c: AetherClient,
  file: string,
  opts: AddOpts,
): Promise<artifactsV1.CreateArtifactResponse> {
  const metadata = artifactsV1.ArtifactMetadata.fromPartial({
    type: opts.type ?? ArtifactType.ARTIFACT_TYPE_UNSPECIFIED,
    mediaType: opts.mediaType ?? '',
    labels: opts.label ?? {},
    jobId: opts.job ?? '',
    intentId: opts.intent ?? '',
    derivedFrom: (opts.derivedFrom ?? []).map(artifactName),
    filename: opts.filename ?? basename(file),
    description: opts.description ?? '',
  });
  if (opts.byPath) {
    // The daemon reads the file itself: it must be inside a configured import root (or the job's /work).
    const sourcePath = opts.job ? file : resolve(file);
    return c.call(
      c.artifacts,
      'createArtifact',
      artifactsV1.CreateArtifactRequest.fromPartial({
        sourcePath,
        metadata,
        expectedDigest: opts.digest ?? '',
        idempotencyKey: opts.idempotencyKey ?? '',
      }),
    );
  }
  let size: number;
  try {
    const st = statSync(file);
    if (!st.isFile()) throw new UsageError(`${file} is not a regular file`);
    size = st.size;
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(
      `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  const bar = progressFor('upload', size, opts.progress);
  const first = artifactsV1.UploadArtifactRequest.fromPartial({
    payload: {
      $case: 'metadata',
      value: {
        metadata,
        expectedDigest: opts.digest ?? '',
        expectedSizeBytes: BigInt(size),
        idempotencyKey: opts.idempotencyKey ?? '',
      },
    },
  });
  const res = await clientStreamCall(
    c.artifacts.uploadArtifact.bind(c.artifacts),
    fileChunks(file, first, (n) => bar?.advance(n)),
  );
  bar?.finish();
  return res;
}

function addCommand(): Command {
  return new Command('add')
    .description(
      'store a file as an artifact (uploaded over the socket; --by-path lets aetherd read it in place)',
    )
    .argument('<file>', 'the file to store')
    .option('-t, --type <type>', `what it is: ${TYPES.join(', ')}`, arg(parseType))
    .option('--media-type <type>', 'IANA media type (default: guessed from the file name)')
    .option('-l, --label <key=value>', 'a label (repeatable)', collectPairs('label'))
    .option('--derived-from <artifact>', 'an input it was made from (repeatable): lineage', list(String))
    .option('--job <id>', 'the job that produced it (default: $AETHER_JOB_ID via metadata, if any)')
    .option('--intent <id>', 'the intent it belongs to')
    .option('--description <text>', 'free-form description')
    .option('--filename <name>', 'original file name to record (default: the base name)')
    .option('--digest <sha256:hex>', 'refuse unless the content has this digest', arg(parseDigest))
    .option('--by-path', "register the file where it is (it must be under an import root or the job's /work)")
    .option('--idempotency-key <key>', 'a retry with the same key returns the first artifact')
    .option('--progress', 'always draw a progress bar')
    .option('--no-progress', 'never draw a progress bar')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
The artifact is registered only once the whole content has arrived and its digest checks out; an
interrupted upload leaves nothing behind. Identical content is stored once.

Examples:
  $ aether artifacts add model.onnx --type model --label stage=eval
  $ aether artifacts add data.csv -t dataset --digest sha256:9f86d08…
  $ aether artifacts add /srv/imports/big.bin --by-path`,
    )
    .action(async (file: string, opts: AddOpts, cmd: Command) => {
      await withClient(cmd, async (c) => {
        const res = await add(c, file, opts);
        const a = res.artifact!;
        if (opts.json) printJson(artifactsV1.UploadArtifactResponse.toJSON(res));
        else {
          process.stdout.write(`${a.name}\n`);
          process.stderr.write(
            `${formatBytes(a.sizeBytes)} ${a.digest}${res.deduplicated ? ' (content already stored: deduplicated)' : ''}\n`,
          );
        }
      });
    });
}

function getCommand(): Command {
  return new Command('get')
    .description("show an artifact's metadata and the path of its blob")
    .argument('<artifact>', 'artifacts/<id> or <id>')
    .option('--json', 'print JSON')
    .action(async (artifact: string, opts: { json?: boolean }, cmd: Command) => {
      const name = artifactName(artifact);
      await withClient(cmd, async (c) => {
        const res = await c.call(c.artifacts, 'getArtifact', { name });
        if (opts.json) printJson(artifactJson(res.artifact!));
        else process.stdout.write(artifactDetail(res.artifact!));
      });
    });
}

interface LsOpts {
  job?: string;
  intent?: string;
  type?: artifactsV1.ArtifactType;
  label?: string;
  digest?: string;
  actor?: string;
  limit: number;
  allPages?: boolean;
  json?: boolean;
}

function lsCommand(): Command {
  return new Command('ls')
    .alias('list')
    .description('list artifacts, newest first')
    .option('--job <id>', 'only those produced by this job')
    .option('--intent <id>', 'only those of this intent')
    .option('-t, --type <type>', `only this type: ${TYPES.join(', ')}`, arg(parseType))
    .option('-l, --label <selector>', 'label selector: team=ml,env!=prod,gpu,!draft')
    .option('--digest <sha256:hex>', 'only those with this content', arg(parseDigest))
    .option('--actor <spiffe-id>', 'only those registered by this identity')
    .option(
      '--limit <n>',
      'artifacts per page (at most 1000)',
      arg((v) => parseCount(v, 'limit', 1, 1000)),
      50,
    )
    .option('--all-pages', 'keep fetching pages until every matching artifact is listed')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nColumns: ID, TYPE, SIZE, DIGEST (first 12 hex digits), AGE, FILENAME.')
    .action(async (opts: LsOpts, cmd: Command) => {
      await withClient(cmd, async (c) => {
        const { items: found, nextPageToken: more } = await collectPages(opts.allPages, async (pageToken) => {
          const res = await c.call(
            c.artifacts,
            'listArtifacts',
            artifactsV1.ListArtifactsRequest.fromPartial({
              pageSize: opts.limit,
              pageToken,
              jobId: opts.job ?? '',
              intentId: opts.intent ?? '',
              type: opts.type ?? ArtifactType.ARTIFACT_TYPE_UNSPECIFIED,
              labelSelector: opts.label ?? '',
              digest: opts.digest ?? '',
              actor: opts.actor ?? '',
            }),
          );
          return { items: res.artifacts, nextPageToken: res.nextPageToken };
        });
        if (opts.json) printJson(found.map(artifactJson));
        else {
          const now = Date.now();
          process.stdout.write(
            table(
              ['ID', 'TYPE', 'SIZE', 'DIGEST', 'AGE', 'FILENAME'],
              found.map((a) => [
                a.id,
                typeName(a.type),
                formatBytes(a.sizeBytes),
                shortDigest(a.digest),
                a.createTime ? formatAge(now - dateFromTimestamp(a.createTime).getTime()) : '',
                truncate(a.filename, 40),
              ]),
            ),
          );
          if (more)
            process.stderr.write(
              `more artifacts match: --limit ${opts.limit} per page; add --all-pages for all\n`,
            );
        }
      });
    });
}

function catCommand(): Command {
  return new Command('cat')
    .description("write an artifact's content (or a byte range) to stdout or a file")
    .argument('<artifact>', 'artifacts/<id> or <id>')
    .option('-o, --output <file>', 'write to this file instead of stdout')
    .option(
      '--offset <bytes>',
      'first byte',
      arg((v) => parseCount(v, 'offset', 0, Number.MAX_SAFE_INTEGER)),
    )
    .option(
      '--length <bytes>',
      'number of bytes',
      arg((v) => parseCount(v, 'length', 1, Number.MAX_SAFE_INTEGER)),
    )
    .option('--progress', 'always draw a progress bar')
    .option('--no-progress', 'never draw a progress bar')
    .addHelpText(
      'after',
      `
A download whose content no longer matches its digest fails with DATA_LOSS (exit 1) after the bytes.

Examples:
  $ aether artifacts cat 01jc7v0m4k3h2g1f0e9d8c7b6a > model.onnx
  $ aether artifacts cat 01jc7v0m4k3h2g1f0e9d8c7b6a --offset 1024 --length 64 | xxd`,
    )
    .action(
      async (
        artifact: string,
        opts: { output?: string; offset?: number; length?: number; progress?: boolean },
        cmd: Command,
      ) => {
        const name = artifactName(artifact);
        await withClient(cmd, async (c) => {
          const out = opts.output ? createWriteStream(opts.output) : process.stdout;
          let bar: ReturnType<typeof progressFor>;
          for await (const m of serverStreamCall(
            c.artifacts.readArtifact.bind(c.artifacts),
            artifactsV1.ReadArtifactRequest.fromPartial({
              name,
              offset: BigInt(opts.offset ?? 0),
              length: BigInt(opts.length ?? 0),
            }),
          )) {
            if (m.artifact) {
              const size = Number(m.artifact.sizeBytes) - (opts.offset ?? 0);
              const total = opts.length !== undefined ? Math.min(opts.length, size) : size;
              // Over a pipe to stdout the bar shows only when asked for; to a file, when stderr is a terminal.
              bar = progressFor('download', total, opts.output ? opts.progress : (opts.progress ?? false));
            }
            if (!out.write(m.data)) await once(out, 'drain');
            bar?.advance(m.data.length);
          }
          bar?.finish();
          if (opts.output) {
            out.end();
            await once(out, 'finish');
          }
        });
      },
    );
}

function verifyCommand(): Command {
  return new Command('verify')
    .description("re-hash an artifact's blob and compare it with its recorded digest and size")
    .argument('<artifact...>', 'artifacts/<id> or <id>')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      '\nExit status: 0 when every artifact is intact, 1 when one is not (or cannot be read).',
    )
    .action(async (artifacts: string[], opts: { json?: boolean }, cmd: Command) => {
      await withClient(cmd, async (c) => {
        const results: artifactsV1.VerifyArtifactResponse[] = [];
        for (const a of artifacts) {
          const res = await c.call(c.artifacts, 'verifyArtifact', { name: artifactName(a) });
          results.push(res);
          if (!opts.json)
            process.stdout.write(
              res.valid
                ? `${res.artifact!.name}: OK ${res.actualDigest}\n`
                : `${res.artifact!.name}: CORRUPTED: expected ${res.expectedDigest} (${res.expectedSizeBytes} bytes), found ${res.actualDigest} (${res.actualSizeBytes} bytes)\n`,
            );
        }
        if (opts.json) printJson(results.map((r) => artifactsV1.VerifyArtifactResponse.toJSON(r)));
        if (results.some((r) => !r.valid)) process.exitCode = 1;
      });
    });
}

function rmCommand(): Command {
  return new Command('rm')
    .alias('delete')
    .description("delete artifacts' records; a blob goes when no other artifact shares its content")
    .argument('<artifact...>', 'artifacts/<id> or <id>')
    .action(async (artifacts: string[], _opts: unknown, cmd: Command) => {
      await withClient(cmd, async (c) => {
        for (const a of artifacts) {
          const name = artifactName(a);
          await c.call(c.artifacts, 'deleteArtifact', { name });
          process.stdout.write(`${name}\n`);
        }
      });
    });
}

function lineageCommand(): Command {
  return new Command('lineage')
    .description('show what an artifact was derived from and what was derived from it')
    .argument('<artifact>', 'artifacts/<id> or <id>')
    .option('--ancestors', 'only what it was derived from')
    .option('--descendants', 'only what was derived from it')
    .option(
      '--depth <n>',
      'edges to follow (default 1, at most 64)',
      arg((v) => parseCount(v, 'depth', 1, 64)),
      1,
    )
    .option('--json', 'print JSON')
    .action(
      async (
        artifact: string,
        opts: { ancestors?: boolean; descendants?: boolean; depth: number; json?: boolean },
        cmd: Command,
      ) => {
        const direction =
          opts.ancestors && !opts.descendants
            ? LineageDirection.LINEAGE_DIRECTION_ANCESTORS
            : opts.descendants && !opts.ancestors
              ? LineageDirection.LINEAGE_DIRECTION_DESCENDANTS
              : LineageDirection.LINEAGE_DIRECTION_BOTH;
        await withClient(cmd, async (c) => {
          const res = await c.call(c.artifacts, 'getArtifactLineage', {
            name: artifactName(artifact),
            direction,
            maxDepth: opts.depth,
            maxNodes: 0,
          });
          if (opts.json) {
            printJson(artifactsV1.GetArtifactLineageResponse.toJSON(res));
            return;
          }
          const nodes = [...res.nodes].sort((a, b) => a.depth - b.depth);
          process.stdout.write(
            table(
              ['DEPTH', 'ARTIFACT', 'TYPE', 'FILENAME'],
              nodes.map((n) => [
                n.depth > 0 ? `+${n.depth}` : String(n.depth),
                n.name,
                n.deleted ? '(deleted)' : typeName(n.artifact!.type),
                n.artifact?.filename ?? '',
              ]),
            ),
          );
          if (res.truncated) process.stderr.write('lineage truncated: more artifacts are related\n');
        });
      },
    );
}

/** `aether artifacts …`: content-addressed artifacts with lineage. */
export function artifactsCommand(): Command {
  const cmd = withAetherErrors(new Command('artifacts'))
    .alias('artifact')
    .description('store, list, read, verify and delete content-addressed artifacts')
    .showHelpAfterError('(add --help for usage and examples)')
    .addHelpText(
      'after',
      `
Artifacts are immutable files stored once by their sha256 digest, with who made them, from what job
and intent, and what they were derived from. Every command takes artifacts/<id> or the bare id.

Examples:
  $ aether artifacts add report.json --type report
  $ aether artifacts ls --type model
  $ aether artifacts cat <id> -o model.onnx
  $ aether artifacts verify <id>`,
    );
  for (const sub of [
    addCommand(),
    getCommand(),
    lsCommand(),
    catCommand(),
    verifyCommand(),
    rmCommand(),
    lineageCommand(),
  ])
    cmd.addCommand(withAetherErrors(sub.showHelpAfterError('(add --help for usage and examples)')));
  return cmd;
}
