import { auroradConfigSchema, defaultAuroradConfig, type AuroradConfig } from '@aether/config';
import { UpstreamWatch, type DaemonDefinition } from '@aether/daemon';
import type { Logger } from '@aether/log';
import { durationFromMs, eventsV1, governanceV1, intentsV1, memoryV1, modelsV1 } from '@aether/proto';
import { createClient, serverStreamCall, unaryCall } from '@aether/rpc';
import { join } from 'node:path';
import { IntentManager, type MintApproval, type WriteSummary } from './intents/intent-manager';
import { IntentEventBatcher } from './intents/intent-events';
import { intentServiceHandlers } from './intents/intent-service';
import { IntentStore } from './intents/intent-store';
import { ModelPlanner } from './planning/model-planner';
import { Planner } from './planning/planner';
import { loadPlaybooks, PlaybookSet } from './planning/playbooks';
import { StepPolicy } from './policy/step-policy';
import { Tools } from './runner/tools';

/** Loads the playbooks now and again on SIGHUP; a reload with errors keeps the set in force. */
function playbookSource(
  config: AuroradConfig,
  log: Logger,
): { current: () => PlaybookSet; stop: () => void } {
  let set = new PlaybookSet(loadPlaybooks(config.aurora.playbookDirs));
  log.info(
    { playbookDirs: config.aurora.playbookDirs, playbooks: set.list().map((p) => p.name) },
    'playbooks loaded',
  );
  const reload = (): void => {
    try {
      set = new PlaybookSet(loadPlaybooks(config.aurora.playbookDirs));
      log.info({ playbooks: set.list().map((p) => p.name) }, 'playbooks reloaded');
    } catch (err) {
      log.error({ err: (err as Error).message }, 'playbooks not reloaded; the previous set stays in force');
    }
  };
  process.on('SIGHUP', reload);
  return { current: () => set, stop: () => void process.removeListener('SIGHUP', reload) };
}

/**
 * aurorad: intents become plans (playbooks, or a model through cfcd), every step is checked against
 * the policy aetherd enforces, steps policy marks "ask" wait for a human, and the steps run through
 * aetherd's and cfcd's APIs with `x-aether-intent-id`. It never spawns processes and writes only its
 * state directory.
 */
