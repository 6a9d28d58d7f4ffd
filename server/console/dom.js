// Building the page from DOM nodes. Text always goes in as text nodes (or textContent), never as
// HTML: member-provided text (names, request subjects) can hold markup, and here it stays text.

/** An element: `h('button', {class: 'x', onclick: f}, 'Save')`. Strings become text nodes. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), value);
    } else if (name === 'value') {
      el.value = value;
    } else {
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces everything in `el` with `children`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/** A table of `rows`, each cell from `columns[i].cell(row)` (a string or a node). */
export function table(columns, rows, attrs = {}) {
  return h('table', attrs,
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', {}, c.title)))),
    h('tbody', {}, rows.map((row) => h('tr', {}, columns.map((c) => h('td', {}, c.cell(row)))))));
}

/** A place for an error message, filled in place by `showError`. */
export function errorBox(testid) {
  return h('p', { class: 'error', role: 'alert', 'data-testid': testid, hidden: true });
}

export function showError(box, error) {
  box.textContent = error ? (error.message || String(error)) : '';
  box.hidden = !error;
}

export function when(ms) {
  return ms ? new Date(ms).toISOString().replace('T', ' ').slice(0, 16) : '';
}

/** A link to a report's CSV (the API's `format=csv`), which the browser saves as `file`. */
export function csvLink(path, file, testid) {
  return h('p', {}, h('a', { href: path, download: file, 'data-testid': testid }, 'Download CSV'));
}

/** A share (0.25) as a percentage ("25.0%"). */
export function percent(share) {
  return (100 * (Number(share) || 0)).toFixed(1) + '%';
}

/** Midnight UTC of an `<input type="date">` value ("2027-01-15"), or undefined when empty. */
export function dateMs(value) {
  if (!value) return undefined;
  const ms = Date.parse(value + 'T00:00:00Z');
  return Number.isNaN(ms) ? undefined : ms;
}

/** The UTC date of `ms` ("2027-01-15"), as a date input and the reports show it. */
export function day(ms) {
  return ms === undefined || ms === null ? '' : new Date(ms).toISOString().slice(0, 10);
}
