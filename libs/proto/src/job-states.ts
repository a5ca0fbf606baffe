import { JobState } from './gen/aether/jobs/v1/jobs';

/** The job states a job never leaves (the contract's terminal states). */
export const TERMINAL_JOB_STATES: ReadonlySet<JobState> = new Set([
  JobState.JOB_STATE_SUCCEEDED,
  JobState.JOB_STATE_FAILED,
  JobState.JOB_STATE_STOPPED,
  JobState.JOB_STATE_KILLED,
  JobState.JOB_STATE_OOM_KILLED,
  JobState.JOB_STATE_TIMED_OUT,
  JobState.JOB_STATE_START_FAILED,
  JobState.JOB_STATE_LOST,
  JobState.JOB_STATE_CANCELLED,
]);

export function isTerminalJobState(state: JobState): boolean {
  return TERMINAL_JOB_STATES.has(state);
}
