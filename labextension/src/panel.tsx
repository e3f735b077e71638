/**
 * The Research panel of the left sidebar: renders a `ResearchModel` and calls back for actions.
 */
import { Dialog, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { ReactWidget, UseSignal } from '@jupyterlab/ui-components';
import * as React from 'react';

import { ResearchModel } from './model';
import {
  allowedActions,
  isDestructive,
  ITaskInfo,
  STATUSES,
  TaskAction,
  TaskStatus
} from './types';

const ACTION_LABELS: { [key in TaskAction]: string } = {
  pause: 'Pause',
  resume: 'Resume',
  cancel: 'Cancel',
  restart: 'Restart',
  delete: 'Delete'
};

const CONFIRM_TEXT: { [key in TaskAction]?: string } = {
  restart: 'Restart this research from scratch? Its current report and progress are discarded.',
  delete: 'Delete this research? It is stopped and removed from storage with its report.'
};

export namespace ResearchPanel {
  export interface IOptions {
    model: ResearchModel;
    /** Opens the task's report in a main-area tab. */
    openReport: (taskId: string) => void;
  }
}

/** The sidebar panel. */
export class ResearchPanel extends ReactWidget {
  constructor(options: ResearchPanel.IOptions) {
    super();
    this.model = options.model;
    this._openReport = options.openReport;
    this.addClass('jp-DeepResearch-panel');
  }

  readonly model: ResearchModel;

  /** Put the cursor into the new-research field. */
  focusQuery(): void {
    this.node.querySelector<HTMLInputElement>('.jp-DeepResearch-query')?.focus();
  }

  protected render(): JSX.Element {
    return (
      <UseSignal signal={this.model.changed}>
        {() => <PanelView model={this.model} openReport={this._openReport} />}
      </UseSignal>
    );
  }

  private _openReport: (taskId: string) => void;
}

/** Runs an action, asking first for the destructive ones; errors become a dialog. */
export async function runAction(
  model: ResearchModel,
  task: ITaskInfo,
  action: TaskAction
): Promise<void> {
  if (isDestructive(action)) {
    const answer = await showDialog({
      title: `${ACTION_LABELS[action]} research`,
      body: `${CONFIRM_TEXT[action]}\n\n${task.request.query}`,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: ACTION_LABELS[action] })]
    });
    if (!answer.button.accept) {
      return;
    }
  }
  try {
    await model.act(task.task_id, action);
  } catch (error) {
    await showErrorMessage(`${ACTION_LABELS[action]} failed`, error as Error);
  }
}

function PanelView(props: ResearchPanel.IOptions): JSX.Element {
  const { model } = props;
  const tasks = model.tasks;
  return (
    <div className="jp-DeepResearch-body">
      <NewResearch model={model} />
      <div className="jp-DeepResearch-filters">
        <select
          className="jp-DeepResearch-statusFilter"
          aria-label="Filter by status"
          value={model.filter.status}
          onChange={event => model.setFilter({ status: event.target.value as TaskStatus | '' })}
        >
          <option value="">All statuses</option>
          {STATUSES.map(status => (
            <option key={status} value={status}>
              {status}
            </option>
          ))}
        </select>
        <input
          className="jp-DeepResearch-textFilter"
          type="search"
          placeholder="Filter by question"
          aria-label="Filter by question"
          defaultValue={model.filter.text}
          onChange={event => void model.setFilter({ text: event.target.value }).catch(noop)}
        />
      </div>
      {model.error && <div className="jp-DeepResearch-error">{model.error}</div>}
      {!model.loading && tasks.length === 0 && !model.error && (
        <div className="jp-DeepResearch-empty">
          {model.filter.status || model.filter.text.trim()
            ? 'No research matches the filter.'
            : 'No research yet.'}
        </div>
      )}
      <ul className="jp-DeepResearch-list">
        {tasks.map(task => (
          <TaskItem key={task.task_id} task={task} {...props} />
        ))}
      </ul>
      <div className="jp-DeepResearch-pager">
        <button
          className="jp-mod-styled jp-DeepResearch-previous"
          title="Newer tasks"
          disabled={!model.hasPreviousPage}
          onClick={() => void model.setPage(model.page - 1).catch(noop)}
        >
          Previous
        </button>
        <span className="jp-DeepResearch-count">
          {model.total === 1 ? '1 task' : `${model.total} tasks`}
          {model.pageCount > 1 && ` · page ${model.page + 1} of ${model.pageCount}`}
        </span>
        <button
          className="jp-mod-styled jp-DeepResearch-next"
          title="Older tasks"
          disabled={!model.hasNextPage}
          onClick={() => void model.setPage(model.page + 1).catch(noop)}
        >
          Next
        </button>
      </div>
    </div>
  );
}

function NewResearch(props: { model: ResearchModel }): JSX.Element {
  const [query, setQuery] = React.useState('');
  const [busy, setBusy] = React.useState(false);
  const submit = async (event: React.FormEvent) => {
    event.preventDefault();
    if (!query.trim()) {
      return;
    }
    setBusy(true);
    try {
      await props.model.start(query.trim());
      setQuery('');
    } catch (error) {
      await showErrorMessage('Could not start research', error as Error);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="jp-DeepResearch-new" onSubmit={submit}>
      <input
        className="jp-DeepResearch-query"
        placeholder="Ask a research question"
        aria-label="Research question"
        value={query}
        disabled={busy}
        onChange={event => setQuery(event.target.value)}
      />
      <button className="jp-mod-styled jp-mod-accept" type="submit" disabled={busy}>
        Research
      </button>
    </form>
  );
}

function TaskItem(props: ResearchPanel.IOptions & { task: ITaskInfo }): JSX.Element {
  const { task, model, openReport } = props;
  const detail = task.error || task.message || task.step;
  return (
    <li className="jp-DeepResearch-task" data-task-id={task.task_id} data-status={task.status}>
      <div className="jp-DeepResearch-taskHead">
        <span className={`jp-DeepResearch-badge jp-DeepResearch-badge-${task.status}`}>
          {task.status}
        </span>
        <a
          className="jp-DeepResearch-title"
          title={`Open the report of task ${task.task_id}`}
          onClick={() => openReport(task.task_id)}
        >
          {task.request.query}
        </a>
      </div>
      <div className="jp-DeepResearch-progressRow">
        <progress
          className="jp-DeepResearch-progress"
          max={100}
          value={task.percentage}
          aria-label="Progress"
        />
        <span className="jp-DeepResearch-percentage">{task.percentage}%</span>
        <span className="jp-DeepResearch-step">{task.step}</span>
      </div>
      {detail && <div className="jp-DeepResearch-message">{detail}</div>}
      <div className="jp-DeepResearch-actions">
        {task.status === 'completed' && (
          <button className="jp-mod-styled jp-DeepResearch-open" onClick={() => openReport(task.task_id)}>
            Report
          </button>
        )}
        {allowedActions(task.status).map(action => (
          <button
            key={action}
            className={`jp-mod-styled jp-DeepResearch-action-${action}`}
            onClick={() => void runAction(model, task, action)}
          >
            {ACTION_LABELS[action]}
          </button>
        ))}
      </div>
    </li>
  );
}

function noop(): void {
  // errors show in the panel through `model.error`
}
