/**
 * The server extension's HTTP API, reached through `ServerConnection` so that base URL, token,
 * XSRF and JupyterHub prefixes work as in every Jupyter front end.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { createParser } from 'eventsource-parser';

import { IResearchRequest, ITaskEvent, ITaskInfo, TaskStatus } from './types';

/** Which tasks `GET tasks` returns: filtered by status and question text, one page of them. */
export interface IListOptions {
  status?: TaskStatus;
  /** Case-insensitive text the task's question must contain (the server's `q`). */
  q?: string;
  limit?: number;
  /** How many of the filtered, newest-first tasks to skip. */
  offset?: number;
}

/** One page of tasks (summaries: no `result`) and how many match the filter in all. */
export interface ITaskPage {
  tasks: ITaskInfo[];
  total: number;
}

/** What the model needs from the server; tests give it an in-memory one. */
export interface IResearchAPI {
  /** A page of task summaries, newest first. */
  list(options?: IListOptions): Promise<ITaskPage>;
  /** One task, with its `result` once completed. */
  get(taskId: string): Promise<ITaskInfo>;
  /** Create the request's task or attach to it (201 or 200). */
  submit(request: IResearchRequest): Promise<{ task: ITaskInfo; created: boolean }>;
  /** Pause, resume or cancel. */
  control(taskId: string, action: 'pause' | 'resume' | 'cancel'): Promise<ITaskInfo>;
  /** Stop the task and remove it from storage. */
  remove(taskId: string): Promise<void>;
  /**
   * Call `onEvent` for every event with id > `after`, live, until the task is terminal and
   * everything is sent (the promise then resolves) or `signal` aborts.
   */
  follow(
    taskId: string,
    after: number,
    onEvent: (event: ITaskEvent) => void,
    signal: AbortSignal
  ): Promise<void>;
}

const NAMESPACE = 'api/deepresearch';

/** `IResearchAPI` over HTTP. */
export class ResearchAPI implements IResearchAPI {
  constructor(
    readonly settings: ServerConnection.ISettings = ServerConnection.makeSettings()
  ) {}

  async list(options: IListOptions = {}): Promise<ITaskPage> {
    const query: { [key: string]: string } = {};
    if (options.status) {
      query.status = options.status;
    }
    if (options.q) {
      query.q = options.q;
    }
    if (options.limit) {
      query.limit = String(options.limit);
    }
    if (options.offset) {
      query.offset = String(options.offset);
    }
    const search = URLExt.objectToQueryString(query);
    const data = await this._json<{ tasks: ITaskInfo[]; total?: number }>(`tasks${search}`);
    // A server from before paging sends no total: what it sent is all there is.
    const total = data.total ?? (options.offset ?? 0) + data.tasks.length;
    return { tasks: data.tasks, total };
  }

  get(taskId: string): Promise<ITaskInfo> {
    return this._json<ITaskInfo>(`tasks/${taskId}`);
  }

  async submit(request: IResearchRequest): Promise<{ task: ITaskInfo; created: boolean }> {
    const response = await this._request('tasks', {
      method: 'POST',
      body: JSON.stringify(request)
    });
    return { task: await response.json(), created: response.status === 201 };
  }

  control(taskId: string, action: 'pause' | 'resume' | 'cancel'): Promise<ITaskInfo> {
    return this._json<ITaskInfo>(`tasks/${taskId}/${action}`, { method: 'POST' });
  }

  async remove(taskId: string): Promise<void> {
    await this._request(`tasks/${taskId}`, { method: 'DELETE' });
  }

  async follow(
    taskId: string,
    after: number,
    onEvent: (event: ITaskEvent) => void,
    signal: AbortSignal
  ): Promise<void> {
    let last = after;
    // Reconnects after a dropped connection with the newest id, as an EventSource would.
    for (let attempt = 0; !signal.aborted; attempt++) {
      try {
        const done = await this._stream(taskId, last, signal, event => {
          last = event.id;
          attempt = 0;
          onEvent(event);
        });
        if (done) {
          return;
        }
      } catch (error) {
        if (signal.aborted) {
          return;
        }
        if (error instanceof ServerConnection.ResponseError && error.response.status < 500) {
          throw error; // 404 (deleted) or 403: reconnecting cannot help
        }
      }
      await sleep(Math.min(30000, 1000 * 2 ** Math.min(attempt, 5)), signal);
    }
  }

  /** One connection: true when the server ended the stream (terminal task), false if cut. */
  private async _stream(
    taskId: string,
    after: number,
    signal: AbortSignal,
    onEvent: (event: ITaskEvent) => void
  ): Promise<boolean> {
    const response = await this._request(`tasks/${taskId}/events?after=${after}`, {
      headers: { Accept: 'text/event-stream' },
      signal
    });
    if (response.status === 204 || !response.body) {
      return true; // nothing left to receive from a terminal task
    }
    const parser = createParser({
      onEvent: message => {
        const id = Number(message.id);
        if (Number.isInteger(id)) {
          onEvent({ id, type: message.event ?? 'message', data: JSON.parse(message.data) });
        }
      }
    });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        return true;
      }
      parser.feed(value);
    }
  }

  private async _json<T>(path: string, init: RequestInit = {}): Promise<T> {
    const response = await this._request(path, init);
    return (await response.json()) as T;
  }

  private async _request(path: string, init: RequestInit): Promise<Response> {
    const url = URLExt.join(this.settings.baseUrl, NAMESPACE, path);
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(url, init, this.settings);
    } catch (error) {
      throw new ServerConnection.NetworkError(error as TypeError);
    }
    if (!response.ok) {
      let message = response.statusText;
      try {
        message = (await response.json()).message ?? message;
      } catch {
        // not JSON (a proxy's page): keep the status text
      }
      throw new ServerConnection.ResponseError(response, message);
    }
    return response;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise(resolve => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
