import { status as Status } from '@grpc/grpc-js';
import { RpcError } from './errors';

type Requirement = { op: 'eq' | 'ne'; key: string; value: string } | { op: 'exists' | 'absent'; key: string };

const KEY = /^[a-z0-9][a-z0-9._/-]{0,62}$/;

/**
 * Parses a label selector as every Aether API documents it: comma-separated requirements, all of which
 * must hold — `key=value`, `key!=value`, `key` (present), `!key` (absent). INVALID_ARGUMENT /
 * INVALID_LABEL_SELECTOR when malformed.
 */
export function parseLabelSelector(
  selector: string,
  field = 'label_selector',
): (labels: Record<string, string>) => boolean {
  if (selector.trim() === '') return () => true;
  const reqs: Requirement[] = [];
  for (const raw of selector.split(',')) {
    const part = raw.trim();
    let req: Requirement | undefined;
    const ne = part.indexOf('!=');
    const eq = part.indexOf('=');
    if (ne > 0) req = { op: 'ne', key: part.slice(0, ne).trim(), value: part.slice(ne + 2).trim() };
    else if (eq > 0) req = { op: 'eq', key: part.slice(0, eq).trim(), value: part.slice(eq + 1).trim() };
    else if (part.startsWith('!')) req = { op: 'absent', key: part.slice(1).trim() };
    else req = { op: 'exists', key: part };
    if (!KEY.test(req.key))
      throw new RpcError(
        Status.INVALID_ARGUMENT,
        'INVALID_LABEL_SELECTOR',
        `${field}: ${JSON.stringify(part)} is not a requirement (key=value, key!=value, key or !key)`,
        {
          fieldViolations: [{ field, description: `malformed requirement ${JSON.stringify(part)}` }],
        },
      );
    reqs.push(req);
  }
  return (labels) =>
    reqs.every((r) => {
      const has = Object.hasOwn(labels, r.key);
      switch (r.op) {
        case 'eq':
          return has && labels[r.key] === r.value;
        case 'ne':
          return !has || labels[r.key] !== r.value;
        case 'exists':
          return has;
        case 'absent':
          return !has;
      }
    });
}
