import { dateFromTimestamp, intentsV1 } from '@aether/proto';
import {
  checkLabels,
  invalidFields,
  parseLabelSelector,
  serverStream,
  unary,
  Violations,
  type ServiceHandlers,
} from '@aether/rpc';
import { intentNotFound, type IntentManager } from './intent-manager';
import { isTerminalIntent, type IntentStore } from './intent-store';

const { IntentState } = intentsV1;

const NAME = /^intents\/([0-9a-hjkmnp-tv-z]{26})$/;
const GOAL_NAME = /^[a-z0-9._-]{1,128}$/;
const IDEMPOTENCY_KEY = /^[A-Za-z0-9._:-]{1,128}$/;
const MAX_TEXT_BYTES = 16 * 1024;
const MAX_PARAMETER_BYTES = 64 * 1024;
const MAX_NOTE_BYTES = 1024;
const DEFAULT_PAGE = 50;
const MAX_PAGE = 1000;

function check(v: Violations): void {
  if (v.all.length > 0) throw invalidFields(v.all);
}

function idOf(name: string): string {
  const m = NAME.exec(name);
  if (!m)
    throw invalidFields(
      [{ field: 'name', description: `"${name}" is not an intent name such as intents/01j9…` }],
      'INVALID_NAME',
    );
  return m[1]!;
}

function validateSubmit(req: intentsV1.SubmitIntentRequest): void {
  const v = new Violations();
  const input = req.input;
  if (!input) v.add('text', 'set text or goal: what should be done');
  else if (input.$case === 'text') {
    v.check(input.value.trim() !== '', 'text', 'must not be empty');
    v.check(
      Buffer.byteLength(input.value) <= MAX_TEXT_BYTES,
      'text',
      `must be at most ${MAX_TEXT_BYTES} bytes`,
    );
    v.check(!input.value.includes('\0'), 'text', 'must not contain NUL');
  } else {
    v.check(input.value.name !== '', 'goal.name', 'must not be empty');
    if (input.value.name)
      v.check(GOAL_NAME.test(input.value.name), 'goal.name', 'must be 1-128 characters of [a-z0-9._-]');
    v.check(
      Buffer.byteLength(JSON.stringify(input.value.parameters ?? {})) <= MAX_PARAMETER_BYTES,
      'goal.parameters',
      `must be at most ${MAX_PARAMETER_BYTES} bytes`,
    );
  }
  v.check(
    Object.values(intentsV1.Planner).includes(req.planner),
    'planner',
    'must be PLANNER_PLAYBOOK, PLANNER_MODEL or unspecified',
  );
  checkLabels(v, req.labels, 'labels');
  if (req.idempotencyKey)
    v.check(
      IDEMPOTENCY_KEY.test(req.idempotencyKey),
      'idempotency_key',
      'must be 1-128 characters of [A-Za-z0-9._:-]',
    );
  check(v);
}

function validateDecision(req: { name: string; stepIds: string[] }, note: string, field: string): void {
  idOf(req.name);
  const v = new Violations();
  req.stepIds.forEach((s, i) => v.check(/^[a-z0-9_-]{1,64}$/.test(s), `step_ids[${i}]`, 'is not a step id'));
  v.check(Buffer.byteLength(note) <= MAX_NOTE_BYTES, field, `must be at most ${MAX_NOTE_BYTES} bytes`);
  check(v);
}

/** ListIntents omits each intent's event history (GetIntent has it). */
function listView(i: intentsV1.Intent): intentsV1.Intent {
  return { ...i, events: [] };
}

