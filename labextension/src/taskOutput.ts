/**
 * A notebook output that shows a research task: the kernel's live widget while its model
 * exists, else the task as the server has it now, else the Markdown saved with the output.
 *
 * JupyterLab's widget renderer has no fallback: where the widget's model is gone (the kernel
 * restarted, the notebook was reopened elsewhere) it shows "Error displaying widget: model not
 * found", and rendermime never tries the bundle's next type. The kernel therefore puts
 * `TASK_MIME` (the task's id) beside the widget view, and this renderer, ranked above the
 * widget renderer, decides what to show.
 */
import { IRenderMime, MimeModel } from '@jupyterlab/rendermime';
import { Panel, Widget } from '@lumino/widgets';

import { ResearchModel } from './model';
import { reportMarkdown } from './report';
import { allowedActions, ITaskInfo, TaskAction } from './types';

/** What the kernel's research widget puts in its output beside the widget view. */
export const TASK_MIME = 'application/vnd.jupyter-deepresearch.task+json';
export const WIDGET_VIEW_MIME = 'application/vnd.jupyter.widget-view+json';
/** Ahead of the widget renderer (rank -10), so that this renderer chooses. */
export const TASK_OUTPUT_RANK = -20;

const TASK_ID = /^[0-9a-f]{32}$/;
const OUTPUT_ACTIONS: TaskAction[] = ['pause', 'resume', 'cancel'];

export namespace TaskOutput {
  export interface IOptions {
    model: ResearchModel;
    /** A Markdown renderer (JupyterLab's own, sanitizing untrusted text). */
    markdown: () => IRenderMime.IRenderer;
    /**
     * The widget renderer of the notebook this output belongs to (found by its resolver), or
     * null where there is none (a console, no widget manager).
     */
    widgetRenderer: (options: IRenderMime.IRendererOptions) => IRenderMime.IRenderer | null;
    openReport: (taskId: string) => void;
  }
}

/** The rendermime factory for `TASK_MIME`. */
export function taskOutputFactory(options: TaskOutput.IOptions): IRenderMime.IRendererFactory {
  return {
    // It shows only the user's own tasks from their own server, through the sanitizing
    // Markdown renderer, so untrusted notebooks (opened on another machine) get it too.
    safe: true,
    mimeTypes: [TASK_MIME],
    defaultRank: TASK_OUTPUT_RANK,
    createRenderer: rendererOptions => new TaskOutput(options, rendererOptions)
  };
}

/** The renderer: a panel holding the widget view and the server's view, one of them shown. */
export class TaskOutput extends Panel implements IRenderMime.IRenderer {
  constructor(
    private readonly _options: TaskOutput.IOptions,
    private readonly _rendererOptions: IRenderMime.IRendererOptions
  ) {
    super();
    this.addClass('jp-DeepResearch-output');
    this._fallback = new ServerView(_options);
    this._fallback.hide();
    this.addWidget(this._fallback);
    _options.model.changed.connect(this._onModelChanged, this);
  }

  /** The task this output names ('' if it names none validly). */
  get taskId(): string {
    return this._taskId;
  }

  /** True while the kernel's live widget is shown rather than the server's view. */
  get showsWidget(): boolean {
    return this._widgetHasView();
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const reference = model.data[TASK_MIME] as { task_id?: unknown } | undefined;
    const taskId = String(reference?.task_id ?? '');
    this._taskId = TASK_ID.test(taskId) ? taskId : '';
    this._fallback.saved = String(model.data['text/markdown'] ?? model.data['text/plain'] ?? '');
    this._fallback.taskId = this._taskId;
    if (!this._widget && model.trusted && model.data[WIDGET_VIEW_MIME]) {
      this._widget = this._options.widgetRenderer(this._rendererOptions);
      if (this._widget) {
        this._widget.hide();
        this.insertWidget(0, this._widget);
        // The widget renderer adds the view once the model is found (maybe later, once the
        // widget manager has restored) and drops it when the model closes; ipywidgets marks
        // the views of a kernel that restarted `jupyter-widgets-disconnected`.
        this._observer = new MutationObserver(() => this._choose());
        this._observer.observe(this._widget.node, {
          childList: true,
          subtree: true,
          attributes: true,
          attributeFilter: ['class']
        });
        await this._widget.renderModel(model);
      }
    }
    this._choose();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._observer?.disconnect();
    this._options.model.changed.disconnect(this._onModelChanged, this);
    super.dispose();
  }

  /** The widget shows a view whose model still lives in the kernel. */
  private _widgetHasView(): boolean {
    const widget = this._widget;
    return (
      !!widget &&
      !widget.isDisposed &&
      Array.from(widget.children()).length > 0 &&
      !widget.node.querySelector('.jupyter-widgets-disconnected')
    );
  }

