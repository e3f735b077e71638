import { IListOptions, IResearchAPI, ITaskPage } from '../api';
import { ResearchModel } from '../model';
import { IResearchRequest, ITaskEvent, ITaskInfo, TaskStatus } from '../types';

/** An in-memory server: tasks by id, streams the test drives by hand. */
class FakeAPI implements IResearchAPI {
  tasks = new Map<string, ITaskInfo>();
  calls: string[] = [];
  listed: IListOptions[] = [];
  streams = new Map<string, { emit: (event: ITaskEvent) => void; end: () => void }>();

  add(n: number, status: TaskStatus = 'completed', query = `question ${n}`): ITaskInfo {
    const task: ITaskInfo = {
      task_id: n.toString(16).padStart(32, '0'),
      status,
      step: '',
      percentage: status === 'completed' ? 100 : 0,
      message: '',
      created_at: new Date(Date.UTC(2024, 0, 1, 0, 0, n)).toISOString(),
      updated_at: new Date(Date.UTC(2024, 0, 1, 0, 0, n)).toISOString(),
      request: { query, ai: { provider: 'extractive' } },
      last_event_id: 1,
      attempts: 1,
      result: status === 'completed' ? { report: `report ${n}`, sources: [] } : null
    };
    this.tasks.set(task.task_id, task);
    return task;
  }

  set(taskId: string, change: Partial<ITaskInfo>): void {
    this.tasks.set(taskId, { ...this.tasks.get(taskId)!, ...change });
  }

  async list(options: IListOptions = {}): Promise<ITaskPage> {
    this.listed.push(options);
    const q = (options.q ?? '').toLowerCase();
    const all = [...this.tasks.values()]
      .filter(task => !options.status || task.status === options.status)
      .filter(task => task.request.query.toLowerCase().includes(q))
      .sort((a, b) => b.created_at.localeCompare(a.created_at))
      .map(({ result, ...summary }) => summary);
    const offset = options.offset ?? 0;
    return { tasks: all.slice(offset, offset + (options.limit ?? all.length)), total: all.length };
  }

  async get(taskId: string): Promise<ITaskInfo> {
    const task = this.tasks.get(taskId);
    if (!task) {
      throw new Error('404');
    }
    return task;
  }

  async submit(request: IResearchRequest): Promise<{ task: ITaskInfo; created: boolean }> {
    this.calls.push(`submit ${JSON.stringify(request)}`);
    const existing = [...this.tasks.values()].find(t => t.request.query === request.query);
    if (existing) {
      this.set(existing.task_id, { status: request.restart ? 'queued' : existing.status });
      return { task: this.tasks.get(existing.task_id)!, created: false };
    }
    return { task: this.add(this.tasks.size + 100, 'queued', request.query), created: true };
  }

  async control(taskId: string, action: 'pause' | 'resume' | 'cancel'): Promise<ITaskInfo> {
    this.calls.push(`${action} ${taskId}`);
    const status = { pause: 'paused', resume: 'running', cancel: 'cancelled' }[action];
    this.set(taskId, { status: status as TaskStatus });
    return this.tasks.get(taskId)!;
  }

  async remove(taskId: string): Promise<void> {
    this.calls.push(`delete ${taskId}`);
    this.tasks.delete(taskId);
  }

  follow(
    taskId: string,
    after: number,
    onEvent: (event: ITaskEvent) => void,
    signal: AbortSignal
  ): Promise<void> {
    return new Promise(resolve => {
      this.streams.set(taskId, { emit: onEvent, end: resolve });
      signal.addEventListener('abort', () => resolve());
    });
  }
}

function newModel(api: FakeAPI, options: Partial<ResearchModel.IOptions> = {}): ResearchModel {
  return new ResearchModel({ api, pageSize: 3, pollSeconds: 0, ...options });
}

