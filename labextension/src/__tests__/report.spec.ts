import { reportFileName, reportMarkdown } from '../report';
import { ITaskInfo } from '../types';

const base: ITaskInfo = {
  task_id: 'ab'.repeat(16),
  status: 'completed',
  step: 'report',
  percentage: 100,
  message: '',
  created_at: '2024-01-01T00:00:00Z',
  updated_at: '2024-01-01T00:00:00Z',
  request: { query: 'How do generators work?' },
  last_event_id: 9,
  attempts: 1
};

describe('reportMarkdown', () => {
  it('keeps the report and its own Sources list, without repeating the sources', () => {
    const report = '# Generators\n\nThey yield [1].\n\n## Sources\n\n1. [Yield](https://docs/y)\n';
    const markdown = reportMarkdown({
      ...base,
      result: { report, sources: [{ id: 1, title: 'Yield', url: 'https://docs/y' }] }
    });
    expect(markdown).toContain('> **Research:** How do generators work?');
    expect(markdown).toContain('They yield [1].');
    expect(markdown.match(/## Sources/g)).toHaveLength(1);
  });

  it('adds the sources as links when the report lacks them', () => {
    const markdown = reportMarkdown({
      ...base,
      result: { report: 'Short.', sources: [{ id: 1, title: 'Yield', url: 'https://docs/y' }] }
    });
    expect(markdown).toContain('1. [Yield](https://docs/y)');
  });

  it('says why there is no report', () => {
    expect(reportMarkdown({ ...base, status: 'failed', error: 'no key' })).toContain(
      '**failed:** no key'
    );
  });

  it('names the file after the question', () => {
    expect(reportFileName(base)).toBe('how-do-generators-work-abababab.md');
  });
});
