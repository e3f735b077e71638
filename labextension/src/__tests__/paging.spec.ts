/**
 * The model and `ResearchAPI` together against `GET tasks` as the server pages and filters it,
 * with `fetch` replaced at the `ServerConnection` level (every request is seen as a URL).
 */
import { ServerConnection } from '@jupyterlab/services';

import { ResearchAPI } from '../api';
import { ResearchModel } from '../model';
import { ITaskInfo, TaskStatus } from '../types';

const BASE = 'http://localhost:8888/';

/** `GET tasks` and `GET tasks/{id}` of the server extension, over a list of tasks in memory. */
class FakeServer {
  tasks: ITaskInfo[] = [];
  requests: string[] = [];
  /** A server from before paging: ignores offset and q, sends no total. */
  old = false;
  /** Answer every request with this 503 message. */
  failure = '';

  add(n: number, status: TaskStatus = 'completed', query = `question ${n}`): ITaskInfo {
    const time = new Date(Date.UTC(2024, 0, 1, 0, 0, n)).toISOString();
    const task: ITaskInfo = {
      task_id: n.toString(16).padStart(32, '0'),
      status,
      step: '',
      percentage: status === 'completed' ? 100 : 0,
      message: '',
      created_at: time,
      updated_at: time,
      request: { query },
      last_event_id: 1,
      attempts: 1,
      result: status === 'completed' ? { report: `report ${n}`, sources: [] } : null
    };
    this.tasks.push(task);
    return task;
  }

  fetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const request = new Request(input, init);
    const url = new URL(request.url);
    for (const key of [...url.searchParams.keys()]) {
      if (/^\d+$/.test(key)) {
        url.searchParams.delete(key); // ServerConnection's cache buster
      }
    }
    const path = url.pathname.replace('/api/deepresearch/', '');
    this.requests.push(`${request.method} ${path}${url.search}`);
    if (this.failure) {
      return json({ message: this.failure }, 503);
    }
    if (path === 'tasks') {
      return json(this._list(url.searchParams));
    }
    const task = this.tasks.find(t => `tasks/${t.task_id}` === path);
    return task ? json(task) : json({ message: `No task ${path}` }, 404);
  };

  /** The requests for the list, as path and query. */
  get listRequests(): string[] {
    return this.requests.filter(r => r.startsWith('GET tasks?') || r === 'GET tasks');
  }

  private _list(params: URLSearchParams): object {
    const status = params.get('status');
    const q = this.old ? '' : (params.get('q') ?? '').toLowerCase();
    const matching = this.tasks
      .filter(task => !status || task.status === status)
      .filter(task => task.request.query.toLowerCase().includes(q))
      .sort((a, b) => b.created_at.localeCompare(a.created_at))
      .map(({ result, ...summary }) => summary); // list items are summaries
    const offset = this.old ? 0 : Number(params.get('offset') ?? 0);
    const limit = Number(params.get('limit') ?? matching.length);
    const tasks = matching.slice(offset, offset + limit);
    return this.old ? { tasks } : { tasks, total: matching.length };
  }
}

function json(body: object, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'Content-Type': 'application/json' }
  });
}

