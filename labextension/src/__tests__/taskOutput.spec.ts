/**
 * The notebook output of a research task: the kernel's widget while it has a view, else the
 * task from the server (`GET tasks/{id}`), else the Markdown saved with the output.
 */
import { IRenderMime, MimeModel } from '@jupyterlab/rendermime';
import { Panel, Widget } from '@lumino/widgets';

import { IListOptions, IResearchAPI, ITaskPage } from '../api';
import { ResearchModel } from '../model';
import { TASK_MIME, TaskOutput, taskOutputFactory, WIDGET_VIEW_MIME } from '../taskOutput';
import { ITaskInfo } from '../types';

const TASK_ID = 'ab'.repeat(16);
const SAVED = '**Research** saved while running';

class FakeAPI implements IResearchAPI {
  task: ITaskInfo | null = null;
  gets = 0;
  async list(_: IListOptions = {}): Promise<ITaskPage> {
    return { tasks: [], total: 0 };
  }
  async get(taskId: string): Promise<ITaskInfo> {
    this.gets++;
    if (!this.task || taskId !== this.task.task_id) {
      throw Object.assign(new Error('not found'), { response: { status: 404 } });
    }
    return this.task;
  }
  submit(): never {
    throw new Error('unused');
  }
  control(): never {
    throw new Error('unused');
  }
  async remove(): Promise<void> {}
  follow(): Promise<void> {
    return new Promise(() => undefined);
  }
}

/** Renders Markdown as its text. */
class TextRenderer extends Widget implements IRenderMime.IRenderer {
  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    this.node.textContent = String(model.data['text/markdown']);
  }
}

/** The widget renderer: a view when the model exists, else its error text. */
class FakeWidgetRenderer extends Panel implements IRenderMime.IRenderer {
  constructor(private readonly _modelExists: boolean) {
    super();
  }
  view = new Widget();
  async renderModel(): Promise<void> {
    if (this._modelExists) {
      this.view.node.textContent = 'the live widget';
      this.addWidget(this.view);
    } else {
      this.node.textContent = 'Error displaying widget: model not found';
    }
  }
}

function completed(): ITaskInfo {
  return {
    task_id: TASK_ID,
    status: 'completed',
    step: 'report',
    percentage: 100,
    message: 'Report written',
    created_at: '2024-01-01T00:00:00Z',
    updated_at: '2024-01-01T00:00:00Z',
    request: { query: 'How do generators work?' },
    last_event_id: 9,
    attempts: 1,
    result: { report: '# Generators\n\nThey yield.', sources: [] }
  };
}

function bundle(trusted = true): MimeModel {
  return new MimeModel({
    trusted,
    data: {
      'text/plain': '<ResearchTask>',
      'text/markdown': SAVED,
      [WIDGET_VIEW_MIME]: { version_major: 2, version_minor: 0, model_id: 'm1' },
      [TASK_MIME]: { task_id: TASK_ID, query: 'How do generators work?' }
    }
  });
}

describe('TaskOutput', () => {
  let api: FakeAPI;
  let model: ResearchModel;
  let output: TaskOutput;

  function render(widget: FakeWidgetRenderer | null): TaskOutput {
    const factory = taskOutputFactory({
      model,
      markdown: () => new TextRenderer(),
      widgetRenderer: () => widget,
      openReport: () => undefined
    });
    expect(factory.defaultRank).toBeLessThan(-10); // ahead of the widget renderer
    const options = { mimeType: TASK_MIME } as IRenderMime.IRendererOptions;
    return factory.createRenderer(options) as TaskOutput;
  }

  function visibleText(): string {
    return Array.from(output.children())
      .filter(child => !child.isHidden)
      .map(child => child.node.textContent)
      .join(' ');
  }

  beforeEach(() => {
    api = new FakeAPI();
    model = new ResearchModel({ api, pollSeconds: 0, maxStreams: 0 });
  });

  afterEach(() => {
    output?.dispose();
    model.dispose();
  });

  it('shows the live widget while its model exists', async () => {
    api.task = completed();
    output = render(new FakeWidgetRenderer(true));
    await output.renderModel(bundle());
    expect(output.showsWidget).toBe(true);
    expect(visibleText()).toBe('the live widget');
    expect(api.gets).toBe(0);
  });

  it('gives way to the server when the kernel restarts under the widget', async () => {
    api.task = completed();
    const widget = new FakeWidgetRenderer(true);
    output = render(widget);
    await output.renderModel(bundle());
    expect(output.showsWidget).toBe(true);
    widget.view.addClass('jupyter-widgets-disconnected'); // as ipywidgets does on a restart
    await new Promise(resolve => setTimeout(resolve, 0));
    expect(output.showsWidget).toBe(false);
    expect(visibleText()).toContain('They yield.');
  });

  it('shows the task from the server where the widget model is gone', async () => {
    api.task = completed();
    output = render(new FakeWidgetRenderer(false));
    await output.renderModel(bundle());
    await new Promise(resolve => setTimeout(resolve, 0));
    expect(output.showsWidget).toBe(false);
    const text = visibleText();
    expect(text).not.toContain('Error displaying widget');
    expect(text).toContain('completed');
    expect(text).toContain('They yield.');
    expect(api.gets).toBe(1);
  });

  it('shows the saved Markdown, and why, when the server has no such task', async () => {
    output = render(new FakeWidgetRenderer(false));
    await output.renderModel(bundle());
    await new Promise(resolve => setTimeout(resolve, 0));
    const text = visibleText();
    expect(text).toContain(SAVED);
    expect(text).toContain(`This server has no research task ${TASK_ID}`);
    expect(text).not.toContain('Error displaying widget');
  });

  it('never asks for the widget of an untrusted output', async () => {
    api.task = completed();
    const widget = new FakeWidgetRenderer(true);
    output = render(widget);
    await output.renderModel(bundle(false));
    await new Promise(resolve => setTimeout(resolve, 0));
    expect(widget.widgets).toHaveLength(0);
    expect(visibleText()).toContain('They yield.');
  });
});