  /** Show the widget if it has a view, else the server's view of the task. */
  private _choose(): void {
    if (this.isDisposed) {
      return;
    }
    if (this._widgetHasView()) {
      this._widget!.show();
      this._fallback.hide();
      return;
    }
    this._widget?.hide(); // "Loading widget..." or "model not found"
    this._fallback.show();
    this._fallback.showTask(this._taskId ? this._options.model.task(this._taskId) : undefined);
    if (this._taskId && !this._requested) {
      this._requested = true;
      this._options.model.watch(this._taskId).then(
        () => this._choose(),
        error => this._fallback.failed(error as Error)
      );
    }
  }

  private _onModelChanged(): void {
    if (!this._widgetHasView() && this._taskId) {
      this._fallback.showTask(this._options.model.task(this._taskId));
    }
  }

  private _widget: IRenderMime.IRenderer | null = null;
  private _observer: MutationObserver | null = null;
  private _fallback: ServerView;
  private _taskId = '';
  private _requested = false;
}

/** The task as the server has it: status, progress, its controls, and the report. */
class ServerView extends Widget {
  constructor(private readonly _options: TaskOutput.IOptions) {
    super();
    this.addClass('jp-DeepResearch-outputServer');
    this._head = document.createElement('div');
    this._head.className = 'jp-DeepResearch-outputHead';
    this.node.appendChild(this._head);
    this._body = _options.markdown();
    this.node.appendChild(this._body.node);
  }

  /** The Markdown the kernel saved with the output (shown until the server answers). */
  saved = '';
  taskId = '';

  showTask(task: ITaskInfo | undefined): void {
    if (task) {
      this._note = '';
      this._head.replaceChildren(...this._header(task));
      this._render(reportMarkdown(task));
    } else if (!this._note) {
      this._head.replaceChildren();
      this._render(this.saved);
    }
  }

  failed(error: Error): void {
    const status = (error as { response?: Response }).response?.status;
    this._note =
      status === 404
        ? `This server has no research task ${this.taskId}: shown as it was saved.`
        : `Could not reach the research server (${error.message}): shown as it was saved.`;
    const note = document.createElement('div');
    note.className = 'jp-DeepResearch-outputNote';
    note.textContent = this._note;
    this._head.replaceChildren(note);
    this._render(this.saved);
  }

  dispose(): void {
    this._body.dispose();
    super.dispose();
  }

  private _header(task: ITaskInfo): HTMLElement[] {
    const badge = element('span', `jp-DeepResearch-badge jp-DeepResearch-badge-${task.status}`);
    badge.textContent = task.status;
    const progress = element('progress', 'jp-DeepResearch-progress') as HTMLProgressElement;
    progress.max = 100;
    progress.value = task.percentage;
    const percentage = element('span', 'jp-DeepResearch-percentage');
    percentage.textContent = `${task.percentage}%`;
    const step = element('span', 'jp-DeepResearch-step');
    step.textContent = task.error || task.message || task.step;
    const row = element('div', 'jp-DeepResearch-progressRow');
    row.append(badge, progress, percentage, step);

    const actions = element('div', 'jp-DeepResearch-actions');
    const { model, openReport } = this._options;
    for (const action of allowedActions(task.status)) {
      if (OUTPUT_ACTIONS.includes(action)) {
        const label = action[0].toUpperCase() + action.slice(1);
        const act = () => model.act(task.task_id, action);
        actions.append(button(label, `jp-DeepResearch-action-${action}`, act));
      }
    }
    actions.append(
      button('Open report', 'jp-DeepResearch-open', async () => openReport(task.task_id))
    );
    return [row, actions];
  }

  private _render(markdown: string | null): void {
    if (markdown === null || markdown === this._shown) {
      return;
    }
    this._shown = markdown;
    void this._body.renderModel(
      new MimeModel({ data: { 'text/markdown': markdown }, trusted: false })
    );
  }

  private _head: HTMLElement;
  private _body: IRenderMime.IRenderer;
  private _shown: string | null = null;
  private _note = '';
}

function element(tag: string, className: string): HTMLElement {
  const node = document.createElement(tag);
  node.className = className;
  return node;
}

function button(label: string, className: string, onClick: () => Promise<void>): HTMLElement {
  const node = element('button', `jp-mod-styled ${className}`) as HTMLButtonElement;
  node.textContent = label;
  node.addEventListener('click', () => {
    node.disabled = true;
    onClick()
      .catch(error => {
        node.title = (error as Error).message;
      })
      .finally(() => {
        node.disabled = false;
      });
  });
  return node;
}