describe('ResearchModel paging through the server', () => {
  let server: FakeServer;
  let model: ResearchModel;

  function newModel(options: Partial<ResearchModel.IOptions> = {}): ResearchModel {
    const settings = ServerConnection.makeSettings({ baseUrl: BASE, fetch: server.fetch });
    return new ResearchModel({
      api: new ResearchAPI(settings),
      pollSeconds: 0,
      maxStreams: 0,
      ...options
    });
  }

  beforeEach(() => {
    server = new FakeServer();
  });

  afterEach(() => {
    model?.dispose();
  });

  it('asks for one page of 50 at a time and counts every matching task', async () => {
    for (let n = 1; n <= 120; n++) {
      server.add(n);
    }
    model = newModel();
    await model.refresh();
    expect(server.listRequests).toEqual(['GET tasks?limit=50']);
    expect(model.tasks).toHaveLength(50);
    expect(model.tasks[0].request.query).toBe('question 120');
    expect([model.total, model.pageCount, model.hasPreviousPage, model.hasNextPage]).toEqual([
      120,
      3,
      false,
      true
    ]);

    await model.setPage(1);
    expect(server.listRequests[1]).toBe('GET tasks?limit=50&offset=50');
    expect(model.tasks[0].request.query).toBe('question 70');

    await model.setPage(2);
    expect(server.listRequests[2]).toBe('GET tasks?limit=50&offset=100');
    expect(model.tasks.map(t => t.request.query)).toEqual(
      Array.from({ length: 20 }, (_, i) => `question ${20 - i}`)
    );
    expect([model.hasPreviousPage, model.hasNextPage]).toEqual([true, false]);
  });

  it('sends the status filter and, once typing pauses, the text as q', async () => {
    server.add(1, 'completed', 'How do generators work?');
    server.add(2, 'failed', 'Why did the generator fail?');
    server.add(3, 'completed', 'What is a coroutine?');
    model = newModel({ typingDelay: 50 });
    await model.setFilter({ status: 'completed' });
    expect(server.listRequests).toEqual(['GET tasks?status=completed&limit=50']);

    void model.setFilter({ text: 'g' });
    void model.setFilter({ text: 'gen' });
    await model.setFilter({ text: 'GENERATORS' });
    expect(server.listRequests.slice(1)).toEqual([
      'GET tasks?status=completed&q=GENERATORS&limit=50'
    ]);
    expect(model.tasks.map(t => t.request.query)).toEqual(['How do generators work?']);
    expect(model.total).toBe(1);

    await model.setFilter({ status: '' });
    expect(server.listRequests[2]).toBe('GET tasks?q=GENERATORS&limit=50');
  });

  it('starts a new filter on its first page', async () => {
    for (let n = 1; n <= 60; n++) {
      server.add(n, 'completed', n % 2 ? `odd ${n}` : `even ${n}`);
    }
    model = newModel({ typingDelay: 0 });
    await model.refresh();
    await model.setPage(1);
    await model.setFilter({ text: 'odd' });
    expect(model.page).toBe(0);
    expect(server.listRequests[server.listRequests.length - 1]).toBe('GET tasks?q=odd&limit=50');
    expect([model.total, model.pageCount]).toEqual([30, 1]);
  });

  it('fetches a report with GET tasks/{id} and keeps it when the list refreshes', async () => {
    const task = server.add(1, 'completed', 'How do generators work?');
    model = newModel();
    await model.refresh();
    expect(model.task(task.task_id)!.result).toBeUndefined();

    const full = await model.watch(task.task_id);
    expect(server.requests[server.requests.length - 1]).toBe(`GET tasks/${task.task_id}`);
    expect(full.result!.report).toBe('report 1');

    await model.refresh();
    expect(model.task(task.task_id)!.result!.report).toBe('report 1');
  });

  it('goes back to the last page when the one shown has emptied', async () => {
    for (let n = 1; n <= 51; n++) {
      server.add(n);
    }
    model = newModel();
    await model.setPage(1);
    expect(model.tasks).toHaveLength(1);
    server.tasks.splice(0, 1); // the oldest task, alone on page 2, is deleted elsewhere
    await model.refresh();
    expect(model.page).toBe(0);
    expect(model.tasks).toHaveLength(50);
    expect(model.hasNextPage).toBe(false);
  });

  it('counts what a server from before paging sends', async () => {
    server.old = true;
    for (let n = 1; n <= 3; n++) {
      server.add(n);
    }
    model = newModel();
    await model.refresh();
    expect([model.tasks.length, model.total, model.hasNextPage]).toEqual([3, 3, false]);
  });

  it('keeps the server error for the panel', async () => {
    model = newModel();
    server.failure = 'The task store is unavailable.';
    await expect(model.refresh()).rejects.toThrow('unavailable');
    expect(model.error).toContain('The task store is unavailable.');
  });
});
