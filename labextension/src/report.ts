/**
 * The Markdown a report tab shows, saves and inserts into a notebook (no DOM).
 */
import { ISource, ITaskInfo } from './types';

/** The task's report as a self-contained Markdown document. */
export function reportMarkdown(task: ITaskInfo): string {
  const query = String(task.request?.query ?? '').trim();
  const parts = [`> **Research:** ${query.replace(/\s+/g, ' ')}`];
  const report = task.result?.report ?? '';
  if (report) {
    parts.push(report.trim());
  } else if (task.error) {
    parts.push(`**${task.status}:** ${task.error}`);
  } else {
    parts.push(`*No report yet: the task is ${task.status} (${task.percentage}%).*`);
  }
  const sources = task.result?.sources ?? [];
  // The pipeline's report ends with its own Sources list; add one only if it lacks them.
  if (sources.length && !sources.every(source => source.url && report.includes(source.url))) {
    parts.push('## Sources\n\n' + sources.map(sourceLine).join('\n'));
  }
  return parts.join('\n\n') + '\n';
}

/** A file name for the saved report: the question's first words, safe on every system. */
export function reportFileName(task: ITaskInfo): string {
  const words = String(task.request?.query ?? 'research')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, ' ')
    .trim()
    .split(' ')
    .slice(0, 8)
    .join('-');
  return `${words || 'research'}-${task.task_id.slice(0, 8)}.md`;
}

function sourceLine(source: ISource): string {
  const title = String(source.title || source.url || 'source').replace(/[[\]]/g, '');
  const url = source.url ?? '';
  return /^https?:\/\//.test(url)
    ? `${source.id}. [${title}](${url})`
    : `${source.id}. ${title}${url ? ` — \`${url}\`` : ''}`;
}
