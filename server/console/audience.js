// Choosing an audience in a form, shared by the offers page (publishing) and the messages page
// (sending): the segments as options with their sizes, and member ids typed as a list.
import { api } from './api.js';
import { h, replace, showError } from './dom.js';

/** Fills `select` with every segment (name and size), or shows why it cannot in `error`. */
export async function fillSegments(select, error) {
  try {
    const segments = await api('GET', '/v1/admin/segments');
    replace(select, segments.map((s) => h('option', { value: s.id }, s.name + ' (' + s.members + ' members)')));
  } catch (e) {
    showError(error, e);
  }
}

/** Member ids typed with commas, spaces around them and empty entries dropped. */
export function memberIds(text) {
  return text.split(',').map((s) => s.trim()).filter(Boolean);
}
