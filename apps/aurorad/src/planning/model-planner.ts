import { modelsV1 } from '@aether/proto';
import { RpcError } from '@aether/rpc';
import { validatePlan } from './plan-schema';
import { TOOL_OUTPUTS, TOOLS } from './plan';
import type { PlanOutcome } from './planner';

/** Asks a model for text (cfcd's Generate, collected into one string). */
export type Generate = (request: modelsV1.GenerateRequest, intentId: string) => Promise<string>;

export interface ModelPlannerOptions {
  /** `models/{model}` on cfcd; empty: not configured. */
  model: string;
  attempts: number;
  maxTokens: number;
}

const SYSTEM = `You plan tasks for Aether, a local substrate for AI agents. Answer with one JSON object and
nothing else: {"steps": [{"id": "...", "description": "...", "tool": "...", "arguments": {...},
"depends_on": ["..."], "outputs": ["..."]}]}.
- id: 1-64 characters of [a-z0-9_-], unique.
- tool: one of ${TOOLS.join(', ')}. No other tool exists.
- arguments: the JSON form of the tool's gRPC request (jobs.run: aether.jobs.v1.SubmitJobRequest, e.g.
  {"spec": {"argv": ["python3", "-c", "print(1)"], "network": "NETWORK_MODE_NONE", "resources":
  {"cpuMillicores": 1000, "memoryBytes": "536870912", "pidsMax": 256}, "timeout": "300s"}}; memory.add:
  aether.memory.v1.AddEntryRequest; memory.search: aether.memory.v1.SearchRequest).
- outputs a step may declare: ${Object.entries(TOOL_OUTPUTS)
  .map(([t, o]) => `${t}: ${o.join(', ')}`)
  .join('; ')}.
- A later step may use an earlier step's output in a string as \${steps.<id>.outputs.<name>} and must
  list that step in depends_on.
Use as few steps as the task needs.`;

function extractJson(text: string): unknown {
  const t = text.trim();
  const fenced = /^```(?:json)?\s*([\s\S]*?)\s*```$/.exec(t);
  return JSON.parse(fenced ? fenced[1]! : t);
}

/**
 * The model planner: asks cfcd's Generate for a plan as JSON, validates it against the plan schema
 * (known tools only, arguments that parse as the tool's request), and retries a bounded number of times
 * with the problems fed back; after the last attempt the intent fails with the reason.
 */
export class ModelPlanner {
  constructor(
    private readonly generate: Generate,
    private readonly o: ModelPlannerOptions,
  ) {}

  async plan(text: string, intentId: string, note: (message: string) => void): Promise<PlanOutcome> {
    if (!this.o.model)
      return {
        ok: false,
        reason: 'the model planner is not configured (aurora.modelPlanner.model is empty)',
      };
    let last = '';
    const messages = [
      modelsV1.ChatMessage.fromPartial({ role: modelsV1.ChatRole.CHAT_ROLE_SYSTEM, content: SYSTEM }),
      modelsV1.ChatMessage.fromPartial({ role: modelsV1.ChatRole.CHAT_ROLE_USER, content: text }),
    ];
    for (let attempt = 1; attempt <= this.o.attempts; attempt++) {
      let answer: string;
      try {
        answer = await this.generate(
          modelsV1.GenerateRequest.fromPartial({
            name: this.o.model,
            input: { $case: 'chat', value: { messages } },
            maxTokens: this.o.maxTokens,
            temperature: 0,
            jsonOutput: true,
          }),
          intentId,
        );
      } catch (err) {
        const e = RpcError.from(err);
        return {
          ok: false,
          reason: `the model planner could not ask ${this.o.model}: ${e.codeName}: ${e.message}`,
        };
      }
      let problems: string;
      try {
        const checked = validatePlan(extractJson(answer));
        if (checked.ok) return { ok: true, draft: { playbook: '', steps: checked.plan.steps } };
        problems = checked.problems.map((p) => `${p.path}: ${p.message}`).join('; ');
      } catch (err) {
        problems = `not JSON: ${(err as Error).message}`;
      }
      last = problems;
      note(`model plan attempt ${attempt} of ${this.o.attempts} is invalid: ${problems}`);
      messages.push(
        modelsV1.ChatMessage.fromPartial({ role: modelsV1.ChatRole.CHAT_ROLE_ASSISTANT, content: answer }),
        modelsV1.ChatMessage.fromPartial({
          role: modelsV1.ChatRole.CHAT_ROLE_USER,
          content: `That plan is invalid: ${problems}. Answer with a corrected JSON plan only.`,
        }),
      );
    }
    return {
      ok: false,
      reason: `the model planner gave no valid plan in ${this.o.attempts} attempt(s); the last was invalid: ${last}`,
    };
  }
}
