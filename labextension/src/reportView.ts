/**
 * A report in a main-area tab: the task's Markdown rendered by JupyterLab's own renderer, with
 * "Save as Markdown" and "Insert into notebook" in its toolbar.
 */
import { MainAreaWidget, ToolbarButton } from '@jupyterlab/apputils';
import { IRenderMimeRegistry, MimeModel } from '@jupyterlab/rendermime';
import { Widget } from '@lumino/widgets';

import { ResearchModel } from './model';
import { reportMarkdown } from './report';
import { ITaskInfo } from './types';

export namespace ReportView {
  export interface IOptions {
    taskId: string;
    model: ResearchModel;
    rendermime: IRenderMimeRegistry;
    save: (task: ITaskInfo) => Promise<void>;
    insert: (task: ITaskInfo) => Promise<void>;
  }
}

/** The rendered report; follows the model, so a running task's tab fills in when it ends. */
export class ReportContent extends Widget {
  constructor(private readonly _options: ReportView.IOptions) {
    super();
    this.addClass('jp-DeepResearch-report');
    this._renderer = _options.rendermime.createRenderer('text/markdown');
    this._renderer.addClass('jp-DeepResearch-reportBody');
    this.node.appendChild(this._renderer.node);
    _options.model.changed.connect(this._onModelChanged, this);
  }

  get task(): ITaskInfo | null {
    return this._task;
  }

  /** Load the task with its report (`GET tasks/{id}`) and render it. */
  async load(): Promise<void> {
    const { taskId, model } = this._options;
    const known = model.task(taskId);
    if (known) {
      await this._show(known); // at once, while the report is fetched
    }
    let task: ITaskInfo;
    try {
      task = await model.watch(taskId);
    } catch (error) {
      if (!known) {
        const why = (error as Error).message;
        await this._render(`*Could not load research task \`${taskId}\`: ${why}*`);
      }
      return;
    }
    await this._show(task);
  }

  dispose(): void {
    this._options.model.changed.disconnect(this._onModelChanged, this);
    this._renderer.dispose();
    super.dispose();
  }

  private _onModelChanged(): void {
    const { model, taskId } = this._options;
    const task = model.task(taskId);
    if (task && task !== this._task) {
      void this._show(task);
      const key = `${task.status}:${task.last_event_id}`;
      if (task.status === 'completed' && !task.result && key !== this._fetched) {
        // Finished as a list summary says: the report itself comes from GET tasks/{id}.
        this._fetched = key;
        void model.watch(taskId).catch(() => undefined);
      }
    }
  }

  private async _show(task: ITaskInfo): Promise<void> {
    const markdown = reportMarkdown(task);
    this._task = task;
    if (markdown === this._shown) {
      return;
    }
    await this._render(markdown);
  }

  private async _render(markdown: string): Promise<void> {
    this._shown = markdown;
    await this._renderer.renderModel(
      new MimeModel({ data: { 'text/markdown': markdown }, trusted: false })
    );
  }

  private _renderer: ReturnType<IRenderMimeRegistry['createRenderer']>;
  private _task: ITaskInfo | null = null;
  private _shown = '';
  private _fetched = '';
}

/** The tab: `ReportContent` in a `MainAreaWidget` with the toolbar buttons. */
export function createReportView(options: ReportView.IOptions): MainAreaWidget<ReportContent> {
  const content = new ReportContent(options);
  const widget = new MainAreaWidget({ content });
  widget.id = `deepresearch-report-${options.taskId}`;
  widget.title.label = 'Research report';
  widget.title.closable = true;
  widget.title.iconClass = 'jp-MaterialIcon jp-FileIcon';
  const withTask = (action: (task: ITaskInfo) => Promise<void>) => () => {
    if (content.task) {
      void action(content.task);
    }
  };
  widget.toolbar.addItem(
    'save',
    new ToolbarButton({
      className: 'jp-DeepResearch-save',
      label: 'Save as Markdown',
      tooltip: "Save the report as a Markdown file in the file browser's folder",
      onClick: withTask(options.save)
    })
  );
  widget.toolbar.addItem(
    'insert',
    new ToolbarButton({
      className: 'jp-DeepResearch-insert',
      label: 'Insert into notebook',
      tooltip: 'Add the report as a Markdown cell of the active notebook',
      onClick: withTask(options.insert)
    })
  );
  void content.load().then(() => {
    const query = String(content.task?.request.query ?? '');
    widget.title.label = query.length > 40 ? `${query.slice(0, 39)}…` : query || 'Research report';
    widget.title.caption = query;
  });
  return widget;
}
