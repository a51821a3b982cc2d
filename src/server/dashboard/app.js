// The dashboard's router: `#/…` routes to a view of views.js, rendered into <main>.

import {h, errorBox} from './dom.js';
import {productsView, productView, boardView, playerView, workerView} from './views.js';

const main = document.getElementById('view');
let shown = 0;
let leaving = [];

/** The view and its parameters for `hash`. */
function route(hash) {
  const [path, search = ''] = hash.replace(/^#\/?/, '').split('?');
  const query = new URLSearchParams(search);
  let parts;
  try {
    parts = path.split('/').filter((s) => s !== '').map(decodeURIComponent);
  } catch {
    return null;
  }
  const [first, product, second, name, ...rest] = parts;
  if (parts.length === 0 || (first === 'products' && parts.length === 1)) return {view: productsView, nav: 'products'};
  if (first === 'worker' && parts.length === 1) return {view: workerView, nav: 'worker'};
  if (first !== 'products' || rest.length > 0) return null;
  if (parts.length === 2) return {view: productView, nav: 'products', params: {product}};
  if (parts.length === 4 && second === 'boards') return {view: boardView, nav: 'products', params: {product, board: name, query}};
  if (parts.length === 4 && second === 'players') return {view: playerView, nav: 'products', params: {product, user: name}};
  return null;
}

async function render() {
  const token = ++shown;
  const hash = location.hash;
  for (const leave of leaving) leave();
  leaving = [];
  const found = route(location.hash);
  for (const link of document.querySelectorAll('[data-nav]')) {
    link.classList.toggle('active', Boolean(found) && link.dataset.nav === found.nav);
  }
  if (!found) {
    main.replaceChildren(h('section', {}, h('h1', {}, 'Not found'),
      h('p', {}, 'No such page. ', h('a', {href: '#/'}, 'Back to the products.'))));
    document.body.dataset.shown = hash;
    return;
  }
  main.setAttribute('aria-busy', 'true');
  const ctx = {
    alive: () => token === shown,
    go: (hash) => { location.hash = hash; },
    onLeave: (fn) => { if (token === shown) leaving.push(fn); else fn(); },
  };
  let node;
  try {
    node = await found.view(ctx, found.params || {});
  } catch (error) {
    node = h('section', {}, errorBox(error));
  }
  if (token !== shown) return;
  main.replaceChildren(node);
  main.removeAttribute('aria-busy');
  // Which route the page shows (tests wait for it).
  document.body.dataset.shown = hash;
  const heading = main.querySelector('h1');
  document.title = heading ? `${heading.textContent} · stats-tracker` : 'stats-tracker';
}

window.addEventListener('hashchange', render);
render();
