/**
 * JupyterLab plugin of jupyter-deepresearch: wires the model, panel, report tabs,
 * notifications, commands, palette and launcher together. Behaviour lives in the other modules.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  ICommandPalette,
  InputDialog,
  MainAreaWidget,
  WidgetTracker,
  showErrorMessage
} from '@jupyterlab/apputils';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { ILauncher } from '@jupyterlab/launcher';
import { INotebookTracker } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';

import { insertReport, saveReport } from './actions';
import { ResearchAPI } from './api';
import { researchIcon } from './icon';
import { ResearchModel } from './model';
import { notifyFinished } from './notifications';
import { ResearchPanel } from './panel';
import { createReportView, ReportContent } from './reportView';
import { taskOutputFactory, WIDGET_VIEW_MIME } from './taskOutput';

/** Command ids (DESIGN.md: prefixed `deepresearch:`). */
export namespace CommandIDs {
  export const openPanel = 'deepresearch:open-panel';
  export const newResearch = 'deepresearch:new-research';
  export const openReport = 'deepresearch:open-report';
  export const refresh = 'deepresearch:refresh';
}

const CATEGORY = 'Deep Research';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-deepresearch:plugin',
  description: 'Research panel, report tabs and notifications for jupyter-deepresearch.',
  autoStart: true,
  requires: [IRenderMimeRegistry],
  optional: [
    ILayoutRestorer,
    ICommandPalette,
    ILauncher,
    INotebookTracker,
    IDefaultFileBrowser
  ],
  activate: (
    app: JupyterFrontEnd,
    rendermime: IRenderMimeRegistry,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    launcher: ILauncher | null,
    notebooks: INotebookTracker | null,
    fileBrowser: IDefaultFileBrowser | null
  ) => {
    const { commands, shell } = app;
    const api = new ResearchAPI(app.serviceManager.serverSettings);
    const model = new ResearchModel({ api });
    void model.refresh().catch(() => undefined); // the panel shows the error

    const panel = new ResearchPanel({
      model,
      openReport: taskId => void commands.execute(CommandIDs.openReport, { taskId })
    });
    panel.id = 'jp-deepresearch-panel';
    panel.title.icon = researchIcon;
    panel.title.caption = 'Research';
    shell.add(panel, 'left', { rank: 600 });
    restorer?.add(panel, 'deepresearch-panel');

    const reports = new WidgetTracker<MainAreaWidget<ReportContent>>({ namespace: 'deepresearch' });
    restorer?.restore(reports, {
      command: CommandIDs.openReport,
      args: widget => ({ taskId: widget.id.replace('deepresearch-report-', '') }),
      name: widget => widget.id
    });

    notifyFinished(model, taskId => void commands.execute(CommandIDs.openReport, { taskId }));

    // Notebooks clone the registry when they open, so every notebook opened from now on has it.
    rendermime.addFactory(
      taskOutputFactory({
        model,
        markdown: () => rendermime.createRenderer('text/markdown'),
        widgetRenderer: options => {
          // The notebook's own registry holds the widget renderer bound to its kernel.
          const panel = notebooks?.find(p => p.context.urlResolver === options.resolver);
          const registry = panel?.content.rendermime;
          return registry?.getFactory(WIDGET_VIEW_MIME)
            ? registry.createRenderer(WIDGET_VIEW_MIME)
            : null;
        },
        openReport: taskId => void commands.execute(CommandIDs.openReport, { taskId })
      })
    );

    commands.addCommand(CommandIDs.openPanel, {
      label: 'Show Research Panel',
      execute: () => shell.activateById(panel.id)
    });
    commands.addCommand(CommandIDs.refresh, {
      label: 'Refresh Research Tasks',
      execute: () => model.refresh()
    });
    commands.addCommand(CommandIDs.newResearch, {
      label: args => (args.isLauncher ? 'Research' : 'New Research…'),
      caption: 'Start a deep research task (or attach to the same question’s task)',
      icon: args => (args.isPalette ? undefined : researchIcon),
      execute: async args => {
        let query = typeof args.query === 'string' ? args.query : '';
        if (!query) {
          const answer = await InputDialog.getText({
            title: 'New research',
            label: 'Question',
            placeholder: 'How does asyncio cancel a task?'
          });
          query = answer.button.accept ? (answer.value ?? '').trim() : '';
        }
        if (!query) {
          return;
        }
        shell.activateById(panel.id);
        try {
          return (await model.start(query)).task.task_id;
        } catch (error) {
          await showErrorMessage('Could not start research', error as Error);
        }
      }
    });
    commands.addCommand(CommandIDs.openReport, {
      label: 'Open Research Report',
      execute: args => {
        const taskId = String(args.taskId ?? '');
        const open = reports.find(widget => widget.id === `deepresearch-report-${taskId}`);
        if (open) {
          shell.activateById(open.id);
          return open;
        }
        const widget = createReportView({
          taskId,
          model,
          rendermime,
          save: async task => {
            await saveReport(app.serviceManager.contents, fileBrowser?.model.path ?? '', task);
          },
          insert: async task => {
            if (notebooks) {
              await insertReport(notebooks, task);
            }
          }
        });
        void reports.add(widget);
        shell.add(widget, 'main');
        shell.activateById(widget.id);
        return widget;
      }
    });

    for (const command of [CommandIDs.openPanel, CommandIDs.newResearch, CommandIDs.refresh]) {
      palette?.addItem({ command, category: CATEGORY, args: { isPalette: true } });
    }
    launcher?.add({
      command: CommandIDs.newResearch,
      args: { isLauncher: true },
      category: 'Other',
      rank: 1
    });
  }
};

export default plugin;
