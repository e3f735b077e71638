/**
 * Announces finished tasks in JupyterLab's notification center, with an action to open the
 * report; works whichever notebook started the task, open or closed.
 */
import { Notification } from '@jupyterlab/apputils';

import { ResearchModel } from './model';
import { ITaskInfo } from './types';

/** Notify for every task the model sees finish; returns a function that stops it. */
export function notifyFinished(
  model: ResearchModel,
  openReport: (taskId: string) => void
): () => void {
  const onFinished = (_: ResearchModel, task: ITaskInfo) => {
    const query = shorten(String(task.request.query ?? ''));
    const actions = [{ label: 'Open report', callback: () => openReport(task.task_id) }];
    if (task.status === 'completed') {
      Notification.success(`Research completed: ${query}`, { autoClose: false, actions });
    } else {
      const why = task.error ? ` (${shorten(task.error)})` : '';
      Notification.error(`Research failed: ${query}${why}`, { autoClose: false, actions });
    }
  };
  model.taskFinished.connect(onFinished);
  return () => model.taskFinished.disconnect(onFinished);
}

function shorten(text: string, limit = 80): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > limit ? `${line.slice(0, limit - 1)}…` : line;
}
