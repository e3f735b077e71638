/**
 * What the report tab's buttons do: save through the contents API, insert into a notebook.
 */
import { showErrorMessage } from '@jupyterlab/apputils';
import { PathExt } from '@jupyterlab/coreutils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { Contents } from '@jupyterlab/services';
import { Notification } from '@jupyterlab/apputils';

import { reportFileName, reportMarkdown } from './report';
import { ITaskInfo } from './types';

/** Save the report as `<question>-<id>.md` in `folder`; returns the path written. */
export async function saveReport(
  contents: Contents.IManager,
  folder: string,
  task: ITaskInfo
): Promise<string> {
  const path = PathExt.join(folder, reportFileName(task));
  try {
    await contents.save(path, { type: 'file', format: 'text', content: reportMarkdown(task) });
  } catch (error) {
    await showErrorMessage('Could not save the report', error as Error);
    throw error;
  }
  Notification.success(`Saved the report as ${path}`, { autoClose: 4000 });
  return path;
}

/** Add the report as a Markdown cell below the active cell of the current notebook. */
export async function insertReport(tracker: INotebookTracker, task: ITaskInfo): Promise<void> {
  const panel = tracker.currentWidget;
  const notebook = panel?.content;
  if (!panel || !notebook?.model) {
    await showErrorMessage(
      'No notebook to insert into',
      'Open the notebook that should hold the report, then insert again.'
    );
    return;
  }
  const index = notebook.activeCell ? notebook.activeCellIndex + 1 : notebook.widgets.length;
  notebook.model.sharedModel.insertCell(index, {
    cell_type: 'markdown',
    source: reportMarkdown(task),
    metadata: { deepresearch: { task_id: task.task_id } }
  });
  notebook.activeCellIndex = index;
  const cell = notebook.widgets[index];
  if (cell && 'rendered' in cell) {
    (cell as { rendered: boolean }).rendered = true;
  }
  await panel.context.ready;
}