export const aurorad: DaemonDefinition<typeof auroradConfigSchema> = {
  name: 'aurorad',
  description:
    'Aether orchestrator: turns intents into policy-checked plans and routes their steps to aetherd and cfcd.',
  schema: auroradConfigSchema,
  defaults: defaultAuroradConfig,
  envPrefix: 'AURORAD',
  extraFlags: [
    { flag: '--aetherd-socket <path>', path: 'aetherd.socket', description: "aetherd's Unix socket" },
    {
      flag: '--aetherd-id <spiffe-id>',
      path: 'aetherd.serverId',
      description: "aetherd's expected SPIFFE ID",
    },
    { flag: '--cfcd-socket <path>', path: 'cfcd.socket', description: "cfcd's Unix socket" },
    { flag: '--cfcd-id <spiffe-id>', path: 'cfcd.serverId', description: "cfcd's expected SPIFFE ID" },
  ],
  register: (server, { config, log, policyStore, audit }) => {
    const playbooks = playbookSource(config, log);
    const store = new IntentStore(join(config.stateDir, 'intents'));
    const tools = new Tools(config.aetherd, config.cfcd);
    const tokens = createClient(governanceV1.TokenServiceClient, config.aetherd);
    const memory = createClient(memoryV1.MemoryServiceClient, config.aetherd);
    const events = createClient(eventsV1.EventServiceClient, config.aetherd);
    const models = createClient(modelsV1.ModelRuntimeServiceClient, config.cfcd);
    const td = config.tls.trustDomain;
    const self = {
      id: `spiffe://${td}/aurorad`,
      trustDomain: td,
      name: 'aurorad',
      authenticatedBy: 'certificate',
    };

    const mintApproval: MintApproval = async (r) => {
      const res = await unaryCall(
        tokens.mintToken.bind(tokens),
        governanceV1.MintTokenRequest.fromPartial({
          token: {
            audience: [r.daemon],
            intentId: r.intentId,
            actions: [r.action],
            constraints: r.constraints,
            onBehalfOf: r.approver,
          },
          ttl: durationFromMs(config.aurora.approvalTokenTtlSeconds * 1000),
        }),
        { intentId: r.intentId, timeoutMs: 10_000 },
      );
      return { token: res.tokenString, id: res.token!.id };
    };
    const writeSummary: WriteSummary = async (intent, text) => {
      const what =
        intent.input?.$case === 'text' ? intent.input.value : `goal ${intent.input?.value.name ?? ''}`;
      const res = await unaryCall(
        memory.addEntry.bind(memory),
        memoryV1.AddEntryRequest.fromPartial({
          entry: {
            title: `Intent ${intent.id}: ${what.length > 120 ? `${what.slice(0, 119)}…` : what}`,
            text,
            tags: config.aurora.summaryTags,
            references: intent.resources.filter((r) =>
              /^(jobs|artifacts|entries|models|trainingRuns)\//.test(r),
            ),
          },
          idempotencyKey: `${intent.id}:summary`,
        }),
        { intentId: intent.id, timeoutMs: 10_000 },
      );
      return res.entry!.name;
    };
    const generate = async (req: modelsV1.GenerateRequest, intentId: string): Promise<string> => {
      let text = '';
      for await (const piece of serverStreamCall(models.generate.bind(models), req, {
        intentId,
        timeoutMs: config.aurora.modelPlanner.timeoutMs,
      }))
        text += piece.text;
      return text;
    };

    const intentEvents = new IntentEventBatcher(async (requests) => {
      await unaryCall(
        events.batchEmitEvents.bind(events),
        eventsV1.BatchEmitEventsRequest.fromPartial({ requests }),
        { timeoutMs: 5_000 },
      );
    }, log);
    const manager = new IntentManager({
      store,
      planner: new Planner(
        playbooks.current,
        new ModelPlanner(generate, config.aurora.modelPlanner),
        config.aurora.defaultPlanner,
      ),
      policy: new StepPolicy(policyStore, self),
      tools,
      mintApproval,
      writeSummary,
      limits: config.aurora.limits,
      log,
      auditDecision: (intent, step, d) => {
        const effect = intentsV1
          .policyEffectToJSON(d.effect)
          .replace(/^POLICY_EFFECT_/, '')
          .toLowerCase();
        audit
          .append(
            {
              actor: self.id,
              action: d.action || step.tool,
              intentId: intent.id,
              resource: { type: 'intent_step', id: `${intent.name}/steps/${step.id}`, tool: step.tool },
              decision: { effect, policyIds: d.policyIds, reason: d.reason, policySetHash: d.policySetHash },
              outcome: `pre-check before anything runs: ${effect}`,
            },
            { durable: effect !== 'allow' },
          )
          .catch((err: unknown) =>
            log.error({ err, intentId: intent.id }, 'audit record of a step decision lost'),
          );
      },
      onStateChange: (intent, previous) =>
        intentEvents.push({
          type: 'intent.state_changed',
          subject: intent.name,
          intentId: intent.id,
          data: {
            intent: intent.name,
            state: intentsV1.intentStateToJSON(intent.state),
            previous: intentsV1.intentStateToJSON(previous),
            failure_reason: intent.failureReason,
          },
        }),
    });
    server.addService(intentsV1.IntentServiceService, intentServiceHandlers(manager, store));
    const recovered = manager.recover();
    if (recovered.resumed + recovered.failed > 0) log.info(recovered, 'intents recovered after a restart');

    const aetherd = new UpstreamWatch('aetherd', config.aetherd, log);
    aetherd.start();
    return Promise.resolve({
      close: async () => {
        manager.close();
        await intentEvents.flush();
        playbooks.stop();
        aetherd.close();
        for (const c of [tokens, memory, events, models]) c.close();
        tools.close();
        store.close();
      },
    });
  },
};