describe('ResearchModel', () => {
  let api: FakeAPI;
  let model: ResearchModel;

  beforeEach(() => {
    api = new FakeAPI();
  });

  afterEach(() => {
    model?.dispose();
  });

  it('shows the newest tasks first, one page at a time', async () => {
    for (let n = 1; n <= 7; n++) {
      api.add(n);
    }
    model = newModel(api);
    await model.refresh();
    expect(model.tasks.map(t => t.request.query)).toEqual([
      'question 7',
      'question 6',
      'question 5'
    ]);
    expect(model.hasNextPage).toBe(true);
    await model.setPage(2);
    expect(model.tasks.map(t => t.request.query)).toEqual(['question 1']);
    expect(model.hasNextPage).toBe(false);
  });

  it('sends the status and the question text to the server as its filter', async () => {
    api.add(1, 'completed', 'How do generators work?');
    api.add(2, 'failed', 'How does asyncio cancel a task?');
    api.add(3, 'completed', 'What is a coroutine?');
    model = newModel(api, { typingDelay: 0 });
    await model.setFilter({ status: 'completed' });
    expect(api.listed[api.listed.length - 1]).toEqual({ status: 'completed', limit: 3, offset: 0 });
    expect(model.tasks.map(t => t.status)).toEqual(['completed', 'completed']);
    await model.setFilter({ status: '', text: '  CANCEL a ' });
    expect(api.listed[api.listed.length - 1].q).toBe('CANCEL a');
    expect(model.tasks.map(t => t.request.query)).toEqual(['How does asyncio cancel a task?']);
    expect(model.total).toBe(1);
  });

  it('moves status, step and progress live from the event stream', async () => {
    const task = api.add(1, 'running');
    model = newModel(api);
    await model.refresh();
    expect(model.streaming).toEqual([task.task_id]);
    let changes = 0;
    model.changed.connect(() => changes++);
    api.streams.get(task.task_id)!.emit({
      id: 2,
      type: 'progress',
      data: { step: 'search', percentage: 60, message: 'Searching: generators' }
    });
    const shown = model.task(task.task_id)!;
    expect([shown.step, shown.percentage, shown.message]).toEqual([
      'search',
      60,
      'Searching: generators'
    ]);
    expect(changes).toBe(1);
    api.streams.get(task.task_id)!.emit({ id: 3, type: 'status', data: { status: 'paused' } });
    expect(model.task(task.task_id)!.status).toBe('paused');
  });

  it('announces a followed task that completes, once', async () => {
    const task = api.add(1, 'running');
    api.add(2, 'completed'); // finished before the model saw it: never announced
    model = newModel(api);
    const finished: string[] = [];
    model.taskFinished.connect((_, info) => finished.push(`${info.task_id}:${info.status}`));
    await model.refresh();
    api.streams.get(task.task_id)!.emit({ id: 2, type: 'status', data: { status: 'completed' } });
    api.set(task.task_id, { status: 'completed', last_event_id: 2 });
    api.streams.get(task.task_id)!.end();
    await model.refresh();
    await model.refresh();
    expect(finished).toEqual([`${task.task_id}:completed`]);
  });

  it('notices a task off the current page that fails', async () => {
    const early = api.add(1, 'running');
    for (let n = 2; n <= 5; n++) {
      api.add(n);
    }
    model = newModel(api, { maxStreams: 0 });
    const finished: string[] = [];
    model.taskFinished.connect((_, info) => finished.push(info.status));
    await model.setPage(1); // the running task is on page 2 of 2
    await model.setPage(0);
    api.set(early.task_id, { status: 'failed', error: 'boom', last_event_id: 5 });
    await model.refresh();
    expect(finished).toEqual(['failed']);
  });

  it('follows at most maxStreams unfinished tasks at once, newest first', async () => {
    const tasks = [1, 2, 3, 4].map(n => api.add(n, 'running'));
    model = newModel(api, { maxStreams: 2 });
    await model.refresh();
    expect(model.streaming.sort()).toEqual([tasks[3].task_id, tasks[2].task_id].sort());
    api.set(tasks[3].task_id, { status: 'completed' });
    api.streams.get(tasks[3].task_id)!.end();
    await new Promise(resolve => setTimeout(resolve, 0));
    await model.refresh();
    expect(model.streaming).toContain(tasks[1].task_id);
    expect(model.streaming).not.toContain(tasks[3].task_id);
  });

  it('runs the panel actions through the API', async () => {
    const task = api.add(1, 'running', 'How do generators work?');
    model = newModel(api);
    await model.refresh();
    await model.act(task.task_id, 'pause');
    expect(model.task(task.task_id)!.status).toBe('paused');
    await model.act(task.task_id, 'restart');
    expect(api.calls).toContain(
      `submit ${JSON.stringify({ ...task.request, restart: true })}`
    );
    await model.act(task.task_id, 'delete');
    expect(api.calls).toContain(`delete ${task.task_id}`);
    expect(model.tasks).toEqual([]);
  });

  it('starts research with the same create-or-attach rule as the kernel', async () => {
    model = newModel(api);
    const first = await model.start('What is a coroutine?');
    const again = await model.start('What is a coroutine?');
    expect(first.created).toBe(true);
    expect(again.created).toBe(false);
    expect(again.task.task_id).toBe(first.task.task_id);
    expect(model.tasks.map(t => t.request.query)).toEqual(['What is a coroutine?']);
  });

  it('keeps the error of a failed refresh for the panel', async () => {
    model = newModel(api);
    api.list = () => Promise.reject(new Error('503 store unavailable'));
    await expect(model.refresh()).rejects.toThrow('503');
    expect(model.error).toContain('503 store unavailable');
  });
});