export function intentServiceHandlers(
  manager: IntentManager,
  store: IntentStore,
): ServiceHandlers<typeof intentsV1.IntentServiceService> {
  const find = (name: string): intentsV1.Intent => {
    const intent = manager.get(idOf(name));
    if (!intent) throw intentNotFound(name);
    return intent;
  };
  return {
    submitIntent: unary<intentsV1.SubmitIntentRequest, intentsV1.SubmitIntentResponse>({
      mutates: true,
      validate: validateSubmit,
      handle: async (req, ctx) => ({
        intent: await manager.submit({
          request: req,
          actor: ctx.principal.id,
          ...(ctx.deadline ? { deadlineMs: ctx.deadline.getTime() } : {}),
        }),
      }),
    }),
    getIntent: unary<intentsV1.GetIntentRequest, intentsV1.GetIntentResponse>({
      validate: (req) => void idOf(req.name),
      handle: (req) => Promise.resolve({ intent: find(req.name) }),
    }),
    listIntents: unary<intentsV1.ListIntentsRequest, intentsV1.ListIntentsResponse>({
      validate: (req) => {
        const v = new Violations().page(req, MAX_PAGE);
        req.states.forEach((s, i) =>
          v.check(
            s !== IntentState.INTENT_STATE_UNSPECIFIED && Object.values(IntentState).includes(s),
            `states[${i}]`,
            'must be a lifecycle state',
          ),
        );
        check(v);
        parseLabelSelector(req.labelSelector);
      },
      handle: (req) => {
        const limit = req.pageSize === 0 ? DEFAULT_PAGE : Math.min(req.pageSize, MAX_PAGE);
        const matches = parseLabelSelector(req.labelSelector);
        const base = {
          states: req.states,
          actor: req.actor,
          goalName: req.goalName,
          ...(req.startTime ? { startMs: dateFromTimestamp(req.startTime).getTime() } : {}),
          ...(req.endTime ? { endMs: dateFromTimestamp(req.endTime).getTime() } : {}),
          ...(req.pageToken ? { beforeSeq: Number(req.pageToken) } : {}),
        };
        const intents: intentsV1.Intent[] = [];
        let lastSeq = 0;
        let more = false;
        for (const { intent, seq } of store.scan(base)) {
          if (!matches(intent.labels)) continue;
          if (intents.length === limit) {
            more = true;
            break;
          }
          // The live copy when the intent is in progress: the row may be a moment older.
          intents.push(listView(manager.get(intent.id) ?? intent));
          lastSeq = seq;
        }
        return Promise.resolve({ intents, nextPageToken: more ? String(lastSeq) : '' });
      },
    }),
    watchIntent: serverStream<intentsV1.WatchIntentRequest, intentsV1.WatchIntentResponse>({
      validate: (req) => void idOf(req.name),
      handle: async (req, ctx, send) => {
        const id = idOf(req.name);
        const first = find(req.name);
        const queue: intentsV1.IntentEvent[] = [];
        let latest = first;
        let wake: (() => void) | undefined;
        let done = false;
        // Each event goes out with the intent as it is when sent (it holds that event and any before it);
        // the stream ends once aurorad says the intent is done (its terminal state, then its summary entry).
        const stop = manager.watch(id, {
          update: (intent, event) => {
            latest = intent;
            queue.push(event);
            wake?.();
          },
          end: () => {
            done = true;
            wake?.();
          },
        });
        try {
          await send({ intent: first });
          if (!stop || isTerminalIntent(first.state)) return;
          for (;;) {
            while (queue.length > 0) await send({ intent: latest, event: queue.shift()! });
            if (done || ctx.signal.aborted) return;
            await new Promise<void>((resolve) => {
              wake = resolve;
              ctx.signal.addEventListener('abort', () => resolve(), { once: true });
            });
            wake = undefined;
          }
        } finally {
          stop?.();
        }
      },
    }),
    approveIntent: unary<intentsV1.ApproveIntentRequest, intentsV1.ApproveIntentResponse>({
      mutates: true,
      validate: (req) => validateDecision(req, req.comment, 'comment'),
      handle: async (req, ctx) => ({
        intent: await manager.approve(req.name, idOf(req.name), {
          stepIds: req.stepIds,
          planEtag: req.planEtag,
          comment: req.comment,
          actor: ctx.principal.id,
        }),
      }),
    }),
    rejectIntent: unary<intentsV1.RejectIntentRequest, intentsV1.RejectIntentResponse>({
      mutates: true,
      validate: (req) => validateDecision(req, req.reason, 'reason'),
      handle: (req, ctx) =>
        Promise.resolve({
          intent: manager.reject(req.name, idOf(req.name), {
            stepIds: req.stepIds,
            planEtag: req.planEtag,
            reason: req.reason,
            actor: ctx.principal.id,
          }),
        }),
    }),
    cancelIntent: unary<intentsV1.CancelIntentRequest, intentsV1.CancelIntentResponse>({
      mutates: true,
      validate: (req) => validateDecision({ name: req.name, stepIds: [] }, req.reason, 'reason'),
      handle: async (req, ctx) => ({
        intent: await manager.cancel(req.name, idOf(req.name), req.reason, ctx.principal.id),
      }),
    }),
  };
}
