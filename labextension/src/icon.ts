import { LabIcon } from '@jupyterlab/ui-components';

/** A magnifier over a page: research. */
export const researchIcon = new LabIcon({
  name: 'jupyter-deepresearch:research',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">' +
    '<path class="jp-icon3" fill="#616161" d="M6 2h9l5 5v6.2a6 6 0 0 0-2-1.1V8h-4V4H6v16h6.1' +
    'a6 6 0 0 0 1.4 2H6a2 2 0 0 1-2-2V4a2 2 0 0 1 2-2zm11 11a4 4 0 0 1 3.4 6.1l2.3 2.3-1.4 1.4' +
    '-2.3-2.3A4 4 0 1 1 17 13zm0 2a2 2 0 1 0 0 4 2 2 0 0 0 0-4z"/></svg>'
});
