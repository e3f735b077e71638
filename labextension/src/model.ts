/**
 * `ResearchModel`: the user's tasks as the panel shows them, kept live; no DOM.
 *
 * The server pages and filters (`GET tasks?status=&q=&limit=&offset=`, summaries without the
 * report); one list request per poll keeps the visible page, new tasks and status changes
 * current. Unfinished tasks are followed over SSE (a few at a time: browsers allow six
 * connections per host, which the rest of JupyterLab needs too), so their progress moves live.
 * Reports come from `GET tasks/{id}` (`watch`). A task seen unfinished that becomes completed
 * or failed is announced once through `taskFinished`.
 */
import { Debouncer, Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import type { IResearchAPI } from './api';
import {
  applyEvent,
  isTerminal,
  ITaskInfo,
  TaskAction,
  TaskStatus
} from './types';

/** The filter the panel shows: a status (or all) and text of the question. */
export interface IFilter {
  status: TaskStatus | '';
  text: string;
}

export namespace ResearchModel {
  export interface IOptions {
    api: IResearchAPI;
    /** Tasks per page (default 50). */
    pageSize?: number;
    /** At most this many unfinished tasks are followed over SSE at once (default 3). */
    maxStreams?: number;
    /** Seconds between list refreshes while Lab is visible (default 5; 0: no polling). */
    pollSeconds?: number;
    /** Milliseconds of no typing before the text filter is sent (default 300). */
    typingDelay?: number;
  }
}

export class ResearchModel {
  constructor(options: ResearchModel.IOptions) {
    this._api = options.api;
    this.pageSize = options.pageSize ?? 50;
    this._maxStreams = options.maxStreams ?? 3;
    this._typing = new Debouncer(() => this.refresh(), options.typingDelay ?? 300);
    const seconds = options.pollSeconds ?? 5;
    if (seconds > 0) {
      this._poll = new Poll({
        factory: () => this.refresh(),
        frequency: { interval: seconds * 1000, backoff: true, max: 60 * 1000 },
        standby: 'when-hidden',
        name: 'deepresearch:tasks'
      });
    }
  }

  readonly pageSize: number;

  /** Emitted whenever anything shown changes. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Emitted once when a task this model saw unfinished completes or fails. */
  get taskFinished(): ISignal<this, ITaskInfo> {
    return this._taskFinished;
  }

  get filter(): IFilter {
    return this._filter;
  }

  /** Zero-based page number. */
  get page(): number {
    return this._page;
  }

  /** How many pages the filtered tasks fill (at least 1). */
  get pageCount(): number {
    return Math.max(1, Math.ceil(this._total / this.pageSize));
  }

  get hasPreviousPage(): boolean {
    return this._page > 0;
  }

  get hasNextPage(): boolean {
    return (this._page + 1) * this.pageSize < this._total;
  }

  /** How many tasks match the filter, on every page. */
  get total(): number {
    return this._total;
  }

  /** Why the last refresh failed, or null. */
  get error(): string | null {
    return this._error;
  }

  /** True until the first refresh has answered. */
  get loading(): boolean {
    return this._loading;
  }

  /** The tasks on the current page, newest first. */
  get tasks(): ITaskInfo[] {
    return this._visible
      .map(id => this._tasks.get(id))
      .filter((task): task is ITaskInfo => task !== undefined);
  }

  /** A task this model knows, on the page or followed. */
  task(taskId: string): ITaskInfo | undefined {
    return this._tasks.get(taskId);
  }

  /** Ids of the tasks followed over SSE right now. */
  get streaming(): string[] {
    return [...this._streams.keys()];
  }

  /** Change the filter; typing in the text filter asks the server once the typing pauses. */
  setFilter(filter: Partial<IFilter>): Promise<void> {
    const textOnly = filter.status === undefined;
    this._filter = { ...this._filter, ...filter };
    this._page = 0;
    this._changed.emit();
    return textOnly ? this._typing.invoke() : this.refresh();
  }

  setPage(page: number): Promise<void> {
    this._page = Math.max(0, page);
    return this.refresh();
  }

  /** Fetch the current page (and every unfinished task seen before that is not on it). */
  async refresh(): Promise<void> {
    let page = await this._fetchPage();
    if (page && page.tasks.length === 0 && this._page > 0 && page.total > 0) {
      // The page emptied (tasks deleted or finished off the filter): show the last one.
      this._page = Math.ceil(page.total / this.pageSize) - 1;
      page = await this._fetchPage();
    }
    if (!page) {
      return;
    }
    this._total = page.total;
    this._visible = page.tasks.map(task => task.task_id);
    const listed = new Set(this._visible);
    for (const task of page.tasks) {
      this._update(task);
    }
    // Unfinished tasks off this page are fetched one by one, so none finishes unnoticed.
    const missing = [...this._tasks.values()].filter(
      task => !isTerminal(task.status) && !listed.has(task.task_id)
    );
    await Promise.all(missing.map(task => this._reload(task.task_id)));
    this._follow();
    this._changed.emit();
  }

  /**
   * The task with its report (`GET tasks/{id}`), kept current from then on even when it is on
   * no page (a report tab or a notebook output shows it).
   */
  async watch(taskId: string): Promise<ITaskInfo> {
    const task = await this._api.get(taskId);
    this._update(task);
    this._follow();
    this._changed.emit();
    return this._tasks.get(taskId) ?? task;
  }

  /** Start research on `query` (or attach to its task, as the kernel would). */
  async start(query: string): Promise<{ task: ITaskInfo; created: boolean }> {
    const result = await this._api.submit({ query });
    this._update(result.task);
    await this.refresh();
    return result;
  }

  /** Run a panel action on a task. */
  async act(taskId: string, action: TaskAction): Promise<void> {
    if (action === 'delete') {
      this._stop(taskId);
      await this._api.remove(taskId);
      this._tasks.delete(taskId);
      this._visible = this._visible.filter(id => id !== taskId);
    } else if (action === 'restart') {
      const task = this._tasks.get(taskId) ?? (await this._api.get(taskId));
      this._stop(taskId);
      const result = await this._api.submit({ ...task.request, restart: true });
      this._update(result.task);
    } else {
      this._update(await this._api.control(taskId, action));
    }
    await this.refresh();
  }

  /** Stop polling and streaming. */
  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._poll?.dispose();
    this._typing.dispose();
    for (const controller of this._streams.values()) {
      controller.abort();
    }
    this._streams.clear();
    Signal.clearData(this);
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  // -- internals ------------------------------------------------------------------------------

  /** One page of the list; null (and the error kept for the panel) if the server failed. */
  private async _fetchPage(): Promise<{ tasks: ITaskInfo[]; total: number } | null> {
    const { status, text } = this._filter;
    const request = this._api.list({
      status: status || undefined,
      q: text.trim() || undefined,
      limit: this.pageSize,
      offset: this._page * this.pageSize
    });
    this._pending = request;
    try {
      const page = await request;
      this._error = null;
      return this._pending === request ? page : null; // a newer filter's answer wins
    } catch (error) {
      this._error = `Could not load research tasks: ${(error as Error).message}`;
      this._changed.emit();
      throw error;
    } finally {
      this._loading = false;
    }
  }

  /** Take a fresher view of a task; announce it if it just finished. */
  private _update(task: ITaskInfo): void {
    const before = this._tasks.get(task.task_id);
    if (before && before.last_event_id > task.last_event_id && !isTerminal(task.status)) {
      return; // an older answer than the events already applied
    }
    if (!task.result && before?.result && task.status === 'completed') {
      task = { ...task, result: before.result }; // list items are summaries, without it
    }
    this._tasks.set(task.task_id, task);
    if (!before || isTerminal(before.status) || !isTerminal(task.status)) {
      return;
    }
    if (
      (task.status === 'completed' || task.status === 'failed') &&
      !this._announced.has(`${task.task_id}:${task.last_event_id}`)
    ) {
      this._announced.add(`${task.task_id}:${task.last_event_id}`);
      this._taskFinished.emit(task);
    }
  }

  private async _reload(taskId: string): Promise<void> {
    try {
      this._update(await this._api.get(taskId));
    } catch {
      this._tasks.delete(taskId); // deleted elsewhere: stop caring about it
      this._stop(taskId);
    }
  }

  /** Follow the newest unfinished tasks over SSE, up to the limit. */
  private _follow(): void {
    if (this._disposed) {
      return;
    }
    const unfinished = [...this._tasks.values()]
      .filter(task => !isTerminal(task.status) && task.status !== 'paused')
      .sort((a, b) => b.created_at.localeCompare(a.created_at));
    for (const task of unfinished) {
      if (this._streams.size >= this._maxStreams) {
        break;
      }
      if (!this._streams.has(task.task_id)) {
        this._stream(task);
      }
    }
  }

  private _stream(task: ITaskInfo): void {
    const taskId = task.task_id;
    const controller = new AbortController();
    this._streams.set(taskId, controller);
    const onEvent = (event: { id: number; type: string; data: { [key: string]: unknown } }) => {
      const current = this._tasks.get(taskId);
      if (current) {
        this._update(applyEvent(current, event));
        this._changed.emit();
      }
    };
    this._api
      .follow(taskId, task.last_event_id, onEvent, controller.signal)
      .catch(() => undefined) // the next poll shows the task's state either way
      .then(async () => {
        if (this._streams.get(taskId) !== controller) {
          return;
        }
        this._streams.delete(taskId);
        if (!controller.signal.aborted && !this._disposed) {
          await this._reload(taskId); // the final TaskInfo (attempts, result)
          this._follow();
          this._changed.emit();
        }
      });
  }

  private _stop(taskId: string): void {
    this._streams.get(taskId)?.abort();
    this._streams.delete(taskId);
  }

  private _api: IResearchAPI;
  private _poll: Poll | null = null;
  private _typing: Debouncer;
  private _maxStreams: number;
  private _filter: IFilter = { status: '', text: '' };
  private _page = 0;
  private _total = 0;
  private _pending: Promise<unknown> | null = null;
  private _error: string | null = null;
  private _loading = true;
  private _disposed = false;
  private _tasks = new Map<string, ITaskInfo>();
  private _visible: string[] = [];
  private _streams = new Map<string, AbortController>();
  private _announced = new Set<string>();
  private _changed = new Signal<this, void>(this);
  private _taskFinished = new Signal<this, ITaskInfo>(this);
}
