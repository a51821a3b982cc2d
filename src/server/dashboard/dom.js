// Building DOM nodes without HTML strings: every text given becomes a text node (or an
// attribute value), so ids and names from the API are never parsed as markup.

const SVG = 'http://www.w3.org/2000/svg';

function build(element, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'on') {
      for (const [event, handler] of Object.entries(value)) element.addEventListener(event, handler);
    } else if (name === 'dataset') {
      for (const [key, data] of Object.entries(value)) element.dataset[key] = String(data);
    } else {
      element.setAttribute(name, value === true ? '' : String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** An HTML element: `h('a', {href: '#/'}, 'text', otherNode)`. */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element. */
export function svg(tag, attrs, ...children) {
  return build(document.createElementNS(SVG, tag), attrs, children);
}

/** A number as the dashboard shows it: integers as they are, others with one decimal. */
export function formatNumber(value) {
  if (value === null || value === undefined) return '—';
  const number = Number(value);
  if (!Number.isFinite(number)) return String(value);
  return Number.isInteger(number) ? String(number) : number.toFixed(1);
}

/** A Unix-millisecond time as `YYYY-MM-DD HH:MM` (UTC, as the boards' periods are). */
export function formatTime(ms) {
  const date = new Date(ms);
  if (Number.isNaN(date.getTime())) return '—';
  return `${date.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** A box saying what went wrong. */
export function errorBox(error) {
  const code = error && error.code ? error.code : 'error';
  const message = error && error.message ? error.message : String(error);
  return h('div', {class: 'error', role: 'alert'}, h('strong', {}, code), ': ', message);
}
