/**
 * The wire shapes of the server extension's HTTP API (see DESIGN.md, "HTTP API" and "SSE").
 */

/** A task's status; `completed`, `failed` and `cancelled` are terminal. */
export type TaskStatus =
  | 'queued'
  | 'running'
  | 'paused'
  | 'completed'
  | 'failed'
  | 'cancelled';

export const STATUSES: ReadonlyArray<TaskStatus> = [
  'queued',
  'running',
  'paused',
  'completed',
  'failed',
  'cancelled'
];

/** An action the panel offers on a task. */
export type TaskAction = 'pause' | 'resume' | 'cancel' | 'restart' | 'delete';

/** One numbered source of a report. */
export interface ISource {
  id: number | string;
  title?: string;
  url?: string;
}

/** A completed task's result. */
export interface IResult {
  report: string;
  sources: ISource[];
  [key: string]: unknown;
}

/** `TaskInfo`: what every route returns for a task. */
export interface ITaskInfo {
  task_id: string;
  status: TaskStatus;
  step: string;
  percentage: number;
  message: string;
  created_at: string;
  updated_at: string;
  request: { query: string; [key: string]: unknown };
  last_event_id: number;
  attempts: number;
  owner?: string | null;
  result?: IResult | null;
  error?: string | null;
}

/** A research request (`POST tasks`): only `query` is required. */
export interface IResearchRequest {
  query: string;
  restart?: boolean;
  [key: string]: unknown;
}

/** One server-sent event of a task. */
export interface ITaskEvent {
  id: number;
  type: 'status' | 'progress' | 'output' | 'result' | string;
  data: { [key: string]: unknown };
}

/** Whether a status is final (the task runs no more unless resumed or restarted). */
export function isTerminal(status: TaskStatus): boolean {
  return status === 'completed' || status === 'failed' || status === 'cancelled';
}

/** The actions that make sense for a task in this status (as the server allows them). */
export function allowedActions(status: TaskStatus): TaskAction[] {
  switch (status) {
    case 'queued':
    case 'running':
      return ['pause', 'cancel', 'restart', 'delete'];
    case 'paused':
      return ['resume', 'cancel', 'restart', 'delete'];
    case 'failed':
    case 'cancelled':
      return ['resume', 'restart', 'delete'];
    case 'completed':
      return ['restart', 'delete'];
    default:
      return ['delete'];
  }
}

/** Actions that lose work, and so ask before they run. */
export function isDestructive(action: TaskAction): boolean {
  return action === 'restart' || action === 'delete';
}

/** A task with one event folded in (a new object; the input is not changed). */
export function applyEvent(task: ITaskInfo, event: ITaskEvent): ITaskInfo {
  const next: ITaskInfo = { ...task, last_event_id: Math.max(task.last_event_id, event.id) };
  const data = event.data;
  switch (event.type) {
    case 'status':
      next.status = data.status as TaskStatus;
      if (typeof data.error === 'string') {
        next.error = data.error;
      }
      break;
    case 'progress':
      if (typeof data.step === 'string') {
        next.step = data.step;
      }
      if (typeof data.percentage === 'number') {
        next.percentage = data.percentage;
      }
      if (typeof data.message === 'string') {
        next.message = data.message;
      }
      break;
    case 'result':
      next.result = data as unknown as IResult;
      break;
  }
  return next;
}
